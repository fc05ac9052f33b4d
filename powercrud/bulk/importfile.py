"""Reading an uploaded table file (CSV, XLSX, JSON) into rows with their file line numbers.

``read_table(name, data)`` chooses the reader by the file name's extension and checks that
the bytes are what the extension claims; every problem with the file itself is an
``ImportFileError`` (a ``BulkInputError``: a 400 naming the problem), never a server error:

* too large (``IMPORT_MAX_BYTES``), empty, no header, no data rows;
* duplicate headers (compared without case and surrounding spaces);
* CSV or JSON text that is not UTF-8 (a UTF-8 byte order mark is read and dropped);
* an XLSX that is not a workbook, JSON that is not a list of objects.

``ImportTable.rows`` pairs each row's values (aligned with ``headers``) with where the row
starts in the file: the line of a CSV or JSON file, the row number of the XLSX sheet.

Text a spreadsheet would run as a formula is only ever text here. The export makes such
text safe with a leading apostrophe (``fileformats.safe_text()``); ``unguard()`` takes that
apostrophe off again, so a file exported by powercrud imports back to the same values.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from powercrud.bulk.types import BulkInputError
from powercrud.conf import settings as pc_settings

__all__ = ["FORMATS", "ImportFileError", "ImportTable", "format_of", "read_table", "unguard"]

FORMATS = ("csv", "xlsx", "json")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_ZIP_MAGIC = b"PK\x03\x04"


class ImportFileError(BulkInputError):
    """The uploaded file cannot be read as a table; the message names the problem and the fix."""

    def __init__(self, message: str) -> None:
        super().__init__("file", message)


@dataclass(frozen=True)
class ImportTable:
    """A file's header and its data rows, each as ``(line, values)`` aligned with the header."""

    format: str
    headers: tuple[str, ...]
    rows: tuple[tuple[int, tuple[Any, ...]], ...]

    def samples(self, column: int, count: int = 3) -> list[Any]:
        """The first ``count`` non-empty values of ``column``, for a person choosing the mapping."""
        found = []
        for _, values in self.rows:
            value = values[column] if column < len(values) else None
            if value not in (None, "", []):
                found.append(value)
                if len(found) == count:
                    break
        return found


def unguard(value: Any) -> Any:
    """Text made formula-safe by an export (``'=1+1``) back to what it was (``=1+1``)."""
    if isinstance(value, str) and len(value) > 1 and value[0] == "'" and value[1] in _FORMULA_START:
        return value[1:]
    return value


def format_of(name: str) -> str:
    """The format a file name's extension claims; ``ImportFileError`` for any other."""
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if extension not in FORMATS:
        raise ImportFileError(
            f"“{name}” is not a file powercrud can import: use a .csv, .xlsx or .json file."
        )
    return extension


def read_table(name: str, data: bytes, *, max_bytes: int | None = None) -> ImportTable:
    """The table in ``data`` (the bytes of file ``name``); see the module docs."""
    file_format = format_of(name)
    limit = int(pc_settings.IMPORT_MAX_BYTES) if max_bytes is None else max_bytes
    if len(data) > limit:
        raise ImportFileError(
            f"“{name}” is {len(data):,} bytes; files of at most {limit:,} bytes can be imported. "
            "Split it into smaller files."
        )
    if not data.strip():
        raise ImportFileError(f"“{name}” is empty.")
    if file_format == "xlsx":
        headers, rows = _read_xlsx(name, data)
    else:
        if data.startswith(_ZIP_MAGIC) or b"\x00" in data[:4096]:
            raise ImportFileError(
                f"“{name}” is not a {file_format.upper()} text file (it looks like a binary file, "
                "such as a spreadsheet): save it as .xlsx, or export it as CSV."
            )
        text = _decode(name, data)
        headers, rows = _read_csv(name, text) if file_format == "csv" else _read_json(name, text)
    _check_headers(name, headers)
    if not rows:
        raise ImportFileError(f"“{name}” has a header but no rows to import.")
    return ImportTable(format=file_format, headers=tuple(headers), rows=tuple(rows))


