"""The SELECTION role through HTTP: ticking rows, pages and ranges, select-all-matching,
persistence across pages, sorts and filters, the id cap, and malformed input."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils.html import escape

from powercrud.mixins.selection import MAX_QUERY_LENGTH
from tests.bulk_urls import SCRIPT, select, select_all, selection_url
from tests.conftest import HtmxClient
from tests.testapp.models import Asset, Book

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.bulk_urls")]

KEY = "powercrud:selection:testapp.book:book"
ROW_BOX = re.compile(r'<input type="checkbox" class="pc-select-row" value="([^"]+)"[^>]*>')


def stored(client: Client, key: str = KEY) -> Any:
    return client.session.get(key)


def checked_rows(response: Any) -> set[str]:
    """The row checkboxes rendered ticked in a list page."""
    html = response.content.decode()
    return {m.group(1) for m in ROW_BOX.finditer(html) if " checked" in m.group(0)}


def bar_count(response: Any) -> int | None:
    """The count in the selection bar, or None when it shows nothing selected."""
    match = re.search(
        r'<span class="pc-selection-count"><strong>([\d,]+)</strong> selected', response.content.decode()
    )
    return int(match.group(1).replace(",", "")) if match else None


def pks(catalogue: dict[str, Any], *indexes: int) -> list[int]:
    return [catalogue["books"][i].pk for i in indexes]


# ----- ticking rows ------------------------------------------------------------------------------
@pytest.mark.parametrize("htmx", [False, True])
def test_ticking_a_row_stores_its_id_and_counts_it(
    admin_client: Client, htmx_client: HtmxClient, catalogue: dict[str, Any], htmx: bool
) -> None:
    client = htmx_client if htmx else admin_client
    response = select(client, "book", pks(catalogue, 3))
    assert response.status_code == 200
    assert bar_count(response) == 1
    assert 'id="pc-selection"' in response.content.decode()
    assert "Edit selected" in response.content.decode()
    assert stored(client) == {
        "mode": "ids",
        "ids": [str(catalogue["books"][3].pk)],
        "query": "",
        "excluded": [],
        "included": [],
    }
    assert "HX-Trigger" not in response.headers


def test_page_and_shift_range_selections_post_several_ids(
    admin_client: Client, catalogue: dict[str, Any]
) -> None:
    page = pks(catalogue, *range(25))
    assert bar_count(select(admin_client, "book", page)) == 25
    assert stored(admin_client)["ids"] == [str(pk) for pk in page]
    # A shift-click range overlapping what is ticked adds only the new rows, in order.
    response = select(admin_client, "book", pks(catalogue, 23, 24, 25, 26))
    assert bar_count(response) == 27
    assert stored(admin_client)["ids"] == [str(pk) for pk in pks(catalogue, *range(27))]


def test_unticking_removes_rows_and_an_empty_selection_leaves_the_session(
    admin_client: Client, catalogue: dict[str, Any]
) -> None:
    select(admin_client, "book", pks(catalogue, 1, 2, 3, 4))
    response = select(admin_client, "book", pks(catalogue, 2, 4), checked=False)
    assert bar_count(response) == 2
    assert stored(admin_client)["ids"] == [str(pk) for pk in pks(catalogue, 1, 3)]
    response = select(admin_client, "book", pks(catalogue, 1, 3, 9), checked=False)
    assert bar_count(response) is None
    assert "Tick rows to work on several at once" in response.content.decode()
    assert stored(admin_client) is None


def test_clear_empties_the_selection_and_resets_the_list(
    htmx_client: HtmxClient, catalogue: dict[str, Any]
) -> None:
    select(htmx_client, "book", pks(catalogue, 1, 2))
    response = htmx_client.post(selection_url("book"), {"action": "clear"})
    assert response.status_code == 200
    assert bar_count(response) is None
    assert stored(htmx_client) is None
    assert json.loads(response.headers["HX-Trigger"]) == {"pcSelectionReset": {}}


# ----- persistence ---------------------------------------------------------------------------------
def test_selection_persists_across_pages_sorts_and_filters(
    admin_client: Client, catalogue: dict[str, Any]
) -> None:
    chosen = pks(catalogue, 2, 27)  # Book 02 on page 1, Book 27 on page 2 (25 per page)
    select(admin_client, "book", chosen)
    page_one = admin_client.get("/book/")
    assert checked_rows(page_one) == {str(chosen[0])}
    assert bar_count(page_one) == 2
    page_two = admin_client.get("/book/?page=2")
    assert checked_rows(page_two) == {str(chosen[1])}
    assert bar_count(page_two) == 2
    # Sorted by price descending on one larger page, both rows show ticked.
    by_price = admin_client.get("/book/?sort=-price&page_size=50")
    assert checked_rows(by_price) == {str(pk) for pk in chosen}
    # A filter that hides one selected row hides its checkbox but not its place in the count.
    status = catalogue["books"][27].status
    filtered = admin_client.get(f"/book/?status={status}")
    assert checked_rows(filtered) == {str(chosen[1])}
    assert bar_count(filtered) == 2
    # The HTMX partial of the list marks the same rows.
    partial = admin_client.get("/book/?page=2", HTTP_HX_REQUEST="true")
    assert checked_rows(partial) == {str(chosen[1])}
    assert 'class="pc-row-selected"' in partial.content.decode()


def test_the_selection_is_per_view_and_per_user(
    admin_client: Client, user_factory: Any, catalogue: dict[str, Any]
) -> None:
    select(admin_client, "book", pks(catalogue, 1, 2))
    assert bar_count(admin_client.get("/plain-books/")) is None
    other = Client()
    other.force_login(user_factory("other", superuser=True))
    assert bar_count(other.get("/book/")) is None
    assert bar_count(admin_client.get("/book/")) == 2


def test_ids_of_deleted_rows_drop_out_of_the_count(admin_client: Client, catalogue: dict[str, Any]) -> None:
    select(admin_client, "book", pks(catalogue, 1, 2, 3))
    catalogue["books"][2].delete()
    assert bar_count(admin_client.get(selection_url("book"))) == 2


def test_a_corrupt_stored_selection_is_treated_as_empty(
    admin_client: Client, catalogue: dict[str, Any]
) -> None:
    session = admin_client.session
    session[KEY] = {"mode": "bogus", "ids": 7}
    session.save()
    response = admin_client.get("/book/")
    assert response.status_code == 200
    assert bar_count(response) is None


# ----- select all matching -------------------------------------------------------------------------
@pytest.mark.parametrize("htmx", [False, True])
def test_select_all_matching_stores_the_filter_not_the_ids(
    admin_client: Client, htmx_client: HtmxClient, catalogue: dict[str, Any], htmx: bool
) -> None:
    client = htmx_client if htmx else admin_client
    select(client, "book", pks(catalogue, 1))  # replaced by select-all
    response = select_all(client, "book", "status=draft&sort=-price&page=2&page_size=10")
    assert response.status_code == 200
    drafts = Book.objects.filter(status="draft").count()
    assert drafts == 8
    assert bar_count(response) == drafts
    assert "all matching a filter" in response.content.decode()
    assert stored(client) == {
        "mode": "all",
        "ids": [],
        "query": "status=draft&sort=-price&page_size=10",
        "excluded": [],
        "included": [],
    }
    assert json.loads(response.headers["HX-Trigger"]) == {"pcSelectionReset": {}}


def test_select_all_matching_honours_search_and_an_empty_filter(
    admin_client: Client, catalogue: dict[str, Any]
) -> None:
    assert bar_count(select_all(admin_client, "book", "q=Book+1")) == 12  # Book 01, 10 .. 19, 21
    assert bar_count(select_all(admin_client, "book", "")) == 30


def test_deselections_and_inclusions_after_select_all_are_honoured(
    admin_client: Client, catalogue: dict[str, Any]
) -> None:
    books = catalogue["books"]
    select_all(admin_client, "book", "status=draft")  # Book 00, 04, ..., 28
    response = select(admin_client, "book", pks(catalogue, 0, 4), checked=False)
    assert bar_count(response) == 6
    assert "2 left out" in response.content.decode()
    response = select(admin_client, "book", pks(catalogue, 1))  # a published book
    assert bar_count(response) == 7
    session = stored(admin_client)
    assert (session["mode"], session["query"]) == ("all", "status=draft")
    assert session["excluded"] == [str(books[0].pk), str(books[4].pk)]
    assert session["included"] == [str(books[1].pk)]
    page = admin_client.get("/book/")
    expected = {str(b.pk) for b in books[:25] if b.status == "draft"} - {str(books[0].pk), str(books[4].pk)}
    assert checked_rows(page) == expected | {str(books[1].pk)}
    # Ticking an excluded row again brings it back; unticking the included one drops it.
    select(admin_client, "book", pks(catalogue, 4))
    response = select(admin_client, "book", pks(catalogue, 1), checked=False)
    assert bar_count(response) == 7
    assert checked_rows(admin_client.get("/book/")) == expected | {str(books[4].pk)}


def test_the_stored_filter_is_re_evaluated_when_rows_change(
    admin_client: Client, catalogue: dict[str, Any]
) -> None:
    select_all(admin_client, "book", "status=draft")
    Book.objects.filter(pk=catalogue["books"][1].pk).update(status="draft")
    assert bar_count(admin_client.get(selection_url("book"))) == 9


def test_a_filter_too_long_to_store_is_refused(admin_client: Client, catalogue: dict[str, Any]) -> None:
    response = select_all(admin_client, "book", "q=" + "x" * MAX_QUERY_LENGTH)
    assert response.status_code == 400
    assert response.content.decode() == "The filter is too long to store."
    assert stored(admin_client) is None


# ----- the id cap -----------------------------------------------------------------------------------
def book_queries(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if "testapp_" in q["sql"]]


@override_settings(POWERCRUD_SETTINGS={"SELECTION_ID_CAP": 5})
def test_the_cap_is_enforced_before_any_query(admin_client: Client, catalogue: dict[str, Any]) -> None:
    admin_client.get("/book/")  # load the session and the user once
    with CaptureQueriesContext(connection) as captured:
        response = select(admin_client, "book", ["1", "2", "3", "4", "5", "6"])
    assert response.status_code == 400
    assert response.content.decode() == (
        "Too many ids: 6 sent, at most 5 allowed. Use “select all matching” for large selections."
    )
    assert book_queries(captured) == []
    assert stored(admin_client) is None


@override_settings(POWERCRUD_SETTINGS={"SELECTION_ID_CAP": 5})
def test_the_cap_counts_every_explicit_id_the_selection_holds(
    admin_client: Client, catalogue: dict[str, Any]
) -> None:
    select(admin_client, "book", pks(catalogue, 0, 1, 2))
    with CaptureQueriesContext(connection) as captured:
        response = select(admin_client, "book", pks(catalogue, 3, 4, 5))
    assert response.status_code == 400
    assert response.content.decode() == (
        "A selection may hold at most 5 individually chosen rows. Use “select all matching” instead."
    )
    assert book_queries(captured) == []
    assert stored(admin_client)["ids"] == [str(pk) for pk in pks(catalogue, 0, 1, 2)]
    # After select-all, exclusions and inclusions count towards the same cap.
    select_all(admin_client, "book", "status=draft")
    select(admin_client, "book", pks(catalogue, 0, 4, 8), checked=False)
    response = select(admin_client, "book", pks(catalogue, 1, 2, 3))
    assert response.status_code == 400
    assert stored(admin_client)["excluded"] == [str(pk) for pk in pks(catalogue, 0, 4, 8)]


def test_the_default_cap_is_generous(admin_client: Client, catalogue: dict[str, Any]) -> None:
    # 900 ids (Django itself refuses posts of more than 1,000 fields): 30 real, 870 unknown.
    ids = [book.pk for book in catalogue["books"]] + [10**12 + n for n in range(870)]
    response = select(admin_client, "book", ids)
    assert response.status_code == 200
    assert bar_count(response) == 30


# ----- malformed input ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("abc", "'abc'"),
        ("", "''"),
        ("  ", "''"),
        ("1.5", "'1.5'"),
        (str(uuid.UUID(int=7)), "'00000000-0000-0000-0000-000000000007'"),
        (SCRIPT, f"'{SCRIPT}'"),
        (str(2**63), f"'{2**63}'"),  # past a 64-bit key: SQLite cannot even bind it
        ("-" + "9" * 30, "'-" + "9" * 30 + "'"),
    ],
)
def test_malformed_ids_are_a_400_naming_the_value(
    admin_client: Client, catalogue: dict[str, Any], raw: str, shown: str
) -> None:
    select(admin_client, "book", pks(catalogue, 1))
    response = admin_client.post(selection_url("book"), {"action": "set", "checked": "1", "pk": ["2", raw]})
    assert response.status_code == 400
    assert response.content.decode() == escape(f"{shown} is not a valid id for book.")
    assert "<script>" not in response.content.decode()
    assert stored(admin_client)["ids"] == [str(catalogue["books"][1].pk)]


def test_htmx_shows_a_refusal_inside_the_bar_and_keeps_the_bar(
    htmx_client: HtmxClient, catalogue: dict[str, Any]
) -> None:
    bar = select(htmx_client, "book", pks(catalogue, 1))
    assert '<span id="pc-selection-error" class="pc-field-error" role="alert"></span>' in bar.content.decode()
    response = htmx_client.post(selection_url("book"), {"action": "set", "checked": "1", "pk": ["x"]})
    assert response.status_code == 400
    assert (response.headers["HX-Retarget"], response.headers["HX-Reswap"]) == (
        "#pc-selection-error",
        "innerHTML",
    )
    assert response.content.decode() == escape("'x' is not a valid id for book.")
    plain = Client()
    plain.force_login(User.objects.get(username="boss"))
    response = plain.post(selection_url("book"), {"action": "explode"})
    assert response.status_code == 400
    assert "HX-Retarget" not in response.headers


def test_duplicate_and_non_canonical_ids_are_stored_once(
    admin_client: Client, catalogue: dict[str, Any]
) -> None:
    pk = catalogue["books"][5].pk
    response = select(admin_client, "book", [str(pk), f" {pk} ", f"0{pk}", str(pk)])
    assert response.status_code == 200
    assert stored(admin_client)["ids"] == [str(pk)]
    assert bar_count(response) == 1


def test_ids_of_rows_that_do_not_exist_count_for_nothing(
    admin_client: Client, catalogue: dict[str, Any]
) -> None:
    response = select(admin_client, "book", ["-1", "0", str(10**12), str(2**62)])
    assert response.status_code == 200
    assert bar_count(response) is None
    assert bar_count(admin_client.get("/book/")) is None


@pytest.mark.parametrize("action", ["explode", "", "SET"])
def test_an_unknown_action_is_a_400(admin_client: Client, catalogue: dict[str, Any], action: str) -> None:
    select(admin_client, "book", pks(catalogue, 1))
    response = admin_client.post(selection_url("book"), {"action": action, "pk": "2"})
    assert response.status_code == 400
    assert response.content.decode() == "Unknown selection action; use set, all, clear or restore."
    assert stored(admin_client)["ids"] == [str(catalogue["books"][1].pk)]


def test_uuid_ids_are_validated_and_canonicalised(admin_client: Client) -> None:
    assets = [Asset.objects.create(code=f"A-{i}") for i in range(3)]
    key = "powercrud:selection:testapp.asset:asset"
    response = select(admin_client, "asset", [str(assets[0].pk).upper(), assets[1].pk.hex, str(assets[0].pk)])
    assert response.status_code == 200
    assert bar_count(response) == 2
    assert admin_client.session[key]["ids"] == [str(assets[0].pk), str(assets[1].pk)]
    assert checked_rows(admin_client.get("/asset/")) == {str(assets[0].pk), str(assets[1].pk)}
    response = select(admin_client, "asset", ["1"])
    assert response.status_code == 400
    assert response.content.decode() == escape("'1' is not a valid id for asset.")


# ----- reading, permissions and CSRF ---------------------------------------------------------------
def test_get_shows_the_bar_and_changes_nothing(admin_client: Client, catalogue: dict[str, Any]) -> None:
    select(admin_client, "book", pks(catalogue, 1, 2))
    response = admin_client.get(selection_url("book"), {"action": "clear"})
    assert response.status_code == 200
    assert bar_count(response) == 2
    response = admin_client.get(selection_url("book"), {"action": "all", "query": ""})
    assert bar_count(response) == 2
    assert stored(admin_client)["mode"] == "ids"


def test_a_view_only_user_may_select_but_sees_no_selection_controls(
    user_factory: Any, catalogue: dict[str, Any]
) -> None:
    client = Client()
    client.force_login(user_factory("viewer", "view_book"))
    response = select(client, "book", pks(catalogue, 1, 2))
    assert response.status_code == 200
    assert bar_count(response) == 2
    html = response.content.decode()
    assert "Edit selected" not in html and "Delete selected" not in html
    # ...but the list offers a viewer no checkboxes, no "Select all matching" and no hint.
    page = client.get("/book/").content.decode()
    assert "pc-select-row" not in page and "pc-select-page" not in page
    assert "Select all matching" not in page and "Tick rows" not in page


def test_selection_needs_the_view_permission_and_a_login(
    user_factory: Any, catalogue: dict[str, Any]
) -> None:
    client = Client()
    response = select(client, "book", pks(catalogue, 1))
    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/")
    client.force_login(user_factory("nobody"))
    assert select(client, "book", pks(catalogue, 1)).status_code == 403
    assert client.get(selection_url("book")).status_code == 403
    assert KEY not in client.session


def test_selection_posts_need_a_csrf_token(admin_user: Any, catalogue: dict[str, Any]) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert select(client, "book", pks(catalogue, 1)).status_code == 403
    assert KEY not in client.session


def test_views_without_bulk_roles_have_no_selection(admin_client: Client, catalogue: dict[str, Any]) -> None:
    assert admin_client.post("/genre/selection/", {"action": "clear"}).status_code == 404
    assert 'class="pc-select-row"' not in admin_client.get("/genre/").content.decode()


# ----- the selection as a queryset -------------------------------------------------------------
def selection_queryset(admin_user: Any, selection: Any) -> Any:
    from django.test import RequestFactory

    from powercrud.views import Role
    from tests.testapp.views import BookCRUDView

    view = BookCRUDView(role=Role.SELECTION)
    view.request = RequestFactory().get("/")
    view.request.user = admin_user
    view.request.session = {}
    return view.get_selection_queryset(selection)


@pytest.mark.parametrize(
    ("query", "excluded", "included", "wrapped"),
    [
        ("status=draft", False, False, False),  # the row's own columns: the rows themselves
        ("status=draft", True, False, False),
        ("", False, False, False),
        ("status=draft", True, True, True),  # rows added by hand: pk IN (matching) OR pk IN (...)
        ("q=Author", False, False, True),  # the search joins the author: kept as pk IN (...)
    ],
)
def test_select_all_is_the_filtered_rows_unless_a_join_or_an_inclusion_needs_a_subquery(
    admin_user: Any, catalogue: dict[str, Any], query: str, excluded: bool, included: bool, wrapped: bool
) -> None:
    from django.db.models import Q

    from powercrud.bulk.selection import Selection

    books = catalogue["books"]
    left_out = (str(books[0].pk),) if excluded else ()
    added = (str(books[1].pk),) if included else ()
    selection = Selection(mode="all", query=query, excluded=left_out, included=added)
    queryset = selection_queryset(admin_user, selection)
    expected = Book.objects.all()
    if "status" in query:
        expected = expected.filter(status="draft")
    if "q=" in query:
        expected = expected.filter(Q(title__icontains="Author") | Q(author__name__icontains="Author"))
    pks = set(expected.values_list("pk", flat=True))
    pks = (pks - ({books[0].pk} if excluded else set())) | ({books[1].pk} if included else set())
    found = list(queryset.values_list("pk", flat=True))
    assert sorted(found) == sorted(pks) and len(found) == len(set(found))  # every row once
    assert queryset.count() == len(pks)
    assert ("IN (SELECT" in str(queryset.query)) is wrapped
