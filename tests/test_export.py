"""Export of the list (``export_formats``): what the list shows, or the selection, as CSV,
XLSX or JSON, in the columns an import would take back, streamed, formula-safe."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.checks import Error
from django.http import StreamingHttpResponse
from django.test import Client

from powercrud.checks import check_list_features
from powercrud.mixins import export as export_module
from powercrud.models import ViewPreference
from powercrud.views import registry
from tests.bulk_urls import select, select_all
from tests.conftest import make_user
from tests.testapp.models import Book, Tag
from tests.testapp.views import BookCRUDView, GenreCRUDView

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.bulk_urls")]

URL = "/book/export/"
HEADER = [
    "id",
    "title",
    "author",
    "genre",
    "status",
    "price",
    "published_date",
    "pages",
    "is_available",
    "tags",
]


@pytest.fixture(autouse=True)
def _forget_test_views() -> Any:
    """Views defined in these tests must not reach the project-wide checks."""
    before = list(registry)
    yield
    registry[:] = before


def body(response: Any) -> str:
    assert response.status_code == 200, response.content[:300]
    if isinstance(response, StreamingHttpResponse):
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def csv_rows(response: Any) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body(response))))


def test_csv_holds_every_matching_row_in_the_list_order_with_stored_values(
    admin_client: Client, catalogue: dict[str, Any]
) -> None:
    response = admin_client.get(URL, {"export": "csv"})
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="books-')
    rows = csv_rows(response)
    assert rows[0] == HEADER
    assert len(rows) == 31
    first = Book.objects.get(title="Book 00")  # ordered by title, as the list is
    tags = sorted(t.pk for t in catalogue["tags"])
    assert rows[1] == [
        str(first.pk),
        "Book 00",
        str(first.author_id),
        "",
        "draft",  # the choice's value, not its label
        "5.00",
        "2000-01-01",
        "100",
        "true",
        ", ".join(str(pk) for pk in tags),
    ]
    assert [r[1] for r in rows[1:]] == sorted(b.title for b in catalogue["books"])


def test_filters_search_sort_and_chosen_columns_apply(
    admin_client: Client, admin_user: User, catalogue: dict[str, Any]
) -> None:
    response = admin_client.get(URL, {"export": "csv", "status": "published", "sort": "-price"})
    rows = csv_rows(response)
    expected = Book.objects.filter(status="published").order_by("-price", "pk")
    assert [r[1] for r in rows[1:]] == [b.title for b in expected]
    assert {r[4] for r in rows[1:]} == {"published"}
    # The user's stored columns: only those, in their order, after the key; the property
    # (price_band) is display-only and left out.
    ViewPreference.objects.create(
        user=admin_user, view_key="testapp.book:book", columns=["price", "title", "price_band"]
    )
    rows = csv_rows(admin_client.get(URL, {"export": "csv", "q": "Book 1"}))
    assert rows[0] == ["id", "price", "title"]
    assert [r[2] for r in rows[1:]] == [f"Book {i:02d}" for i in range(30) if "1" in f"{i:02d}"]


def test_json_keeps_types_as_the_codec_has_them(admin_client: Client, catalogue: dict[str, Any]) -> None:
    response = admin_client.get(URL, {"export": "json", "title": "x", "q": "Book 00"})
    assert response["Content-Type"] == "application/json"
    data = json.loads(body(response))
    assert len(data) == 1
    book = Book.objects.get(title="Book 00")
    assert data[0] == {
        "id": book.pk,
        "title": "Book 00",
        "author": book.author_id,
        "genre": None,
        "status": "draft",
        "price": "5.00",
        "published_date": "2000-01-01",
        "pages": 100,
        "is_available": True,
        "tags": sorted(t.pk for t in catalogue["tags"]),
    }


def test_xlsx_is_a_workbook_with_typed_cells_and_formulas_kept_as_text(
    admin_client: Client, catalogue: dict[str, Any]
) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    Book.objects.filter(title="Book 01").update(title="=HYPERLINK(1)\x01")
    response = admin_client.get(URL, {"export": "xlsx", "sort": "pages"})
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="books-')
    assert response["Content-Disposition"].endswith('.xlsx"')
    sheet = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == HEADER
    assert len(rows) == 31
    assert isinstance(rows[1][5], int | float | Decimal) and Decimal(str(rows[1][5])) == 5  # a number
    assert rows[1][8] is True
    from openpyxl.utils.escape import unescape

    assert rows[2][1] == "=HYPERLINK(1)_x0001_"  # text, not a formula; the control character
    assert unescape(rows[2][1]) == "=HYPERLINK(1)\x01"  # escaped as Excel reads it back
    cell = sheet.cell(row=3, column=2)
    assert cell.data_type == "s"


def test_csv_text_that_looks_like_a_formula_is_defused(
    admin_client: Client, catalogue: dict[str, Any]
) -> None:
    Book.objects.filter(title="Book 02").update(title="=1+1")
    rows = csv_rows(admin_client.get(URL, {"export": "csv", "q": "=1"}))
    assert [r[1] for r in rows[1:]] == ["'=1+1"]


def test_the_selection_alone_is_exported_re_scoped(admin_client: Client, catalogue: dict[str, Any]) -> None:
    books = catalogue["books"]
    select(admin_client, "book", [books[3].pk, books[7].pk])
    rows = csv_rows(admin_client.get(URL, {"export": "csv", "export_scope": "selection"}))
    assert sorted(int(r[0]) for r in rows[1:]) == sorted([books[3].pk, books[7].pk])
    select_all(admin_client, "book", "status=archived")
    data = json.loads(body(admin_client.get(URL, {"export": "json", "export_scope": "selection"})))
    assert {row["status"] for row in data} == {"archived"}
    assert len(data) == Book.objects.filter(status="archived").count()


def test_an_empty_selection_is_refused_with_a_sentence(
    admin_client: Client, catalogue: dict[str, Any]
) -> None:
    response = admin_client.get(URL, {"export": "csv", "export_scope": "selection"})
    assert response.status_code == 400
    assert "No books are selected" in response.content.decode()


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"export": "pdf"}, "“pdf” is not an export format of this list; choose one of: csv, xlsx, json."),
        ({"export": ["csv", "json"]}, "The parameter “export” was sent 2 times"),
        ({"export": "csv", "export_scope": ["all", "selection"]}, "“export_scope” was sent 2 times"),
        ({"export": "csv", "export_scope": "mine"}, "“mine” is not an export scope"),
    ],
)
def test_bad_requests_are_400_naming_the_parameter(
    admin_client: Client, catalogue: dict[str, Any], query: dict[str, Any], says: str
) -> None:
    response = admin_client.get(URL, query)
    assert response.status_code == 400
    assert says in response.content.decode()


def test_anyone_who_may_see_the_list_may_export_it_and_no_one_else(catalogue: dict[str, Any]) -> None:
    client = Client()
    assert client.get(URL, {"export": "csv"}).status_code in (302, 403)
    client.force_login(make_user("nobody"))
    assert client.get(URL, {"export": "csv"}).status_code == 403
    client.force_login(make_user("reader", "view_book"))
    assert len(csv_rows(client.get(URL, {"export": "csv"}))) == 31


def test_a_list_without_export_formats_has_no_export_url(
    admin_client: Client, catalogue: dict[str, Any]
) -> None:
    assert not GenreCRUDView.export_formats
    assert admin_client.get("/genre/export/").status_code == 404
    assert "Export" not in admin_client.get("/genre/").content.decode()


def test_the_list_links_to_its_exports_with_its_current_state(
    admin_client: Client, catalogue: dict[str, Any]
) -> None:
    page = admin_client.get("/book/", {"status": "draft", "page": "2"}).content.decode()
    assert 'data-pc-menu="export"' in page
    assert "/book/export/?status=draft&amp;export=csv&amp;export_scope=all" in page
    assert "page=2" not in page.split('data-pc-menu="export"')[1].split("</details>")[0]
    # The selection's exports sit in the selection bar, drawn again whenever it changes, and
    # only while rows are selected.
    assert "export_scope=selection" not in page
    bar = select(admin_client, "book", [catalogue["books"][0].pk]).content.decode()
    assert '<a class="pc-link" href="/book/export/?export=xlsx&amp;export_scope=selection">Excel' in bar
    assert 'id="pc-selection"' in bar
    page = admin_client.get("/book/").content.decode()
    assert page.count("export_scope=selection") == 3


def test_an_export_streams_in_chunks_of_rows_with_one_query_per_many_to_many_field(
    admin_client: Client, catalogue: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows are read ``EXPORT_CHUNK`` at a time (so a million rows never sit in memory), and
    each chunk's tags are one query, not one per row."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    monkeypatch.setattr(export_module, "EXPORT_CHUNK", 7)
    response = admin_client.get(URL, {"export": "csv"})
    with CaptureQueriesContext(connection) as queries:
        rows = csv_rows(response)
    assert len(rows) == 31
    tag_reads = [q for q in queries.captured_queries if "testapp_book_tags" in q["sql"]]
    assert len(tag_reads) == 5  # 30 rows in chunks of 7


def test_checks_refuse_unknown_formats_and_xlsx_without_openpyxl(monkeypatch: pytest.MonkeyPatch) -> None:
    class Bad(BookCRUDView):
        export_formats = ["csv", "pdf"]

    class Text(BookCRUDView):
        export_formats = "csv"  # type: ignore[assignment]

    assert [e.id for e in check_list_features(Bad)] == ["powercrud.E018"]
    assert [e.id for e in check_list_features(Text)] == ["powercrud.E018"]
    assert check_list_features(BookCRUDView) == []
    monkeypatch.setattr("powercrud.fileformats.xlsx_available", lambda: False)
    errors = check_list_features(BookCRUDView)
    assert [e.id for e in errors] == ["powercrud.E019"] and isinstance(errors[0], Error)
    assert "pip install 'powercrud[xlsx]'" in (errors[0].hint or "")


def test_tags_unlinked_export_as_an_empty_list(admin_client: Client, catalogue: dict[str, Any]) -> None:
    Tag.objects.all().delete()
    data = json.loads(body(admin_client.get(URL, {"export": "json"})))
    assert {tuple(row["tags"]) for row in data} == {()}


def test_an_export_needs_what_the_list_needs_unless_it_is_named() -> None:
    from powercrud.views import Role

    class Custom(BookCRUDView):
        role_permissions = {"list": ["testapp.change_book"]}

    class Named(BookCRUDView):
        role_permissions = {"list": ["testapp.change_book"], "export": ["testapp.delete_book"]}

    assert BookCRUDView().get_role_permissions(Role.EXPORT) == ["testapp.view_book"]
    assert Custom().get_role_permissions(Role.EXPORT) == ["testapp.change_book"]
    assert Named().get_role_permissions(Role.EXPORT) == ["testapp.delete_book"]
