"""The column chooser and saved views over HTTP: stored per user and per view in the database.

``tests/inline_urls.py`` serves ``/ibook/`` (chooser and saved views on, one shipped saved
view) and ``/plainbook/`` (the same list with both off: the query-count baseline).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from powercrud.models import ViewPreference
from tests.conftest import HtmxClient, make_user

pytestmark = pytest.mark.urls("tests.inline_urls")

KEY = "testapp.book:ibook"
PREFS = "/ibook/preferences/"


def headers(body: str) -> list[str]:
    """The table's column headers, in order (without the selection and actions columns)."""
    head = body.split("<thead>")[1].split("</thead>")[0]
    cells = re.findall(r'<th scope="col" class="pc-align-[^"]*"[^>]*>(.*?)</th>', head, flags=re.S)
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in cells]


def titles(body: str) -> list[str]:
    """The books listed, in order (the text of the table's body, tags left out)."""
    tbody = body.split("<tbody")[1].split("</tbody>")[0] if "<tbody" in body else ""
    return list(dict.fromkeys(re.findall(r"Book \d\d", re.sub(r"<[^>]+>", " ", tbody))))


def login(user: User, htmx: bool = False) -> Client:
    client = HtmxClient() if htmx else Client()
    client.force_login(user)
    return client


def columns(client: Client, order: list[str], show: list[str], **extra: str) -> Any:
    return client.post(PREFS, {"action": "columns", "state": "", "column": order, "show": show, **extra})


ALL = ["Title", "Author", "Status", "Price", "Pages", "Available", "Tags", "Price band"]
NAMES = ["title", "author", "status", "price", "pages", "is_available", "tags", "price_band"]


def test_the_chooser_is_a_form_that_works_without_javascript(
    admin_user: User, catalogue: dict[str, Any]
) -> None:
    client = login(admin_user)
    body = client.get("/ibook/").content.decode()
    assert headers(body) == ALL
    assert f'<form method="post" action="{PREFS}"' in body and 'name="action" value="columns"' in body
    response = columns(client, ["price", "title", "status"], ["price", "title"], state="status=draft&page=3")
    assert response.status_code == 302 and response["Location"] == "/ibook/?status=draft"
    stored = ViewPreference.objects.get(user=admin_user, view_key=KEY, kind="columns")
    assert stored.columns == ["price", "title"]
    assert headers(client.get(response["Location"]).content.decode()) == ["Price", "Title"]
    # Saving again updates the one stored choice.
    columns(client, NAMES, ["title", "author"])
    assert ViewPreference.objects.filter(user=admin_user, view_key=KEY).count() == 1


def test_the_choice_follows_the_user_to_a_new_session_and_not_to_other_users(
    admin_user: User, catalogue: dict[str, Any]
) -> None:
    columns(login(admin_user), ["status", "title"], ["status", "title"])
    again = Client()
    assert again.login(username="boss", password="pw")  # a real sign-in: a new session
    assert headers(again.get("/ibook/").content.decode()) == ["Status", "Title"]
    other = login(make_user("other", superuser=True))
    assert headers(other.get("/ibook/").content.decode()) == ALL
    # Other lists keep their own columns; the detail page shows every column.
    assert "Pages" in again.get(f"/ibook/{catalogue['books'][0].pk}/").content.decode()


def test_move_reorders_among_the_shown_columns(admin_user: User, catalogue: dict[str, Any]) -> None:
    client = login(admin_user)
    columns(client, NAMES, ["title", "status", "price"], move="price:up")
    assert headers(client.get("/ibook/").content.decode()) == ["Title", "Price", "Status"]
    columns(client, ["title", "price", "status"], ["title", "price", "status"], move="title:down")
    assert headers(client.get("/ibook/").content.decode()) == ["Price", "Title", "Status"]
    columns(
        client, ["price", "title", "status"], ["price", "title", "status"], move="price:up"
    )  # already first
    assert headers(client.get("/ibook/").content.decode()) == ["Price", "Title", "Status"]


def test_reset_returns_to_the_views_own_columns(admin_user: User, catalogue: dict[str, Any]) -> None:
    client = login(admin_user)
    columns(client, NAMES, ["title"])
    assert "Reset to the list" in client.get("/ibook/").content.decode()
    response = client.post(PREFS, {"action": "reset", "state": "sort=-price"})
    assert response.status_code == 302 and response["Location"] == "/ibook/?sort=-price"
    assert not ViewPreference.objects.filter(user=admin_user).exists()
    body = client.get("/ibook/").content.decode()
    assert headers(body) == ALL and "Reset to the list" not in body


