"""Bulk roles, secure by default: permissions, CSRF, safe methods, tampered and malformed
input, and escaping of everything a user or a service can put on the page."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from tests.bulk_urls import BOOK_BULK_FIELDS, SCRIPT, book_snapshot, select
from tests.conftest import HtmxClient
from tests.testapp.models import Author, Book

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.bulk_urls")]

Catalogue = dict[str, Any]
DENIED = "You do not have permission to do this."
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"
VALID_EDIT = {"change_status": "1", "status": "archived"}


def client_for(user: Any, htmx: bool = False, **kwargs: Any) -> Client:
    client = HtmxClient(**kwargs) if htmx else Client(**kwargs)
    client.force_login(user)
    return client


def chosen(client: Client, catalogue: Catalogue, base: str = "book") -> list[int]:
    pks = [b.pk for b in catalogue["books"][:3]]
    assert select(client, base, pks).status_code == 200
    return pks


# ----- permissions ------------------------------------------------------------------------------
@pytest.mark.parametrize("htmx", [False, True])
def test_bulk_edit_needs_the_change_permission(user_factory: Any, catalogue: Catalogue, htmx: bool) -> None:
    client = client_for(user_factory("deleter", "view_book", "delete_book"), htmx=htmx)
    chosen(client, catalogue)
    before = book_snapshot()
    for response in (client.get("/book/bulk/edit/"), client.post("/book/bulk/edit/", VALID_EDIT)):
        assert response.status_code == 403
        assert DENIED in response.content.decode()
    assert book_snapshot() == before


@pytest.mark.parametrize("htmx", [False, True])
def test_bulk_delete_needs_the_delete_permission(user_factory: Any, catalogue: Catalogue, htmx: bool) -> None:
    client = client_for(user_factory("editor", "view_book", "change_book"), htmx=htmx)
    chosen(client, catalogue)
    for response in (client.get("/book/bulk/delete/"), client.post("/book/bulk/delete/")):
        assert response.status_code == 403
        assert DENIED in response.content.decode()
    assert Book.objects.count() == 30
    assert len(client.session["powercrud:selection:testapp.book:book"]["ids"]) == 3


def test_a_view_only_user_may_select_but_not_edit_or_delete(user_factory: Any, catalogue: Catalogue) -> None:
    client = client_for(user_factory("viewer", "view_book"))
    chosen(client, catalogue)
    html = client.get("/book/").content.decode()
    # A viewer's list has no selection controls at all (nothing to do with a selection).
    assert 'id="pc-selection"' not in html and "pc-select-row" not in html
    assert "Edit selected" not in html and "Delete selected" not in html
    before = book_snapshot()
    assert client.post("/book/bulk/edit/", VALID_EDIT).status_code == 403
    assert client.post("/book/bulk/delete/").status_code == 403
    assert book_snapshot() == before


def test_each_bulk_action_is_offered_only_with_its_permission(
    user_factory: Any, catalogue: Catalogue
) -> None:
    editor = client_for(user_factory("editor", "view_book", "change_book"))
    chosen(editor, catalogue)
    html = editor.get("/book/").content.decode()
    assert "Edit selected" in html and "Delete selected" not in html
    deleter = client_for(user_factory("deleter", "view_book", "delete_book"))
    chosen(deleter, catalogue)
    html = deleter.get("/book/").content.decode()
    assert "Edit selected" not in html and "Delete selected" in html


def test_editing_with_the_change_permission_works(user_factory: Any, catalogue: Catalogue) -> None:
    client = client_for(user_factory("editor", "view_book", "change_book"), htmx=True)
    pks = chosen(client, catalogue)
    assert client.post("/book/bulk/edit/", VALID_EDIT).status_code == 204
    assert set(Book.objects.filter(pk__in=pks).values_list("status", flat=True)) == {"archived"}


@pytest.mark.parametrize("url", ["/book/bulk/edit/", "/book/bulk/delete/", "/book/selection/"])
def test_anonymous_users_are_sent_to_log_in(catalogue: Catalogue, url: str) -> None:
    response = Client().post(url, VALID_EDIT)
    assert response.status_code == 302
    assert response.url == f"/accounts/login/?next={url}"
    response = HtmxClient().get(url)
    assert response.headers["HX-Redirect"] == f"/accounts/login/?next={url}"
    assert Book.objects.filter(status="archived").count() == 7


# ----- CSRF and safe methods -------------------------------------------------------------------
def test_bulk_posts_need_a_csrf_token(admin_user: Any, catalogue: Catalogue) -> None:
    client = client_for(admin_user, enforce_csrf_checks=True)
    session = client.session
    session["powercrud:selection:testapp.book:book"] = {
        "mode": "ids",
        "ids": [str(b.pk) for b in catalogue["books"][:3]],
    }
    session.save()
    before = book_snapshot()
    assert client.post("/book/bulk/edit/", VALID_EDIT).status_code == 403
    assert client.post("/book/bulk/delete/").status_code == 403
    assert book_snapshot() == before
    # With the token from the modal's form, the same post goes through.
    page = client.get("/book/bulk/edit/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert client.post("/book/bulk/edit/", {**VALID_EDIT, "csrfmiddlewaretoken": token}).status_code == 302
    assert Book.objects.filter(status="archived").count() == 7 + 3


@pytest.mark.parametrize("url", ["/book/bulk/edit/", "/book/bulk/delete/"])
def test_get_and_head_never_change_anything(admin_client: Client, catalogue: Catalogue, url: str) -> None:
    chosen(admin_client, catalogue)
    before = book_snapshot()
    query = {**VALID_EDIT, "dry_run": "0", "action": "clear"}
    assert admin_client.get(url, query).status_code == 200
    assert admin_client.head(url, query).status_code == 200
    assert book_snapshot() == before
    assert len(admin_client.session["powercrud:selection:testapp.book:book"]["ids"]) == 3


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
@pytest.mark.parametrize("url", ["/book/bulk/edit/", "/book/bulk/delete/", "/book/selection/"])
def test_other_methods_are_not_allowed(
    admin_client: Client, catalogue: Catalogue, method: str, url: str
) -> None:
    chosen(admin_client, catalogue)
    assert getattr(admin_client, method)(url).status_code == 405
    assert Book.objects.count() == 30


# ----- tampered and malformed input --------------------------------------------------------------
@pytest.mark.parametrize("name", ["title", "id", "pk", "pages", "tags__op", "author_id", "Status", SCRIPT])
def test_fields_outside_bulk_fields_are_a_400(
    htmx_client: HtmxClient, catalogue: Catalogue, name: str
) -> None:
    chosen(htmx_client, catalogue)
    before = book_snapshot()
    response = htmx_client.post("/book/bulk/edit/", {**VALID_EDIT, f"change_{name}": "1", name: "1"})
    assert response.status_code == 400
    body = response.content.decode()
    allowed = ", ".join(sorted(BOOK_BULK_FIELDS))
    shown = ESCAPED_SCRIPT if name == SCRIPT else name
    assert body == (
        '<div class="pc-alert pc-alert-error" role="alert">'
        f"“{shown}” cannot be changed in bulk here. Allowed fields: {allowed}.</div>"
    )
    assert book_snapshot() == before


MALFORMED = [
    {"change_price": "1", "price": "NaN"},
    {"change_price": "1", "price": "Infinity"},
    {"change_price": "1", "price": "1e10"},
    {"change_price": "1", "price": "0x10"},
    {"change_price": "1", "price": SCRIPT},
    {"change_status": "1", "status": ["published", "bogus"]},
    {"change_genre": "1", "genre": "-1"},
    {"change_genre": "1", "genre": str(2**70)},
    {"change_author": "1", "author": "1.5"},
    {"change_is_available": "1", "is_available": ""},
    {"change_published_date": "1", "published_date": "99999-01-01"},
    {"change_tags": "1", "tags__op": "add", "tags": ["abc"]},
    {"change_tags": "1", "tags__op": "add", "tags": [str(2**70)]},
    {"change_tags": "1", "tags__op": ["add", "explode"], "tags": ["1"]},
    {"change_tags": "1", "tags__op": "", "tags": ["1"]},
]


@pytest.mark.parametrize("data", MALFORMED, ids=[str(d)[:60] for d in MALFORMED])
def test_malformed_values_are_refused_without_a_write(
    htmx_client: HtmxClient, catalogue: Catalogue, data: dict[str, Any]
) -> None:
    chosen(htmx_client, catalogue)
    before = book_snapshot()
    response = htmx_client.post("/book/bulk/edit/", data)
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert "pc-has-error" in response.content.decode()
    assert SCRIPT not in response.content.decode()
    assert book_snapshot() == before


def test_a_non_empty_tag_list_with_a_bad_id_names_it(htmx_client: HtmxClient, catalogue: Catalogue) -> None:
    chosen(htmx_client, catalogue)
    response = htmx_client.post(
        "/book/bulk/edit/",
        {"change_tags": "1", "tags__op": "replace", "tags": [catalogue["tags"][0].pk, "abc"]},
    )
    assert response.status_code == 200
    assert "“abc” is not a valid value." in response.content.decode().replace("&quot;", "“")
    assert list(Book.objects.get(pk=catalogue["books"][1].pk).tags.all()) == []


# ----- escaping -------------------------------------------------------------------------------------
def test_titles_and_names_render_escaped_in_the_modal(htmx_client: HtmxClient, catalogue: Catalogue) -> None:
    book = catalogue["books"][3]  # archived
    Book.objects.filter(pk=book.pk).update(title=SCRIPT)
    Author.objects.filter(pk=catalogue["authors"][1].pk).update(name=SCRIPT)
    select(htmx_client, "book", [book.pk, catalogue["books"][0].pk])
    form_html = htmx_client.get("/book/bulk/edit/").content.decode()
    assert SCRIPT not in form_html and ESCAPED_SCRIPT in form_html  # the author choice
    before = book_snapshot()
    for dry_run in ("1", "0"):
        response = htmx_client.post(
            "/book/bulk/edit/", {"change_price": "1", "price": "1.00", "dry_run": dry_run}
        )
        assert response.status_code == 200
        html = response.content.decode()
        assert SCRIPT not in html
        assert f"“{ESCAPED_SCRIPT}” is archived; archived books cannot be re-priced." in html
    assert book_snapshot() == before
    assert Book.objects.get(pk=book.pk).price == Decimal("8.00")
    list_html = htmx_client.get("/book/").content.decode()
    assert SCRIPT not in list_html and f'aria-label="Select {ESCAPED_SCRIPT}"' in list_html


def test_error_text_in_a_400_is_escaped(htmx_client: HtmxClient, catalogue: Catalogue) -> None:
    response = htmx_client.post("/book/selection/", {"action": "set", "checked": "1", "pk": SCRIPT})
    assert response.status_code == 400
    assert SCRIPT not in response.content.decode() and ESCAPED_SCRIPT in response.content.decode()
