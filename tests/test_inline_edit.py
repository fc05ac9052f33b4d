"""Inline editing over HTTP: a list row becomes its form in place and saves like the edit modal.

``tests/inline_urls.py`` serves ``/ibook/`` (``inline_edit_fields`` = title, status, price,
is_available) and ``/plainbook/`` (the same list with inline editing off).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from django.core.checks import Error
from django.test import Client

from powercrud.checks import check_list_features
from powercrud.jobs.locks import acquire_locks
from powercrud.models import BulkTask
from tests.conftest import HtmxClient, make_user
from tests.inline_urls import InlineBookView
from tests.testapp.models import Book

pytestmark = pytest.mark.urls("tests.inline_urls")


def row_data(book: Book, **changes: Any) -> dict[str, Any]:
    """What the row form posts for ``book``: its inline fields, as loaded, then ``changes``."""
    loaded = {
        "title": book.title,
        "status": book.status,
        "price": str(book.price),
        "is_available": book.is_available,
    }
    data: dict[str, Any] = {
        "pc__loaded": json.dumps(loaded),
        "field": ["title", "status", "price", "is_available"],
        "title": book.title,
        "status": book.status,
        "price": str(book.price),
    }
    if book.is_available:
        data["is_available"] = "on"
    data.update(changes)
    return data


def client_for(*codenames: str, name: str = "clerk", htmx: bool = True) -> Client:
    client = HtmxClient() if htmx else Client()
    client.force_login(make_user(name, *codenames))
    return client


@pytest.fixture
def book(catalogue: dict[str, Any]) -> Book:
    return Book.objects.get(title="Book 04")


def test_a_row_opens_as_its_inline_fields_in_place(htmx_client: HtmxClient, book: Book) -> None:
    response = htmx_client.get(f"/ibook/{book.pk}/inline/?status=draft&sort=-price")
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<tr class="pc-inline-row"')
    for name in ("title", "status", "price", "is_available"):
        assert f'name="{name}"' in body and f'id="pc-inline-{book.pk}-{name}"' in body
    assert 'name="pages"' not in body  # shown, but not an inline field
    assert f'form="pc-inline-{book.pk}"' in body
    # Save and Cancel keep the list's state.
    assert f'hx-post="/ibook/{book.pk}/inline/?status=draft&amp;sort=-price"' in body
    assert "cancel=1" in body and "data-pc-inline-cancel" in body


def test_the_list_links_each_row_to_its_inline_form_and_falls_back_to_the_edit_page(
    htmx_client: HtmxClient, book: Book
) -> None:
    body = htmx_client.get("/ibook/?status=draft").content.decode()
    assert f'href="/ibook/{book.pk}/edit/" hx-get="/ibook/{book.pk}/inline/?status=draft"' in body
    assert f'data-pc-inline-cell="/ibook/{book.pk}/inline/?status=draft&amp;field=price"' in body
    # Off by default: a view without inline_edit_fields has no inline URL and no link.
    assert htmx_client.get(f"/plainbook/{book.pk}/inline/").status_code == 404
    assert "pc-inline-edit" not in htmx_client.get("/plainbook/").content.decode()


def test_save_writes_the_row_and_answers_with_the_row(htmx_client: HtmxClient, book: Book) -> None:
    response = htmx_client.post(
        f"/ibook/{book.pk}/inline/?status=archived",
        row_data(book, title="Renamed in place", price="12.50", status="published"),
    )
    body = response.content.decode()
    assert response.status_code == 200, body
    assert json.loads(response["HX-Trigger"]) == {
        "pcInlineSaved": {"message": "Book “Renamed in place” saved."}
    }
    assert body.lstrip().startswith("<tr") and "pc-inline-row" not in body
    assert "Renamed in place" in body and "12.50" in body and "Published" in body
    book.refresh_from_db()
    assert (book.title, book.price, book.status) == ("Renamed in place", Decimal("12.50"), "published")
    assert book.pages == 140  # a field the row does not edit is left alone


def test_a_single_cell_edits_only_its_field(htmx_client: HtmxClient, book: Book) -> None:
    body = htmx_client.get(f"/ibook/{book.pk}/inline/?field=price").content.decode()
    assert 'name="price"' in body and 'name="title"' not in body
    data = {"pc__loaded": json.dumps({"price": str(book.price)}), "field": "price", "price": "7.00"}
    assert htmx_client.post(f"/ibook/{book.pk}/inline/", data).status_code == 200
    book.refresh_from_db()
    assert book.price == Decimal("7.00") and book.title == "Book 04"


def test_validation_errors_come_back_in_the_row(htmx_client: HtmxClient, book: Book) -> None:
    response = htmx_client.post(f"/ibook/{book.pk}/inline/", row_data(book, title="", price="-3"))
    body = response.content.decode()
    assert response.status_code == 200
    assert 'class="pc-inline-row"' in body
    assert "This field is required." in body
    assert "Ensure this value is greater than or equal to 0." in body
    assert 'aria-invalid="true"' in body
    book.refresh_from_db()
    assert book.title == "Book 04" and book.price == Decimal("9.00")


def test_cancel_puts_the_plain_row_back(htmx_client: HtmxClient, book: Book) -> None:
    body = htmx_client.get(f"/ibook/{book.pk}/inline/?status=archived&cancel=1").content.decode()
    assert "pc-inline-row" not in body and "<form" not in body
    assert f'data-pc-inline-edit="{book.pk}"' in body and "Book 04" in body


def test_it_needs_the_update_permission(book: Book) -> None:
    viewer = client_for("view_book")
    body = viewer.get("/ibook/").content.decode()
    assert "pc-inline-edit" not in body and "data-pc-inline-cell" not in body
    for response in (
        viewer.get(f"/ibook/{book.pk}/inline/"),
        viewer.post(f"/ibook/{book.pk}/inline/", row_data(book, title="Nope")),
    ):
        assert response.status_code == 403
        assert "You do not have permission to edit this." in response.content.decode()
        assert response["HX-Reswap"] == "none"
    book.refresh_from_db()
    assert book.title == "Book 04"
    # The UPDATE role's permission is what counts: change_book (with view_book) is enough.
    editor = client_for("view_book", "change_book", name="editor")
    assert editor.get(f"/ibook/{book.pk}/inline/").status_code == 200


def test_a_row_outside_the_views_queryset_is_a_404(book: Book) -> None:
    clerk = client_for("view_book", "change_book")
    Book.objects.filter(pk=book.pk).update(is_available=False)  # non-staff see available books only
    assert clerk.get(f"/ibook/{book.pk}/inline/").status_code == 404
    assert clerk.post(f"/ibook/{book.pk}/inline/", row_data(book, title="X")).status_code == 404


def test_a_row_held_by_a_bulk_task_does_not_enter_edit_mode(htmx_client: HtmxClient, book: Book) -> None:
    task = BulkTask.objects.create(kind=BulkTask.Kind.UPDATE, model_label="testapp.book")
    acquire_locks(task, Book.objects.filter(pk=book.pk))
    response = htmx_client.get(f"/ibook/{book.pk}/inline/")
    message = f"This book is being changed by bulk task #{task.pk} (queued). Try again when it finishes."
    assert response.status_code == 409
    assert response.content.decode() == message
    assert response["HX-Reswap"] == "none"
    assert json.loads(response["HX-Trigger"]) == {"pcInlineRefused": {"message": message}}
    # A row form opened before the task took the row is refused on save, in the row.
    saved = htmx_client.post(f"/ibook/{book.pk}/inline/", row_data(book, title="Too late"))
    assert saved.status_code == 409
    assert f"bulk task #{task.pk} (queued)" in saved.content.decode()
    assert 'class="pc-inline-row"' in saved.content.decode()
    book.refresh_from_db()
    assert book.title == "Book 04"


def test_a_change_made_since_the_row_opened_is_kept_or_is_a_conflict(
    htmx_client: HtmxClient, book: Book
) -> None:
    data = row_data(book, price="20.00")  # the row was opened, then someone renamed the book
    Book.objects.filter(pk=book.pk).update(title="Renamed by a bulk edit")
    assert htmx_client.post(f"/ibook/{book.pk}/inline/", data).status_code == 200
    book.refresh_from_db()
    assert (book.title, book.price) == ("Renamed by a bulk edit", Decimal("20.00"))  # both kept
    clash = row_data(book, title="Mine")
    Book.objects.filter(pk=book.pk).update(title="Theirs")
    response = htmx_client.post(f"/ibook/{book.pk}/inline/", clash)
    assert response.status_code == 409
    assert "Title was changed by someone else after you opened this form" in response.content.decode()
    book.refresh_from_db()
    assert book.title == "Theirs"


def test_fields_outside_inline_edit_fields_are_refused(htmx_client: HtmxClient, book: Book) -> None:
    got = htmx_client.get(f"/ibook/{book.pk}/inline/?field=pages")
    assert got.status_code == 400 and got.content.decode() == "“pages” cannot be edited in the list."
    named = htmx_client.post(f"/ibook/{book.pk}/inline/", {**row_data(book), "field": ["title", "pages"]})
    assert named.status_code == 400
    smuggled = htmx_client.post(f"/ibook/{book.pk}/inline/", {**row_data(book, title="X"), "pages": "999"})
    assert smuggled.status_code == 400
    assert smuggled.content.decode() == "“pages” cannot be edited in the list."
    twice = htmx_client.post(f"/ibook/{book.pk}/inline/", {**row_data(book), "pc__loaded": ["{}", "{}"]})
    assert twice.status_code == 400
    book.refresh_from_db()
    assert (book.title, book.pages) == ("Book 04", 140)


def test_without_htmx_the_inline_url_is_the_edit_page_and_a_save_returns_to_the_filtered_list(
    admin_client: Client, book: Book
) -> None:
    opened = admin_client.get(f"/ibook/{book.pk}/inline/?status=archived")
    assert opened.status_code == 302 and opened["Location"] == f"/ibook/{book.pk}/edit/"
    saved = admin_client.post(
        f"/ibook/{book.pk}/inline/?status=archived&sort=-price&page=1", row_data(book, title="No script")
    )
    assert saved.status_code == 302
    assert saved["Location"] == "/ibook/?status=archived&sort=-price&page=1"
    book.refresh_from_db()
    assert book.title == "No script"
    listed = admin_client.get(saved["Location"]).content.decode()
    assert "Book “No script” saved." in listed
    invalid = admin_client.post(f"/ibook/{book.pk}/inline/?status=archived", row_data(book, price="-1"))
    assert invalid.status_code == 200
    page = invalid.content.decode()
    assert "<html" in page and "Ensure this value is greater than or equal to 0." in page
    assert f'action="/ibook/{book.pk}/inline/?status=archived"' in page


class BadInline(InlineBookView):
    inline_edit_fields = ["title", "price_band", "nope"]
    saved_views = [("Drafts", "?status=draft"), ("", "?x=1"), "Drafts"]


def test_check_e016_names_inline_fields_the_form_does_not_edit_and_e017_bad_saved_views() -> None:
    errors = check_list_features(BadInline)
    e016 = [e for e in errors if e.id == "powercrud.E016"]
    assert [e.msg.split(" names ")[1].split(",")[0] for e in e016] == ["'price_band'", "'nope'"]
    assert all(isinstance(e, Error) and e.obj is BadInline for e in errors)
    assert len([e for e in errors if e.id == "powercrud.E017"]) == 2
    assert check_list_features(InlineBookView) == []
