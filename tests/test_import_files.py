"""Reading import files: CSV (with or without a BOM), XLSX, JSON, each row with its file line;
bad files are a clear ``ImportFileError``; an export of the list imports back (round trip)."""

from __future__ import annotations

import datetime
import io
import json
from typing import Any

import openpyxl
import pytest
from django.test import override_settings

from powercrud.bulk.importfile import ImportFileError, read_table, unguard
from powercrud.bulk.importing import ImportSpec, mapped_rows, match_columns
from powercrud.bulk.request import BulkRequest
from powercrud.bulk_persistence import run_request


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def test_csv_rows_keep_their_file_lines_and_skip_blank_ones() -> None:
    data = b'title,price\r\nA,1\r\n\r\n"Two\nlines",2\r\nC,3\r\n'
    table = read_table("books.csv", data)
    assert table.headers == ("title", "price")
    assert table.rows == ((2, ("A", "1")), (4, ("Two\nlines", "2")), (6, ("C", "3")))


def test_a_bom_is_read_and_dropped() -> None:
    table = read_table("books.csv", "\ufefftitle,prix\nÉté,1\n".encode())
    assert table.headers == ("title", "prix")
    assert table.rows[0][1] == ("Été", "1")


def test_text_that_is_not_utf8_is_refused_with_its_line() -> None:
    with pytest.raises(ImportFileError, match=r"not UTF-8 text \(line 3 has the byte 0xc9\)"):
        read_table("books.csv", "title\nA\nÉté\n".encode("latin-1"))


@pytest.mark.parametrize(
    ("name", "data", "match"),
    [
        ("books.csv", b"title,Title\nA,B\n", "the column “Title” twice"),
        ("books.csv", b"", "is empty"),
        ("books.csv", b"title,price\n", "no rows to import"),
        ("books.csv", b"title\nA,B\n", "line 2 has 2 values"),
        ("books.txt", b"title\nA\n", "use a .csv, .xlsx or .json file"),
        ("books.csv", b"PK\x03\x04rest of a zip", "not a CSV text file"),
        ("books.xlsx", b"title\nA\n", "not an Excel workbook"),
        ("books.xlsx", b"PK\x03\x04not really a zip", "not an Excel workbook that can be read"),
        ("books.json", b'{"title": "A"}', "not a JSON list of objects"),
        ("books.json", b'[{"title": "A"}, 3]', "line 1: each item must be an object"),
        ("books.json", b'[{"title": "A"},\n {"title": ', "not valid JSON at line 2"),
        ("books.json", b'[{"title": "A", "Title": "B"}]', "twice"),
    ],
)
def test_bad_files_are_a_clear_error(name: str, data: bytes, match: str) -> None:
    with pytest.raises(ImportFileError, match=match) as caught:
        read_table(name, data)
    assert caught.value.field == "file"


def test_a_file_over_the_limit_is_refused_before_it_is_read() -> None:
    limited = override_settings(POWERCRUD_SETTINGS={"IMPORT_MAX_BYTES": 10})
    with limited, pytest.raises(ImportFileError, match="at most 10 bytes"):
        read_table("books.csv", b"title\nA long title\n")
    assert read_table("books.csv", b"title\nA long title\n").rows == ((2, ("A long title",)),)


def test_json_items_keep_the_line_they_start_on() -> None:
    data = b'[\n  {"title": "A", "tags": [1, 2]},\n\n  {"title": "B",\n   "price": "2"}\n]\n'
    table = read_table("books.json", data)
    assert table.headers == ("title", "tags", "price")
    assert table.rows == ((2, ("A", [1, 2], None)), (4, ("B", None, "2")))


def test_xlsx_cells_keep_their_types_and_sheet_rows() -> None:
    data = xlsx_bytes(
        [["title", "price", "published"], ["A", 12.5, datetime.date(2020, 1, 2)], [], ["B", 3, None]]
    )
    table = read_table("books.xlsx", data)
    assert table.headers == ("title", "price", "published")
    assert table.rows[0] == (2, ("A", 12.5, datetime.date(2020, 1, 2)))
    assert table.rows[1][0] == 4


def test_formula_looking_text_is_only_text_and_the_exports_guard_comes_off() -> None:
    assert unguard("'=1+1") == "=1+1"
    assert unguard("'-5") == "-5"
    assert unguard("'plain") == "'plain"
    assert unguard('=HYPERLINK("x")') == '=HYPERLINK("x")'
    table = read_table("t.csv", b"title\n'=cmd|' /C calc'!A0\n")
    assert table.rows[0][1] == ("=cmd|' /C calc'!A0",)


@pytest.mark.django_db
@pytest.mark.parametrize("file_format", ["csv", "json", "xlsx"])
def test_each_format_imports_the_same_books(file_format: str) -> None:
    from tests.testapp.models import Author, Book

    author = Author.objects.create(name="Ann")
    header = ["Title", "author", "price", "published date"]
    values = [["=A", "Ann", "12.50", "2020-01-02"], ["B", "Ann", "3", ""]]
    if file_format == "csv":
        data = "\n".join(",".join(row) for row in [header, *values]).encode()
    elif file_format == "json":
        data = json.dumps([dict(zip(header, row, strict=True)) for row in values]).encode()
    else:
        # A cell that starts with "=" is a formula in a workbook: the text is typed as a string.
        data = xlsx_bytes([header, ["'=A", "Ann", 12.5, datetime.date(2020, 1, 2)], ["B", "Ann", 3, None]])
    table = read_table(f"books.{file_format}", data)
    mapping = match_columns(Book, table.headers, ["title", "author", "price", "published_date"])
    fields, rows = mapped_rows(mapping, table.rows)
    spec = ImportSpec(fields=fields, natural_keys={"author": "name"})
    request = BulkRequest(
        operation="import",
        model_label="testapp.book",
        import_data={"spec": spec.to_data(), "rows": _json(rows)},
    )
    result = run_request(
        request,
        queryset=Book.objects.all(),
        context=request.context(mode="sync", user_id=None, selection_size=len(rows)),
    )
    assert result.success, result.errors
    found = list(Book.objects.order_by("title").values_list("title", "author", "price", "published_date"))
    assert [(t, a, str(p), d) for t, a, p, d in found] == [
        ("=A", author.pk, "12.50", datetime.date(2020, 1, 2)),
        ("B", author.pk, "3.00", None),
    ]


def _json(rows: list[list[Any]]) -> list[list[Any]]:
    """Rows as the stored request holds them (an XLSX date becomes its ISO text)."""
    from powercrud.bulk.codec import to_json

    result: list[list[Any]] = to_json(rows)
    return result