def test_unknown_names_in_a_stored_choice_or_a_link_are_ignored(
    admin_user: User, catalogue: dict[str, Any]
) -> None:
    client = login(admin_user)
    pref = ViewPreference.objects.create(user=admin_user, view_key=KEY, columns=["gone", "price", 7, "price"])
    assert headers(client.get("/ibook/").content.decode()) == ["Price"]
    for bad in (["gone"], {"a": 1}, "title", [None], 3):
        pref.columns = bad
        pref.save()
        response = client.get("/ibook/")
        assert response.status_code == 200 and headers(response.content.decode()) == ALL
    assert headers(client.get("/ibook/?columns=nope,pages,,title").content.decode()) == ["Pages", "Title"]
    assert headers(client.get("/ibook/?columns=nope").content.decode()) == ALL
    # The chooser drops unknown names too, and refuses to hide every column.
    columns(client, ["bogus", "pages"], ["bogus", "pages"])
    assert ViewPreference.objects.get(user=admin_user, kind="columns").columns == ["pages"]
    none = columns(client, NAMES, ["bogus"])
    assert none.status_code == 400 and none.content.decode() == "Show at least one column."
    assert client.post(PREFS, {"action": "columns", "move": ["a:up", "b:up"]}).status_code == 400
    assert client.post(PREFS, {"action": "explode"}).status_code == 400


def test_htmx_answers_send_the_list_back_into_its_content(
    admin_user: User, catalogue: dict[str, Any]
) -> None:
    client = login(admin_user, htmx=True)
    response = columns(client, NAMES, ["title", "price"], state="status=draft")
    assert response.status_code == 204
    assert json.loads(response["HX-Location"]) == {
        "path": "/ibook/?status=draft",
        "target": "#pc-content",
        "swap": "outerHTML",
    }
    assert json.loads(response["HX-Trigger"]) == {"pcPreferenceSaved": {"message": "Columns saved."}}
    refused = columns(client, NAMES, [])
    assert refused.status_code == 400 and refused["HX-Reswap"] == "none"


def test_a_saved_view_keeps_filters_search_sort_page_size_and_columns(
    admin_user: User, catalogue: dict[str, Any]
) -> None:
    client = login(admin_user)
    state = "status=draft&q=Book&sort=-price&page_size=25&page=2&view=&columns=title,price"
    response = client.post(
        PREFS,
        {"action": "save_view", "name": "  My   drafts ", "state": state, "columns": "title,price,x"},
    )
    view = ViewPreference.objects.get(user=admin_user, kind="saved")
    assert (view.name, view.view_key, view.columns) == ("My drafts", KEY, ["title", "price"])
    assert view.query == "page_size=25&q=Book&sort=-price&status=draft"
    assert response.status_code == 302
    assert response["Location"] == f"/ibook/?page_size=25&q=Book&sort=-price&status=draft&view={view.pk}"
    body = client.get(response["Location"]).content.decode()
    assert headers(body) == ["Title", "Price"]
    assert titles(body) == [
        "Book 28",
        "Book 24",
        "Book 20",
        "Book 16",
        "Book 12",
        "Book 08",
        "Book 04",
        "Book 00",
    ]
    assert "Views: My drafts" in body
    # The filter form carries the saved view, so changing a filter keeps its columns.
    assert f'<input type="hidden" name="view" value="{view.pk}" form="pc-filters">' in body
    changed = client.get(f"/ibook/?status=published&view={view.pk}").content.decode()
    assert headers(changed) == ["Title", "Price"] and "(changed)" in changed
    # It is listed in the menu of every page of this list, and not in anyone else's.
    listed = client.get("/ibook/").content.decode()
    assert (
        f'href="/ibook/?page_size=25&amp;q=Book&amp;sort=-price&amp;status=draft&amp;view={view.pk}"'
        in listed
    )
    assert "My drafts" not in login(make_user("other", superuser=True)).get("/ibook/").content.decode()


def test_the_view_ships_its_own_saved_views(admin_user: User, catalogue: dict[str, Any]) -> None:
    body = login(admin_user).get("/ibook/").content.decode()
    assert '<a class="pc-link" href="/ibook/?sort=-price&amp;status=draft">Drafts by price</a>' in body
    current = login(admin_user).get("/ibook/?sort=-price&status=draft").content.decode()
    assert 'href="/ibook/?sort=-price&amp;status=draft" aria-current="true">Drafts by price' in current


