"""Row density and theme, stored per signed-in user (``ViewPreference`` of kind ``display``).

Saved through a list's ``preferences/`` URL (``action=display``); read in the list's one
preferences query, and once on any other page that shows them; cookies for anonymous users and
for a view that does not store them. ``tests/inline_urls.py`` serves ``/ibook/`` (stored),
``/plainbook/`` (not stored: cookies only) and ``/openbook/`` (open to anonymous users, on
powercrud's own base template).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.db import connection
from django.template import engines
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext

from powercrud.models import BulkTask, ViewPreference
from tests.conftest import HtmxClient, make_user

pytestmark = pytest.mark.urls("tests.inline_urls")

PREFS = "/ibook/preferences/"
DISPLAY = {"kind": "display", "view_key": ""}


def login(user: User, htmx: bool = False) -> Client:
    client = HtmxClient() if htmx else Client()
    client.force_login(user)
    return client


def shown(body: str) -> tuple[str, str | None, str]:
    """(the list's density class, ``<html data-pc-theme>`` or None, the theme select's choice)."""
    density = re.search(r'class="pc pc-density-(\w+)" id="pc-list"', body)
    html = re.search(r"<html lang=\"en\"(?: data-pc-theme=\"(\w+)\")?>", body)
    select = body.split('data-pc-pref="theme"')[1].split("</select>")[0]
    chosen = re.search(r'<option value="(\w+)" selected>', select)
    assert density and html
    return density.group(1), html.group(1), chosen.group(1) if chosen else "auto"


def stored(user: User) -> dict[str, str] | None:
    row = ViewPreference.objects.filter(user=user, **DISPLAY).first()
    return row.display if row else None


def queries(client: Client, url: str) -> tuple[int, str]:
    client.get(url)  # the session and content types are read once before counting
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured.captured_queries), response.content.decode()


def test_the_choice_follows_the_user_to_a_new_session_and_every_page_but_not_other_users(
    admin_user: User, catalogue: dict[str, Any]
) -> None:
    client = login(admin_user)
    body = client.get("/openbook/").content.decode()
    assert shown(body) == ("compact", None, "auto")
    # Without JavaScript the settings are a form with an Apply button; it comes back to the list.
    assert (
        '<form class="pc-prefs" data-pc-prefs="stored" method="post" action="/openbook/preferences/"' in body
    )
    assert '<noscript><button type="submit" class="pc-btn pc-btn-sm">Apply</button></noscript>' in body
    response = client.post(
        "/openbook/preferences/",
        {"action": "display", "density": "comfortable", "theme": "dark", "state": "status=draft&page=2"},
    )
    assert response.status_code == 302 and response["Location"] == "/openbook/?status=draft"
    assert "Display settings saved." in client.get(response["Location"]).content.decode()
    assert stored(admin_user) == {"density": "comfortable", "theme": "dark"}

    again = Client()
    assert again.login(username="boss", password="pw")  # a real sign-in: a new session, no cookies
    assert shown(again.get("/openbook/").content.decode()) == ("comfortable", "dark", "dark")
    # Every list of every view, and powercrud's other pages (the task dashboard) too.
    assert 'class="pc pc-density-comfortable"' in again.get("/ibook/").content.decode()
    assert '<html lang="en" data-pc-theme="dark">' in again.get("/powercrud/tasks/").content.decode()
    book = catalogue["books"][0]
    assert '<html lang="en" data-pc-theme="dark">' in again.get(f"/openbook/{book.pk}/").content.decode()

    other = login(make_user("other", superuser=True))
    assert shown(other.get("/openbook/").content.decode()) == ("compact", None, "auto")
    assert "data-pc-theme" not in other.get("/powercrud/tasks/").content.decode()


def test_htmx_saves_one_setting_at_a_time_and_answers_204(
    admin_user: User, catalogue: dict[str, Any]
) -> None:
    client = login(admin_user, htmx=True)
    response = client.post(PREFS, {"action": "display", "theme": "light"})
    assert response.status_code == 204 and "HX-Location" not in response
    assert stored(admin_user) == {"theme": "light"}
    assert client.post(PREFS, {"action": "display", "density": "comfortable"}).status_code == 204
    assert client.post(PREFS, {"action": "display", "theme": "auto"}).status_code == 204
    assert stored(admin_user) == {"theme": "auto", "density": "comfortable"}
    assert ViewPreference.objects.filter(user=admin_user).count() == 1
    # Stored settings win over the browser's cookies.
    page = login(admin_user)
    page.cookies["pc_density"] = "compact"
    page.cookies["pc_theme"] = "dark"
    assert shown(page.get("/openbook/").content.decode()) == ("comfortable", None, "auto")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"density": "huge"}, "density"),
        ({"density": ""}, "density"),
        ({"theme": "DARK"}, "theme"),
        ({"density": "compact", "theme": "<b>sepia</b>"}, "theme"),
    ],
)
def test_a_value_that_is_not_a_choice_is_a_400_naming_the_field(
    admin_user: User, catalogue: dict[str, Any], data: dict[str, str], field: str
) -> None:
    for client in (login(admin_user), login(admin_user, htmx=True)):
        response = client.post(PREFS, {"action": "display", **data})
        assert response.status_code == 400
        body = response.content.decode()
        assert f"“{field}” must be one of" in body and "<b>" not in body
        if isinstance(client, HtmxClient):
            assert "“" + field in json.loads(response["HX-Trigger"])["pcPreferenceRefused"]["message"]
    assert not ViewPreference.objects.exists()
    nothing = login(admin_user).post(PREFS, {"action": "display"})
    assert nothing.status_code == 400 and "Choose a row density or a theme" in nothing.content.decode()


def test_a_setting_sent_twice_is_a_400_naming_it(admin_user: User, catalogue: dict[str, Any]) -> None:
    client = login(admin_user)
    response = client.post(PREFS, {"action": "display", "density": ["compact", "comfortable"]})
    assert response.status_code == 400 and "“density” was sent 2 times" in response.content.decode()
    response = client.post(PREFS, {"action": "display", "density": "compact", "theme": ["dark", "dark"]})
    assert response.status_code == 400 and "“theme” was sent 2 times" in response.content.decode()
    assert not ViewPreference.objects.exists()


def test_the_endpoint_checks_the_user_and_the_csrf_token(admin_user: User, catalogue: dict[str, Any]) -> None:
    # Anonymous users may see this list, but keep their settings in cookies.
    anonymous = Client().post("/openbook/preferences/", {"action": "display", "density": "comfortable"})
    assert anonymous.status_code == 403 and not ViewPreference.objects.exists()
    # A user without the list's permission may not store anything through it.
    nobody = login(make_user("nobody")).post(PREFS, {"action": "display", "density": "comfortable"})
    assert nobody.status_code == 403 and not ViewPreference.objects.exists()
    # CSRF as for every other post.
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    assert strict.post(PREFS, {"action": "display", "density": "comfortable"}).status_code == 403
    assert not ViewPreference.objects.exists()
    form = strict.get("/ibook/").content.decode().split('data-pc-prefs="stored"')[1]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    assert token, "the display settings' form carries no CSRF token"
    data = {"action": "display", "density": "comfortable", "csrfmiddlewaretoken": token.group(1)}
    assert strict.post(PREFS, data).status_code == 302 and stored(admin_user) == {"density": "comfortable"}
    # A view that does not store them refuses the action.
    plain = login(admin_user).post("/plainbook/preferences/", {"action": "display", "density": "dark"})
    assert plain.status_code == 404


def test_anonymous_users_and_views_that_do_not_store_them_use_cookies_without_a_query(
    admin_user: User, catalogue: dict[str, Any]
) -> None:
    anonymous = Client()
    anonymous.cookies["pc_density"] = "comfortable"
    anonymous.cookies["pc_theme"] = "dark"
    body = anonymous.get("/openbook/").content.decode()
    assert shown(body) == ("comfortable", "dark", "dark")
    assert (
        '<div class="pc-prefs" data-pc-prefs hidden>' in body and 'name="action" value="display"' not in body
    )
    with CaptureQueriesContext(connection) as captured:
        anonymous.get("/openbook/")
    assert not [q for q in captured.captured_queries if "powercrud_viewpreference" in q["sql"]]
    # Bad cookies are the defaults.
    anonymous.cookies["pc_density"] = "<x>"
    anonymous.cookies["pc_theme"] = '" onload="x'
    body = anonymous.get("/openbook/").content.decode()
    assert shown(body) == ("compact", None, "auto") and "onload" not in body

    # A view with remember_display = False: the cookies, even for a user who stored settings.
    ViewPreference.objects.create(
        user=admin_user, display={"density": "comfortable", "theme": "dark"}, **DISPLAY
    )
    client = login(admin_user)
    client.cookies["pc_theme"] = "light"
    body = client.get("/plainbook/").content.decode()
    assert 'class="pc pc-density-compact"' in body and '<div class="pc-prefs" data-pc-prefs hidden>' in body
    assert '<option value="light" selected>' in body


def test_a_signed_in_user_who_never_chose_keeps_the_browsers_cookie(
    admin_user: User, catalogue: dict[str, Any]
) -> None:
    client = login(admin_user)
    client.cookies["pc_theme"] = "dark"
    assert shown(client.get("/openbook/").content.decode()) == ("compact", "dark", "dark")
    ViewPreference.objects.create(user=admin_user, display={"density": "comfortable"}, **DISPLAY)
    assert shown(client.get("/openbook/").content.decode()) == ("comfortable", "dark", "dark")
    ViewPreference.objects.filter(user=admin_user).update(display={"theme": "light", "density": 7})
    assert shown(client.get("/openbook/").content.decode()) == ("compact", "light", "light")


def test_the_list_reads_the_settings_in_its_one_preferences_query(
    admin_user: User, catalogue: dict[str, Any]
) -> None:
    ViewPreference.objects.create(user=admin_user, view_key="testapp.book:ibook", columns=["title", "price"])
    for htmx in (False, True):
        client = login(admin_user, htmx=htmx)
        baseline, _ = queries(client, "/plainbook/?status=draft")
        before, body = queries(client, "/ibook/?status=draft")
        ViewPreference.objects.update_or_create(
            user=admin_user, **DISPLAY, defaults={"display": {"density": "comfortable", "theme": "dark"}}
        )
        after, body = queries(client, "/ibook/?status=draft")
        assert before == after == baseline + 1, (baseline, before, after)
        if not htmx:
            assert 'class="pc pc-density-comfortable"' in body and '<option value="dark" selected>' in body
        ViewPreference.objects.filter(user=admin_user, kind="display").delete()
    # On powercrud's own base template too (its <html> asks for the theme): no query more.
    client = login(admin_user)
    before, _ = queries(client, "/openbook/")
    ViewPreference.objects.create(user=admin_user, display={"theme": "dark"}, **DISPLAY)
    after, body = queries(client, "/openbook/")
    assert before == after and '<html lang="en" data-pc-theme="dark">' in body


def test_other_pages_read_the_settings_once(admin_user: User, catalogue: dict[str, Any]) -> None:
    ViewPreference.objects.create(user=admin_user, display={"theme": "dark"}, **DISPLAY)
    task = BulkTask.objects.create(kind=BulkTask.Kind.UPDATE, model_label="testapp.book", owner=admin_user)
    client = login(admin_user)
    book = catalogue["books"][0]
    for url in (f"/openbook/{book.pk}/", "/openbook/new/", f"/powercrud/tasks/{task.pk}/"):
        client.get(url)
        with CaptureQueriesContext(connection) as captured:
            body = client.get(url).content.decode()
        reads = [q for q in captured.captured_queries if "powercrud_viewpreference" in q["sql"]]
        assert len(reads) == 1, url
        assert '<html lang="en" data-pc-theme="dark">' in body, url


def test_the_template_tags_work_on_any_page() -> None:
    template = engines["django"].from_string(
        "{% load pc_display %}<html{% pc_theme_attribute %}>{% pc_display as d %}{{ d.density }}"
    )
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    request.COOKIES["pc_theme"] = "light"
    assert template.render({}, request) == '<html data-pc-theme="light">compact'
    assert template.render({}) == "<html>compact"  # no request: the defaults
