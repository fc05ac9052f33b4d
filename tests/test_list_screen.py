"""The list screen's operator features over HTTP: what a viewer is offered, the bulk delete
confirmation's rows, the selection after a bulk run ("Reselect"), the density and theme
choices read from their cookies, and one number format."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from powercrud.models import BulkTask
from sample.models import Book as SampleBook
from tests.bulk_urls import select, selection_url
from tests.conftest import HtmxClient
from tests.testapp.models import Book

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.bulk_urls")]

KEY = "powercrud:selection:testapp.book:book"


def test_a_viewer_sees_no_selection_controls(user_factory: Any, catalogue: dict[str, Any]) -> None:
    client = Client()
    client.force_login(user_factory("viewer", "view_book"))
    page = client.get("/book/").content.decode()
    assert "pc-select-row" not in page and "pc-select-page" not in page
    assert "Select all matching" not in page and "Tick rows" not in page and 'id="pc-selection"' not in page
    # An editor gets them all.
    editor = Client()
    editor.force_login(user_factory("editor", "view_book", "change_book"))
    page = editor.get("/book/").content.decode()
    assert "pc-select-row" in page and "Select all matching" in page and "Edit selected" in page
    assert "Delete selected" not in page  # no delete permission


def test_the_bulk_delete_confirmation_lists_the_first_rows_and_the_count(
    htmx_client: HtmxClient, catalogue: dict[str, Any]
) -> None:
    books = catalogue["books"]
    select(htmx_client, "book", [b.pk for b in books[:12]])
    page = htmx_client.get("/book/bulk/delete/").content.decode()
    assert "Delete <strong>12</strong> selected books?" in page
    assert "The first 10 of 12:" in page
    listed = [str(b) for b in sorted(books[:12], key=lambda b: (b.title, b.pk))]
    shown = [name for name in listed if f"<li>{name}</li>" in page]
    assert len(shown) == 10

    select(htmx_client, "book", [b.pk for b in books[2:12]], checked=False)
    page = htmx_client.get("/book/bulk/delete/").content.decode()
    assert "The rows:" in page and f"<li>{books[0]}</li>" in page and f"<li>{books[1]}</li>" in page


def test_a_successful_bulk_edit_clears_the_selection_and_offers_undo_and_reselect(
    htmx_client: HtmxClient, catalogue: dict[str, Any]
) -> None:
    chosen = [b.pk for b in catalogue["books"][:3]]
    select(htmx_client, "book", chosen)
    response = htmx_client.post("/book/bulk/edit/", {"change_price": "1", "price": "9.99"})
    assert response.status_code == 204
    run = BulkTask.objects.get()
    detail = json.loads(response.headers["HX-Trigger"])["pcSaved"]
    assert detail["undo_url"] == f"/powercrud/tasks/{run.pk}/"
    assert detail["reselect_url"] == selection_url("book")
    assert KEY not in htmx_client.session  # the same change cannot be applied twice by accident
    assert "pc-selection-count" not in htmx_client.get("/book/").content.decode()

    # "Reselect" puts the selection back, once.
    response = htmx_client.post(selection_url("book"), {"action": "restore"})
    assert response.status_code == 200
    assert sorted(htmx_client.session[KEY]["ids"]) == sorted(str(pk) for pk in chosen)
    assert "pcSelectionReset" in response.headers["HX-Trigger"]
    again = htmx_client.post(selection_url("book"), {"action": "restore"})
    assert again.status_code == 400
    assert "no earlier selection" in again.content.decode()


def test_a_check_keeps_the_selection(htmx_client: HtmxClient, catalogue: dict[str, Any]) -> None:
    select(htmx_client, "book", [catalogue["books"][0].pk])
    response = htmx_client.post("/book/bulk/edit/", {"change_price": "1", "price": "9.99", "dry_run": "1"})
    assert response.status_code == 200
    assert htmx_client.session[KEY]["ids"] == [str(catalogue["books"][0].pk)]


def test_a_restored_selection_is_checked_again(htmx_client: HtmxClient, catalogue: dict[str, Any]) -> None:
    """Rows deleted since the selection was cleared are left out of what "Reselect" restores."""
    first, second = catalogue["books"][:2]
    select(htmx_client, "book", [first.pk, second.pk])
    htmx_client.post(selection_url("book"), {"action": "clear"})
    Book.objects.filter(pk=second.pk).delete()
    htmx_client.post(selection_url("book"), {"action": "restore"})
    page = htmx_client.get("/book/").content.decode()
    assert "<strong>1</strong> selected" in page


@pytest.fixture
def demo_client() -> Client:
    """The demo's pages (its base template sets the theme and the skip links), as its admin."""
    call_command("seed_books", books=30, quiet=True, stdout=io.StringIO())
    call_command("setup_demo", stdout=io.StringIO())
    client = Client()
    client.force_login(User.objects.get(username="admin"))
    return client


@pytest.mark.demo
@pytest.mark.urls("sample.urls")
@pytest.mark.parametrize(
    ("cookies", "density", "theme"),
    [
        ({}, "compact", None),
        ({"pc_density": "comfortable", "pc_theme": "dark"}, "comfortable", "dark"),
        ({"pc_density": "compact", "pc_theme": "light"}, "compact", "light"),
        ({"pc_density": "<x>", "pc_theme": '" onload="x'}, "compact", None),  # anything else: the default
    ],
)
def test_density_and_theme_come_from_their_cookies(
    demo_client: Client, cookies: dict[str, str], density: str, theme: str | None
) -> None:
    for name, value in cookies.items():
        demo_client.cookies[name] = value
    page = demo_client.get("/book/").content.decode()
    assert f'class="pc pc-density-{density}" id="pc-list"' in page
    if theme:
        assert f'<html lang="en" data-pc-theme="{theme}">' in page
        assert f'<option value="{theme}" selected>' in page
    else:
        assert '<html lang="en">' in page
    assert "onload" not in page


@pytest.mark.demo
@pytest.mark.urls("sample.urls")
def test_the_list_has_a_skip_link_a_live_region_and_named_row_actions(demo_client: Client) -> None:
    page = demo_client.get("/book/").content.decode()
    assert '<a class="pc-skip-link" href="#pc-rows">Skip to the books</a>' in page
    assert "Skip to the content" not in page  # the list's own skip link replaces the generic one
    assert '<tbody id="pc-rows" tabindex="-1">' in page
    assert (
        '<div id="pc-live" class="pc-visually-hidden" role="status" aria-live="polite" aria-atomic="true">'
        in page
    )
    book = SampleBook.objects.order_by("title", "pk").first()
    assert f'aria-label="Edit {book}"' in page and f'aria-label="Delete {book}"' in page
    assert ">Delete</a>" not in page  # no red text link on every row
    # Apply is for pages without JavaScript only.
    assert '<noscript><button type="submit" class="pc-btn">Apply</button></noscript>' in page


def test_the_pager_counts_with_thousands_separators(admin_client: Client, catalogue: dict[str, Any]) -> None:
    Book.objects.bulk_create(
        [
            Book(title=f"Filler {n:05}", price="1.00", author=catalogue["books"][0].author)
            for n in range(1_200)
        ]
    )
    page = admin_client.get("/book/").content.decode()
    total = Book.objects.count()
    assert total > 1_000
    assert f"of <strong>{total:,}</strong>" in page
