"""Row density and theme stored per user, and an edited row's Save and Cancel on a phone, in a
real browser on the demo's book list.

Density and theme: chosen in one browser, they are there in a fresh one (a new sign-in, no
cookies), on the list and on the task dashboard, and not for another user. Phone: at 390x844 an
edited row's Save and Cancel are on screen without scrolling the table sideways, and Save saves.
Screenshots land in ``/tmp/shots-a/`` (``display-*.png``, ``phone-inline-*.png``).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from powercrud.models import ViewPreference
from sample.models import Book
from tests.browser.conftest import MOBILE
from tests.browser.helpers import record_failures
from tests.browser.test_book_list import ROWS, session_cookie

pytestmark = [
    pytest.mark.browser,
    pytest.mark.demo,
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls("sample.urls"),
]

LAPTOP = {"width": 1366, "height": 768}
SHOTS = Path("/tmp/shots-a")
EDITED = "#pc-content tr[data-pc-inline]"
BACKGROUND = "getComputedStyle(document.body).backgroundColor"


@pytest.fixture
def demo_data() -> None:
    call_command("seed_books", books=60, quiet=True, stdout=io.StringIO())
    call_command("setup_demo", stdout=io.StringIO())


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def choose(page: Any, setting: str, value: str) -> None:
    """Pick a display setting and wait for the server to store it (204)."""
    with page.expect_response(
        lambda r: r.url.endswith("/book/preferences/") and r.request.method == "POST"
    ) as answer:
        page.select_option(f"select[data-pc-pref={setting}]", value)
    assert answer.value.status == 204


def shown(page: Any) -> tuple[str, str | None]:
    density = page.evaluate(
        "['compact', 'comfortable'].find(d => document.getElementById('pc-list')"
        ".classList.contains('pc-density-' + d))"
    )
    return density, page.evaluate("document.documentElement.getAttribute('data-pc-theme')")


def test_density_and_theme_follow_the_user_to_a_fresh_browser(
    demo_data: None, live_server: Any, new_page: Callable[..., Any]
) -> None:
    page = new_page(viewport=LAPTOP, session=session_cookie("admin"), base_url=live_server.url)
    errors = record_failures(page)
    page.goto("/book/")
    page.emulate_media(color_scheme="light")
    light = page.evaluate(BACKGROUND)
    assert shown(page) == ("compact", None)
    compact = page.locator(ROWS).first.evaluate("r => r.getBoundingClientRect().height")
    shot(page, "display-01-compact-light-1366x768")
    choose(page, "density", "comfortable")
    choose(page, "theme", "dark")
    assert shown(page) == ("comfortable", "dark")  # applied at once, without a reload
    assert page.evaluate(BACKGROUND) != light
    stored = ViewPreference.objects.get(kind="display")
    assert stored.display == {"density": "comfortable", "theme": "dark"}
    assert not [c for c in page.context.cookies() if c["name"].startswith("pc_")]  # not in the browser

    # A fresh browser: signed in again, no cookies but the session.
    fresh = new_page(viewport=LAPTOP, session=session_cookie("admin"), base_url=live_server.url)
    fresh_errors = record_failures(fresh)
    fresh.emulate_media(color_scheme="light")
    fresh.goto("/book/")
    assert shown(fresh) == ("comfortable", "dark")
    assert fresh.locator("select[data-pc-pref=density]").input_value() == "comfortable"
    assert fresh.locator("select[data-pc-pref=theme]").input_value() == "dark"
    assert fresh.locator(ROWS).first.evaluate("r => r.getBoundingClientRect().height") > compact
    assert fresh.evaluate(BACKGROUND) != light
    shot(fresh, "display-02-comfortable-dark-fresh-browser-1366x768")
    fresh.goto("/powercrud/tasks/")
    assert fresh.evaluate("document.documentElement.getAttribute('data-pc-theme')") == "dark"
    # Back to the system's theme, from the fresh browser: the first one follows on its next page.
    fresh.goto("/book/")
    choose(fresh, "theme", "auto")
    assert shown(fresh) == ("comfortable", None)
    page.reload()
    assert shown(page) == ("comfortable", None) and page.evaluate(BACKGROUND) == light

    # Another user keeps the defaults.
    viewer = new_page(viewport=LAPTOP, session=session_cookie("viewer"), base_url=live_server.url)
    viewer.goto("/book/")
    assert shown(viewer) == ("compact", None)
    assert errors == [] and fresh_errors == []


def visible_box(page: Any, selector: str) -> dict[str, float]:
    return dict(page.locator(selector).evaluate("e => e.getBoundingClientRect().toJSON()"))


def test_an_edited_rows_save_and_cancel_are_on_a_phones_screen(
    demo_data: None, live_server: Any, new_page: Callable[..., Any]
) -> None:
    phone = new_page(viewport=MOBILE, session=session_cookie("admin"), base_url=live_server.url)
    errors = record_failures(phone)
    phone.goto("/book/?sort=title")
    pk = int(phone.locator(f"{ROWS} [data-pc-inline-edit]").first.get_attribute("data-pc-inline-edit"))
    phone.locator(f"{ROWS} [data-pc-inline-edit]").first.click()
    phone.wait_for_selector(EDITED)
    # The operator is at the row's start (its title has the focus), the table scrolled back left.
    phone.evaluate("document.querySelector('#pc-content .pc-table-wrap').scrollLeft = 0")
    assert (
        phone.evaluate("document.querySelector('#pc-content .pc-table-wrap').scrollWidth") > MOBILE["width"]
    )
    width = MOBILE["width"]
    for button in (f"{EDITED} button[type=submit]", f"{EDITED} [data-pc-inline-cancel]"):
        box = visible_box(phone, button)
        assert box["left"] >= 0 and box["right"] <= width, (button, box)
    shot(phone, "phone-inline-01-row-open-390x844")
    # Scrolled to the far right, they are still there (where they always were).
    phone.evaluate(
        "(w => w.scrollLeft = w.scrollWidth)(document.querySelector('#pc-content .pc-table-wrap'))"
    )
    box = visible_box(phone, f"{EDITED} button[type=submit]")
    assert box["left"] >= 0 and box["right"] <= width, box
    phone.evaluate("document.querySelector('#pc-content .pc-table-wrap').scrollLeft = 0")

    # Save, tapped where it is on screen (no scrolling by the test), saves the row.
    phone.locator(f"{EDITED} input[name=title]").fill("Aaa Phone Title")
    box = visible_box(phone, f"{EDITED} button[type=submit]")
    x, y = box["left"] + box["width"] / 2, box["top"] + box["height"] / 2
    hit = phone.evaluate(
        "([x, y]) => document.elementFromPoint(x, y).closest('button[type=submit]') !== null", [x, y]
    )
    assert hit, "something covers the Save button"
    phone.mouse.click(x, y)
    phone.wait_for_selector(EDITED, state="detached")
    assert Book.objects.get(pk=pk).title == "Aaa Phone Title"
    assert phone.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 0
    shot(phone, "phone-inline-02-saved-390x844")

    # The laptop layout is as it was: the buttons side by side in the row's last cell.
    laptop = new_page(viewport=LAPTOP, session=session_cookie("admin"), base_url=live_server.url)
    laptop.goto("/book/?sort=title")
    laptop.locator(f"{ROWS} [data-pc-inline-edit]").first.click()
    laptop.wait_for_selector(EDITED)
    save = visible_box(laptop, f"{EDITED} button[type=submit]")
    cancel = visible_box(laptop, f"{EDITED} [data-pc-inline-cancel]")
    assert save["right"] <= cancel["left"] and abs(save["top"] - cancel["top"]) < 2  # side by side
    assert cancel["right"] <= LAPTOP["width"]
    shot(laptop, "phone-inline-03-row-open-1366x768")
    assert errors == []
