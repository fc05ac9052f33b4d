"""The BULK_DELETE role through HTTP: confirmation, deleting exactly the selection, protected
rows in both modes, dry runs, scoping, and UUID keys."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from powercrud.models import BulkTask
from tests.bulk_urls import select, select_all
from tests.conftest import HtmxClient, row_cell
from tests.testapp.models import Asset, Author, Book, Shelf, ShelfEvent, Tag

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.bulk_urls")]

Catalogue = dict[str, Any]


def delete(client: Client, base: str, dry_run: bool = False) -> Any:
    return client.post(f"/{base}/bulk/delete/", {"dry_run": "1"} if dry_run else {})


def remaining_books() -> set[int]:
    return set(Book.objects.values_list("pk", flat=True))


@pytest.fixture
def authors(catalogue: Catalogue) -> dict[str, Author]:
    """Two authors without books and one (Ursula Le Guin) with ten protected books."""
    return {
        "free": Author.objects.create(name="Free Writer"),
        "protected": catalogue["authors"][0],
        "spare": Author.objects.create(name="Spare Writer"),
    }


# ----- confirmation -----------------------------------------------------------------------------
@pytest.mark.parametrize("htmx", [True, False])
def test_the_confirmation_shows_the_count(
    admin_client: Client, htmx_client: HtmxClient, catalogue: Catalogue, htmx: bool
) -> None:
    client = htmx_client if htmx else admin_client
    select(client, "book", [b.pk for b in catalogue["books"][:3]])
    response = client.get("/book/bulk/delete/")
    assert response.status_code == 200
    html = response.content.decode()
    assert ("<html" in html) is not htmx
    assert '<h2 id="pc-modal-title">Delete 3 books</h2>' in html
    assert (
        "Delete <strong>3</strong> selected books? The run is recorded: its page can restore the rows, "
        "unless the delete also removes related rows." in html
    )
    assert ("hx-post" in html) is htmx  # a whole page posts as a plain form: it has no modal
    assert "If any row cannot be deleted, none is." in html
    assert ">Delete 3 rows</button>" in html
    assert Book.objects.count() == 30


def test_without_the_ledger_the_confirmation_says_it_cannot_be_undone(
    htmx_client: HtmxClient, catalogue: Catalogue, settings: Any
) -> None:
    settings.POWERCRUD_SETTINGS = {"BULK_RUN_LEDGER": False}
    select(htmx_client, "book", [catalogue["books"][0].pk])
    html = htmx_client.get("/book/bulk/delete/").content.decode()
    assert "selected book? This cannot be undone." in html


def test_the_confirmation_without_a_selection_offers_no_button(
    htmx_client: HtmxClient, catalogue: Catalogue
) -> None:
    html = htmx_client.get("/book/bulk/delete/").content.decode()
    assert "No rows are selected. Close this and tick some rows first." in html
    assert "pc-btn-danger" not in html
    response = delete(htmx_client, "book")
    assert response.status_code == 400
    assert "No rows are selected. Select rows in the list first." in response.content.decode()
    assert Book.objects.count() == 30


def test_per_row_mode_is_named(htmx_client: HtmxClient, authors: dict[str, Author]) -> None:
    select(htmx_client, "per-row-authors", [authors["free"].pk])
    html = htmx_client.get("/per-row-authors/bulk/delete/").content.decode()
    assert "Rows that cannot be deleted are kept and listed." in html
    assert "Delete 1 author<" in html


# ----- deleting -----------------------------------------------------------------------------------
def test_deletes_exactly_the_selection_and_clears_it(htmx_client: HtmxClient, catalogue: Catalogue) -> None:
    doomed = [catalogue["books"][i].pk for i in (0, 5, 29)]
    select(htmx_client, "book", doomed)
    response = delete(htmx_client, "book")
    assert response.status_code == 204
    # The toast offers the run's page (where a delete can be undone); no "Reselect": the rows are gone.
    run = BulkTask.objects.get()
    trigger = json.loads(response.headers["HX-Trigger"])
    assert trigger == {"pcSaved": {"message": "Deleted 3 books.", "undo_url": f"/powercrud/tasks/{run.pk}/"}}
    assert remaining_books() == {b.pk for b in catalogue["books"]} - set(doomed)
    assert not Book.tags.through.objects.filter(book_id__in=doomed).exists()  # Book 00's links went too
    assert Tag.objects.count() == 2
    assert "powercrud:selection:testapp.book:book" not in htmx_client.session
    assert "Tick rows to work on several at once" in htmx_client.get("/book/").content.decode()


def test_without_htmx_a_delete_redirects_with_a_message(admin_client: Client, catalogue: Catalogue) -> None:
    select(admin_client, "book", [catalogue["books"][1].pk])
    response = delete(admin_client, "book")
    assert response.status_code == 302
    assert response.url == "/book/"
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Deleted 1 book."]
    assert Book.objects.count() == 29


def test_select_all_matching_with_exceptions_deletes_exactly_those_rows(
    htmx_client: HtmxClient, catalogue: Catalogue
) -> None:
    books = catalogue["books"]
    select_all(htmx_client, "book", "status=archived")  # Book 03, 07, ..., 27
    select(htmx_client, "book", [books[7].pk], checked=False)
    select(htmx_client, "book", [books[0].pk])
    assert delete(htmx_client, "book").status_code == 204
    gone = {b.pk for b in books if b.status == "archived" and b.pk != books[7].pk} | {books[0].pk}
    assert remaining_books() == {b.pk for b in books} - gone


def test_a_dry_run_deletes_nothing(htmx_client: HtmxClient, catalogue: Catalogue) -> None:
    select(htmx_client, "book", [b.pk for b in catalogue["books"][:4]])
    response = delete(htmx_client, "book", dry_run=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Check complete — nothing was saved." in html
    assert "4 of 4 rows would be deleted." in html
    assert Book.objects.count() == 30
    assert "HX-Trigger" not in response.headers


# ----- protected rows -----------------------------------------------------------------------------
def test_all_or_nothing_a_protected_row_keeps_every_row(
    htmx_client: HtmxClient, authors: dict[str, Author]
) -> None:
    chosen = [authors["free"].pk, authors["protected"].pk, authors["spare"].pk]
    select(htmx_client, "authors", chosen)
    response = delete(htmx_client, "authors")
    assert response.status_code == 200
    assert Author.objects.filter(pk__in=chosen).count() == 3
    result = response.context["result"]
    assert (result.success, result.success_records) == (False, 0)
    [error] = result.errors
    assert error.pk == authors["protected"].pk
    assert error.messages[0].startswith(
        f"Author {authors['protected'].pk} cannot be deleted: it is still used by 10 books"
    )
    html = response.content.decode()
    assert (
        "<strong>Nothing was deleted.</strong> 1 row failed, and this screen deletes all rows or none."
        in html
    )
    protected = authors["protected"].pk
    assert f"<tr>{row_cell(f'/authors/{protected}/', protected)}" in html
    assert "HX-Trigger" not in response.headers
    assert len(htmx_client.session["powercrud:selection:testapp.author:authors"]["ids"]) == 3


def test_per_row_a_protected_row_is_listed_and_the_rest_deleted(
    htmx_client: HtmxClient, authors: dict[str, Author]
) -> None:
    select(htmx_client, "per-row-authors", [a.pk for a in authors.values()])
    response = delete(htmx_client, "per-row-authors")
    assert response.status_code == 200
    assert set(Author.objects.values_list("name", flat=True)) == {
        "Ursula Le Guin",
        "Italo Calvino",
        "Chinua Achebe",
    }
    assert [e.pk for e in response.context["result"].errors] == [authors["protected"].pk]
    html = response.content.decode()
    assert "<strong>2 deleted, 1 failed.</strong>" in html
    assert "cannot be deleted: it is still used by 10 books" in html
    assert json.loads(response.headers["HX-Trigger"]) == {"pcRefresh": {}}
    assert Book.objects.count() == 30


# ----- scope, cascades and UUIDs ------------------------------------------------------------------
def test_rows_outside_the_scope_are_never_deleted(user_factory: Any, catalogue: Catalogue) -> None:
    user = user_factory("italo", "view_book", "delete_book")
    user.first_name = "Italo Calvino"
    user.save()
    client = HtmxClient()
    client.force_login(user)
    select(client, "my-books", [b.pk for b in catalogue["books"]])
    assert "Delete 10 books" in client.get("/my-books/bulk/delete/").content.decode()
    assert delete(client, "my-books").status_code == 204
    assert set(Book.objects.values_list("author__name", flat=True)) == {"Ursula Le Guin", "Chinua Achebe"}
    assert Book.objects.count() == 20


def test_cascades_and_signals_run_on_the_per_row_view(htmx_client: HtmxClient) -> None:
    shelves = [Shelf.objects.create(name=name) for name in ("Attic", "Basement", "Cellar")]
    assert ShelfEvent.objects.count() == 3
    select(htmx_client, "shelf", [shelves[0].pk, shelves[2].pk])
    response = delete(htmx_client, "shelf")
    assert response.status_code == 204
    assert list(Shelf.objects.values_list("name", flat=True)) == ["Basement"]
    assert list(ShelfEvent.objects.values_list("message", flat=True)) == ["Basement created"]


def test_uuid_primary_keys(htmx_client: HtmxClient) -> None:
    assets = [Asset.objects.create(code=f"A-{i}") for i in range(3)]
    select(htmx_client, "asset", [str(assets[1].pk)])
    assert "Delete 1 asset" in htmx_client.get("/asset/bulk/delete/").content.decode()
    assert delete(htmx_client, "asset").status_code == 204
    assert list(Asset.objects.values_list("code", flat=True)) == ["A-0", "A-2"]


def test_a_reason_with_a_nul_character_is_a_400_naming_it_and_deletes_nothing(
    htmx_client: HtmxClient, catalogue: Catalogue
) -> None:
    """PostgreSQL refuses NUL in text (it was a 500 there, after the rows were gone in the
    transaction); every database now gets the same 400 before anything runs."""
    select(htmx_client, "book", [catalogue["books"][0].pk])
    response = htmx_client.post("/book/bulk/delete/", {"reason": "tidy\x00up"})
    assert response.status_code == 400
    assert "reason" in response.content.decode() and "NUL" in response.content.decode()
    assert remaining_books() == {b.pk for b in catalogue["books"]}
    assert not BulkTask.objects.exists()