def test_a_shared_link_opens_the_same_state_re_scoped_for_whoever_opens_it(
    admin_user: User, catalogue: dict[str, Any]
) -> None:
    owner = login(admin_user)
    owner.post(
        PREFS, {"action": "save_view", "name": "Drafts", "state": "status=draft", "columns": "price,title"}
    )
    view = ViewPreference.objects.get(kind="saved")
    body = owner.get(f"/ibook/?status=draft&view={view.pk}").content.decode()
    share = "http://testserver/ibook/?status=draft&amp;columns=price%2Ctitle"
    assert f'data-pc-copy="{share}"' in body
    assert len(titles(body)) == 8
    # A clerk who may see only available books gets the same filters and columns, over their rows.
    clerk = login(make_user("clerk", "view_book"))
    shared = clerk.get(share.replace("&amp;", "&").removeprefix("http://testserver")).content.decode()
    assert headers(shared) == ["Price", "Title"]
    assert titles(shared) == [
        "Book 00",
        "Book 04",
        "Book 08",
        "Book 12",
        "Book 16",
        "Book 20",
        "Book 24",
        "Book 28",
    ]
    assert all(int(t.split()[1]) % 2 == 0 for t in titles(shared))  # only the available ones
    # The owner's saved view id is not the clerk's: a 404, never the owner's view.
    refused = clerk.get(f"/ibook/?status=draft&view={view.pk}")
    assert refused.status_code == 404
    assert "That saved view does not exist, or it is not yours." in refused.content.decode()


@pytest.mark.parametrize("bad", ["abc", "99999999999999999999999", "-1", "", "1.5"])
def test_bad_saved_view_ids_are_404s(admin_user: User, catalogue: dict[str, Any], bad: str) -> None:
    client = login(admin_user)
    assert client.get(f"/ibook/?view={bad}").status_code == 404
    for action in ("rename_view", "delete_view"):
        response = client.post(PREFS, {"action": action, "view_id": bad, "name": "x"})
        assert response.status_code == 404


def test_rename_and_delete_only_ones_own_saved_views(admin_user: User, catalogue: dict[str, Any]) -> None:
    client = login(admin_user)
    client.post(PREFS, {"action": "save_view", "name": "Mine", "state": "status=draft"})
    mine = ViewPreference.objects.get(user=admin_user, kind="saved")
    other = make_user("other", superuser=True)
    theirs = ViewPreference.objects.create(user=other, view_key=KEY, kind="saved", name="Theirs", query="")
    for action in ("rename_view", "delete_view"):
        response = client.post(PREFS, {"action": action, "view_id": theirs.pk, "name": "Stolen"})
        assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.name == "Theirs"
    renamed = client.post(
        PREFS, {"action": "rename_view", "view_id": mine.pk, "name": "Drafts 2", "state": ""}
    )
    assert renamed.status_code == 302
    mine.refresh_from_db()
    assert mine.name == "Drafts 2"
    assert client.post(PREFS, {"action": "rename_view", "view_id": mine.pk, "name": "  "}).status_code == 400
    assert client.post(PREFS, {"action": "save_view", "name": ""}).status_code == 400
    deleted = client.post(PREFS, {"action": "delete_view", "view_id": mine.pk, "state": ""})
    assert deleted.status_code == 302
    assert not ViewPreference.objects.filter(pk=mine.pk).exists()
    assert ViewPreference.objects.filter(pk=theirs.pk).exists()


def test_saving_preferences_needs_what_the_list_needs(catalogue: dict[str, Any]) -> None:
    nobody = login(make_user("nobody"))
    assert nobody.post(PREFS, {"action": "columns", "show": ["title"]}).status_code == 403
    assert not ViewPreference.objects.exists()
    anonymous = Client().post(PREFS, {"action": "columns", "show": ["title"]})
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]


def test_the_list_reads_columns_and_saved_views_in_one_query(
    admin_user: User, catalogue: dict[str, Any], django_assert_num_queries: Any
) -> None:
    ViewPreference.objects.create(user=admin_user, view_key=KEY, columns=["title", "price", "tags"])
    for i in range(3):
        ViewPreference.objects.create(
            user=admin_user, view_key=KEY, kind="saved", name=f"V{i}", query="status=draft"
        )
    for client in (login(admin_user), login(admin_user, htmx=True)):
        client.get("/plainbook/")  # the session is read once before counting
        with CaptureQueriesContext(connection) as baseline:
            assert client.get("/plainbook/?status=draft").status_code == 200
        with django_assert_num_queries(len(baseline.captured_queries) + 1):
            body = client.get("/ibook/?status=draft").content.decode()
        assert headers(body) == ["Title", "Price", "Tags"]


def test_the_admin_lists_preferences(admin_user: User, catalogue: dict[str, Any]) -> None:
    ViewPreference.objects.create(user=admin_user, view_key=KEY, kind="saved", name="Mine", query="")
    response = login(admin_user).get("/admin/powercrud/viewpreference/")
    assert response.status_code == 200 and "Mine" in response.content.decode()
