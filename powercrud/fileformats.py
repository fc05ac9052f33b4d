"""Table files powercrud writes: CSV, JSON and XLSX, streamed or spooled with flat memory.

A table is a header (column names) and an iterator of rows (one value per column, as the
database returns them; a many-to-many value is a list of related keys). ``FORMATS`` names
each format's media type and file extension; ``csv_chunks()`` and ``json_chunks()`` yield the
file's text block by block, ``xlsx_file()`` writes the workbook to a temporary file (openpyxl's
write-only mode keeps one row in memory at a time) that the response then streams.

Text a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, a tab or a carriage
return first) is made safe: a leading apostrophe in CSV (``safe_text()``), a cell typed as text
in XLSX. JSON keeps every value as it is, through the one codec (``bulk.codec.to_json``).
"""

from __future__ import annotations

import csv
import datetime
import decimal
import json
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from django.utils import timezone

from powercrud.bulk.codec import to_json

__all__ = [
    "FORMATS",
    "FileFormat",
    "csv_chunks",
    "json_chunks",
    "safe_text",
    "xlsx_available",
    "xlsx_file",
]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")
BLOCK = 64 * 1024
"""Characters per streamed block: a response of a million rows is a few hundred writes."""
_SHEET_TITLE_REFUSED = re.compile(r"[\[\]:*?/\\]")
LIST_SEPARATOR = ", "
"""Between the related keys of a many-to-many value in a CSV or XLSX cell."""


@dataclass(frozen=True)
class FileFormat:
    name: str
    label: str
    content_type: str
    extension: str


FORMATS = {
    "csv": FileFormat("csv", "CSV", "text/csv; charset=utf-8", "csv"),
    "xlsx": FileFormat(
        "xlsx", "Excel", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"
    ),
    "json": FileFormat("json", "JSON", "application/json", "json"),
}


def xlsx_available() -> bool:
    """Whether openpyxl (the ``powercrud[xlsx]`` extra) is installed."""
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        return False
    return True


def safe_text(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run as a formula (text starting with = + - @).

    A plain negative number in text (a decimal, ``"-5.00"``) is no formula and stays as it is.
    """
    if value is None:
        return ""
    if isinstance(value, int | float):
        return value
    text = str(value)
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return f"'{text}"
    return text


def _plain(value: Any) -> Any:
    """A value as CSV text: the codec's form, booleans as ``true``/``false``, lists joined."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return LIST_SEPARATOR.join(str(to_json(item)) for item in value)
    return to_json(value)


def blocks(pieces: Iterable[str], size: int = BLOCK) -> Iterator[str]:
    """``pieces`` joined into blocks of about ``size`` characters."""
    pending: list[str] = []
    length = 0
    for piece in pieces:
        pending.append(piece)
        length += len(piece)
        if length >= size:
            yield "".join(pending)
            pending, length = [], 0
    if pending:
        yield "".join(pending)


class _Echo:
    """A file-like object whose ``write`` hands back the line, for streaming ``csv.writer``."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """Formula-safe CSV, one line at a time (values already in their text form)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([safe_text(value) for value in row])


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """The table as formula-safe CSV text, in blocks."""
    return blocks(csv_lines(header, ([_plain(v) for v in row] for row in rows)))


def json_chunks(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """The table as a JSON array of objects (one per row, keyed by the header), in blocks."""

    def pieces() -> Iterator[str]:
        yield "["
        separator = "\n"
        for row in rows:
            item = {name: to_json(value) for name, value in zip(header, row, strict=True)}
            yield separator + json.dumps(item, ensure_ascii=False)
            separator = ",\n"
        yield "\n]\n"

    return blocks(pieces())


def _xlsx_value(value: Any) -> Any:
    """A value openpyxl stores as its own type: numbers, booleans, dates; datetimes in the
    current time zone without it (Excel has none); lists joined; anything else as text."""
    if value is None or isinstance(value, bool | int | float | decimal.Decimal | datetime.date):
        if isinstance(value, datetime.datetime) and timezone.is_aware(value):
            return timezone.make_naive(value)
        return value
    if isinstance(value, list | tuple):
        return LIST_SEPARATOR.join(str(to_json(item)) for item in value)
    return str(to_json(value))


def xlsx_file(header: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str) -> IO[bytes]:
    """The table as an XLSX workbook in a temporary file, positioned at its start.

    Text cells are typed as text, so ``=1+1`` stays text; characters XML cannot hold are
    escaped the way Excel reads them back (``_x0001_``).
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.utils.escape import escape

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=_SHEET_TITLE_REFUSED.sub(" ", title)[:31].strip() or "Sheet")

    def cell(value: Any) -> Any:
        value = _xlsx_value(value)
        if not isinstance(value, str):
            return value
        written = WriteOnlyCell(sheet, value=escape(value))
        written.data_type = "s"
        return written

    sheet.append([cell(name) for name in header])
    for row in rows:
        sheet.append([cell(value) for value in row])
    target = tempfile.TemporaryFile()  # noqa: SIM115 - returned open: the response closes it
    workbook.save(target)
    target.seek(0)
    return target