def _decode(name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportFileError(
            f"“{name}” is not UTF-8 text (line {line} has the byte 0x{data[exc.start]:02x}): "
            "save it again as UTF-8 (“CSV UTF-8” in a spreadsheet)."
        ) from None


def _check_headers(name: str, headers: Sequence[str]) -> None:
    if not any(headers):
        raise ImportFileError(f"“{name}” has no header row: its first row must name the columns.")
    seen: dict[str, str] = {}
    for header in headers:
        key = header.strip().casefold()
        if not key:
            continue
        if key in seen:
            raise ImportFileError(
                f"“{name}” has the column “{header.strip()}” twice: rename or remove one of them."
            )
        seen[key] = header


# ----- CSV -----------------------------------------------------------------------------------


def _read_csv(name: str, text: str) -> tuple[list[str], list[tuple[int, tuple[Any, ...]]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    headers: list[str] | None = None
    rows: list[tuple[int, tuple[Any, ...]]] = []
    start = width = 1
    try:
        for record in reader:
            line, start = start, reader.line_num + 1
            if not "".join(record).strip():
                continue
            if headers is None:
                headers = [cell.strip() for cell in record]
                width = len(headers)
                continue
            if len(record) > len(headers) and any(cell.strip() for cell in record[len(headers) :]):
                raise ImportFileError(
                    f"“{name}” line {line} has {len(record)} values but the header names "
                    f"{len(headers)} columns: check its separators and quotes."
                )
            values = record[:width] if len(record) >= width else record + [""] * (width - len(record))
            if "'" in "".join(values):  # only then can a cell carry an export's formula guard
                values = [unguard(cell) for cell in values]
            rows.append((line, tuple(values)))
    except csv.Error as exc:
        raise ImportFileError(f"“{name}” is not valid CSV near line {reader.line_num}: {exc}.") from None
    if headers is None:
        raise ImportFileError(f"“{name}” has no header row: its first row must name the columns.")
    return headers, rows


# ----- JSON ----------------------------------------------------------------------------------


def _json_items(name: str, text: str) -> Iterator[tuple[int, Any]]:
    """Each item of a JSON list with the line it starts on."""
    decoder = json.JSONDecoder()
    length = len(text)
    at = _skip_space(text, 0)
    if at >= length or text[at] != "[":
        raise ImportFileError(f"“{name}” is not a JSON list of objects: it must start with “[”.")
    at = _skip_space(text, at + 1)
    line, counted = 1, 0
    if at < length and text[at] == "]":
        return
    while True:
        line += text.count("\n", counted, at)
        counted = at
        try:
            item, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError as exc:
            raise ImportFileError(f"“{name}” is not valid JSON at line {exc.lineno}: {exc.msg}.") from None
        yield line, item
        at = _skip_space(text, at)
        if at < length and text[at] == ",":
            at = _skip_space(text, at + 1)
            continue
        if at < length and text[at] == "]" and not text[at + 1 :].strip():
            return
        where = text.count("\n", 0, at) + 1
        raise ImportFileError(f"“{name}” is not valid JSON at line {where}: expected “,” or a final “]”.")


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    return at


def _read_json(name: str, text: str) -> tuple[list[str], list[tuple[int, tuple[Any, ...]]]]:
    items: list[tuple[int, dict[str, Any]]] = []
    headers: dict[str, str] = {}
    for line, item in _json_items(name, text):
        if not isinstance(item, dict):
            raise ImportFileError(
                f"“{name}” line {line}: each item must be an object of field names and values, "
                f"not {type(item).__name__}."
            )
        for key in item:
            folded = key.strip().casefold()
            if folded in headers and headers[folded] != key:
                raise ImportFileError(
                    f"“{name}” names the key “{key.strip()}” twice (as “{headers[folded]}” and “{key}”): "
                    "use one spelling."
                )
            headers.setdefault(folded, key)
        items.append((line, item))
    names = list(headers.values())
    rows = [(line, tuple(item.get(key) for key in names)) for line, item in items]
    return [key.strip() for key in names], rows


# ----- XLSX ----------------------------------------------------------------------------------


def _read_xlsx(name: str, data: bytes) -> tuple[list[str], list[tuple[int, tuple[Any, ...]]]]:
    try:
        import openpyxl
    except ImportError:
        raise ImportFileError(
            "Excel files cannot be imported here: the server lacks openpyxl (the powercrud[xlsx] "
            "extra). Import a CSV or JSON file instead."
        ) from None
    if not data.startswith(_ZIP_MAGIC):
        raise ImportFileError(f"“{name}” is not an Excel workbook: save it as .xlsx, or rename it .csv.")
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError) as exc:
        raise ImportFileError(f"“{name}” is not an Excel workbook that can be read ({exc}).") from None
    try:
        sheet = workbook.worksheets[0] if workbook.worksheets else None
        if sheet is None:
            raise ImportFileError(f"“{name}” has no worksheet.")
        headers: list[str] | None = None
        rows: list[tuple[int, tuple[Any, ...]]] = []
        for number, record in enumerate(sheet.iter_rows(values_only=True), start=1):
            if not any(cell not in (None, "") for cell in record):
                continue
            if headers is None:
                headers = ["" if cell is None else str(cell).strip() for cell in record]
                continue
            values = [_xlsx_value(cell) for cell in record[: len(headers)]]
            values += [None] * (len(headers) - len(values))
            rows.append((number, tuple(values)))
    finally:
        workbook.close()
    if headers is None:
        raise ImportFileError(f"“{name}” has no header row: its first row must name the columns.")
    return headers, rows


def _xlsx_value(cell: Any) -> Any:
    """A cell as the import reads it: a date cell (a datetime at midnight) as a date."""
    if isinstance(cell, datetime.datetime) and cell.time() == datetime.time(0) and cell.tzinfo is None:
        return cell.date()
    return unguard(cell)
