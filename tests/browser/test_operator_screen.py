"""The operator's list screen in a real browser: density, keyboard, live regions, theme, phone
navigation, a viewer's plain list, and axe-core on the list, the bulk modal, the delete
confirmation, the task list and a run page, in light and dark.

Run with ``pytest -m browser``. Screenshots land in ``artifacts/screenshots/operator-*.png``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings

from powercrud.models import BulkTask
from tests.browser.conftest import MOBILE
from tests.browser.helpers import record_failures
from tests.browser.test_book_list import ROWS, modal_open, session_cookie, settled
from tests.browser.test_bulk_edit import row_box, select_posts, selection_count, wait_for_count

pytestmark = [
    pytest.mark.browser,
    pytest.mark.demo,  # the demo's pages and data (seed_books, setup_demo)
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls("sample.urls"),
]

LAPTOP = {"width": 1366, "height": 768}
SERIOUS = {"serious", "critical"}

# Rows whose whole box is inside the window.
VISIBLE_ROWS = """() => Array.from(document.querySelectorAll('#pc-content tbody tr')).filter(r => {
  const b = r.getBoundingClientRect();
  return b.height > 0 && b.top >= 0 && b.bottom <= window.innerHeight;
}).length"""
IN_A_ROW = "() => !!(document.activeElement && document.activeElement.closest('#pc-content tbody tr'))"


@pytest.fixture
def demo_data() -> None:
    call_command("seed_books", books=60, quiet=True, stdout=io.StringIO())
    call_command("setup_demo", stdout=io.StringIO())


def open_list(new_page: Callable[..., Any], live_server: Any, user: str = "admin", **kwargs: Any) -> Any:
    page = new_page(
        viewport=kwargs.pop("viewport", LAPTOP), session=session_cookie(user), base_url=live_server.url
    )
    page.goto(f"{live_server.url}/book/")
    return page


def tab_stops_before_first_row(page: Any) -> int:
    """Tab presses from the top of the page until focus is inside a table row, minus one."""
    page.evaluate("document.activeElement && document.activeElement.blur()")
    for presses in range(1, 80):
        page.keyboard.press("Tab")
        if page.evaluate(IN_A_ROW):
            return presses - 1
    raise AssertionError("Tab never reached a row")


def axe_serious(page: Any) -> list[str]:
    """axe-core's serious and critical violations on ``page``, one line per element."""
    from axe_playwright_python.sync_playwright import Axe

    violations = Axe().run(page).response["violations"]
    return [
        f"{v['id']} ({v['impact']}): {node['target']} {node.get('failureSummary', '')[:160]}"
        for v in violations
        if v["impact"] in SERIOUS
        for node in v["nodes"]
    ]


def live_text(page: Any) -> str:
    return str(page.evaluate("document.getElementById('pc-live').textContent")).strip()


def test_twenty_rows_fit_a_laptop_screen_and_the_keyboard_works(
    demo_data: None, live_server: Any, new_page: Callable[..., Any], shoot: Callable[..., Any]
) -> None:
    page = open_list(new_page, live_server)
    errors = record_failures(page)
    assert page.evaluate(VISIBLE_ROWS) >= 20
    shoot(page, "operator-list-1366")

    # Cells stay on one line; the full value is in the title.
    first_title = page.locator(f"{ROWS} .pc-cell").first
    assert first_title.get_attribute("title") == first_title.inner_text()
    heights = page.locator(ROWS).evaluate_all("rs => rs.map(r => r.getBoundingClientRect().height)")
    assert max(heights) < 30, heights
    # Row actions are icons named for their row; Delete is not red until pointed at.
    name = page.locator(f"{ROWS} .pc-cell").first.inner_text()
    edit = page.locator(f"{ROWS} a[aria-label='Edit {name}'][hx-target='#pc-modal-body']")
    assert edit.count() == 1
    delete = page.locator(f"{ROWS} a[aria-label='Delete {name}']")
    assert delete.evaluate("a => getComputedStyle(a).color") == edit.evaluate(
        "a => getComputedStyle(a).color"
    )

    # Tab stops before the first row: every control above it (was 28 in one sequence, no skip
    # link); the skip link, the first stop of the page, goes straight to the rows.
    stops = tab_stops_before_first_row(page)
    print(f"tab stops before the first row: {stops}")
    page.reload()  # the next Tab starts from the top again
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "pc-skip-link"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate(IN_A_ROW)
    focused = page.evaluate("document.activeElement.className")
    assert focused == "pc-select-row"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"

    # Space ticks the focused row; the live region (the same element) says so.
    live = page.locator("#pc-live").element_handle()
    select_posts(page, lambda: page.keyboard.press("Space"))
    wait_for_count(page, 1)
    page.wait_for_function("document.getElementById('pc-live').textContent.includes('1 selected')")
    # Shift+ArrowDown twice extends the tick to the next two rows.
    select_posts(page, lambda: page.keyboard.press("Shift+ArrowDown"))
    select_posts(page, lambda: page.keyboard.press("Shift+ArrowDown"))
    wait_for_count(page, 3)
    page.wait_for_function("document.getElementById('pc-live').textContent.includes('3 selected')")
    assert page.evaluate("el => el === document.getElementById('pc-live')", live), (
        "the live region was replaced"
    )
    # ArrowDown moves on without ticking; Shift+Space ticks the range from the last tick to here.
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    assert (
        page.evaluate(
            "Array.from(document.querySelectorAll('input.pc-select-row')).indexOf(document.activeElement)"
        )
        == 4
    )
    select_posts(page, lambda: page.keyboard.press("Shift+Space"))
    wait_for_count(page, 5)
    assert [row_box(page, i).is_checked() for i in range(6)] == [True] * 5 + [False]
    shoot(page, "operator-keyboard-range")

    # The selection bar comes right after the rows: its "Edit selected" is the next stop after the
    # last row's actions.
    last_action = page.locator(f"{ROWS} .pc-actions a").last
    last_action.focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('#pc-selection') !== null")

    # "/" focuses the search box, but not while typing in it.
    page.locator(f"{ROWS} input.pc-select-row").first.focus()
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "pc-search"
    page.keyboard.type("a/b")
    assert page.locator("#pc-search").input_value() == "a/b"
    settled(page, lambda: page.locator("#pc-search").fill(""))

    # Esc closes the modal and focus returns to the control that opened it.
    opener = page.locator(f"{ROWS} a[hx-target='#pc-modal-body'][href$='/edit/']").nth(2)
    label = opener.get_attribute("aria-label")
    opener.click()
    page.wait_for_function("document.getElementById('pc-modal').open")
    page.keyboard.press("Escape")
    page.wait_for_function("!document.getElementById('pc-modal').open")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == label
    assert not errors, errors


def test_bulk_edit_clears_the_selection_and_offers_reselect(
    demo_data: None, live_server: Any, new_page: Callable[..., Any], shoot: Callable[..., Any]
) -> None:
    page = open_list(new_page, live_server)
    errors = record_failures(page)
    for index in (0, 1):
        select_posts(page, lambda i=index: row_box(page, i).click())
    wait_for_count(page, 2)
    settled(page, lambda: page.click("#pc-selection a:has-text('Edit selected')"))
    page.check("#bulk_change_is_available")
    page.select_option("#bulk_is_available", label="No")
    shoot(page, "operator-bulk-modal")
    page.click("button:has-text('Apply to 2 rows')")
    page.wait_for_selector("#pc-toasts .pc-toast button:has-text('Reselect')")
    undo = page.locator("#pc-toasts .pc-toast a:has-text('Undo')")
    assert undo.get_attribute("href") == f"/powercrud/tasks/{BulkTask.objects.get().pk}/"
    wait_for_count(page, 0)
    assert not page.locator("input.pc-select-row:checked").count()
    shoot(page, "operator-toast-undo")
    with page.expect_response(lambda r: r.url.endswith("/book/selection/") and r.request.method == "POST"):
        page.click("#pc-toasts .pc-toast button:has-text('Reselect')")
    wait_for_count(page, 2)
    page.wait_for_function("document.querySelectorAll('input.pc-select-row:checked').length === 2")
    assert not errors, errors


def test_the_viewer_sees_no_selection_controls(
    demo_data: None, live_server: Any, new_page: Callable[..., Any]
) -> None:
    page = open_list(new_page, live_server, user="viewer")
    assert page.locator(ROWS).count() == 25
    assert page.locator("input.pc-select-row, input.pc-select-page, #pc-selection").count() == 0
    assert "Tick rows" not in page.content() and "Select all matching" not in page.content()
    assert page.locator(f"{ROWS} a[aria-label^='View ']").count() == 25
    assert page.locator(f"{ROWS} a[aria-label^='Edit '], {ROWS} a[aria-label^='Delete ']").count() == 0


def test_dark_mode_phone_navigation_and_axe(
    demo_data: None, live_server: Any, new_page: Callable[..., Any], shoot: Callable[..., Any]
) -> None:
    pytest.importorskip("axe_playwright_python")
    page = open_list(new_page, live_server)
    background = "getComputedStyle(document.body).backgroundColor"
    light = page.evaluate(background)
    # Following the system: prefers-color-scheme: dark.
    page.emulate_media(color_scheme="dark")
    dark = page.evaluate(background)
    assert dark != light
    assert page.evaluate("getComputedStyle(document.documentElement).colorScheme") == "dark"
    # The toggle overrides the system and is remembered (stored for the user, read by the server).
    page.select_option("select[data-pc-pref=theme]", "light")
    assert page.evaluate(background) == light
    page.reload()
    assert page.evaluate("document.documentElement.dataset.pcTheme") == "light"
    assert page.evaluate(background) == light
    page.select_option("select[data-pc-pref=theme]", "dark")
    page.emulate_media(color_scheme="light")
    assert page.evaluate(background) == dark
    # Density: comfortable rows are taller, and stay so after a reload.
    compact = page.locator(ROWS).first.evaluate("r => r.getBoundingClientRect().height")
    page.select_option("select[data-pc-pref=density]", "comfortable")
    page.reload()
    assert page.locator(ROWS).first.evaluate("r => r.getBoundingClientRect().height") > compact
    page.select_option("select[data-pc-pref=density]", "compact")
    page.select_option("select[data-pc-pref=theme]", "auto")

    # axe-core, light and dark: list, bulk modal, delete confirmation, task list, a run page.
    select_posts(page, lambda: row_box(page, 0).click())
    wait_for_count(page, 1)
    settled(page, lambda: page.click("#pc-selection a:has-text('Edit selected')"))
    page.check("#bulk_change_price")
    page.fill("#bulk_price", "12.50")
    page.click("button:has-text('Apply to 1 row')")
    page.wait_for_selector("#pc-toasts .pc-toast")
    run = BulkTask.objects.get()
    problems: dict[str, list[str]] = {}
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.goto(f"{live_server.url}/book/")
        select_posts(page, lambda: row_box(page, 0).click())
        wait_for_count(page, 1)
        problems[f"list {scheme}"] = axe_serious(page)
        shoot(page, f"operator-list-{scheme}")
        settled(page, lambda: page.click("#pc-selection a:has-text('Edit selected')"))
        problems[f"bulk modal {scheme}"] = axe_serious(page)
        page.keyboard.press("Escape")
        settled(page, lambda: page.click("#pc-selection a:has-text('Delete selected')"))
        assert page.locator(".pc-delete-preview li").count() == 1
        problems[f"delete confirmation {scheme}"] = axe_serious(page)
        shoot(page, f"operator-delete-{scheme}")
        page.keyboard.press("Escape")
        select_posts(page, lambda: row_box(page, 0).click())
        page.goto(f"{live_server.url}/powercrud/tasks/")
        problems[f"task list {scheme}"] = axe_serious(page)
        page.goto(f"{live_server.url}/powercrud/tasks/{run.pk}/")
        problems[f"run page {scheme}"] = axe_serious(page)
        shoot(page, f"operator-run-{scheme}")
    assert not any(problems.values()), problems

    # A phone: every section of the navigation is on screen, nothing is cut off.
    for scheme in ("light", "dark"):
        phone = open_list(new_page, live_server, viewport=MOBILE)
        phone.emulate_media(color_scheme=scheme)
        links = phone.locator("nav[aria-label=Main] a").evaluate_all(
            "as => as.map(a => [a.textContent, a.getBoundingClientRect().left,"
            " a.getBoundingClientRect().right])"
        )
        assert len(links) == 8
        width = MOBILE["width"]
        assert all(left >= 0 and right <= width for _, left, right in links), links
        assert phone.evaluate("document.documentElement.scrollWidth") <= width
        shoot(phone, f"operator-phone-{scheme}")


@override_settings(POWERCRUD_SETTINGS={"BULK_MIN_ASYNC_RECORDS": 1})
def test_progress_is_announced_in_steps_with_a_cancel_button(
    demo_data: None, live_server: Any, new_page: Callable[..., Any], shoot: Callable[..., Any]
) -> None:
    """An async run's modal (no worker here: it stays queued) offers Cancel, which keeps the
    modal open; the live region says the run was cancelled, through the same element."""
    page = open_list(new_page, live_server)
    select_posts(page, lambda: row_box(page, 0).click())
    wait_for_count(page, 1)
    live = page.locator("#pc-live").element_handle()
    settled(page, lambda: page.click("#pc-selection a:has-text('Edit selected')"))
    page.check("#bulk_change_price")
    page.fill("#bulk_price", "3.00")
    page.click("button:has-text('Apply to 1 row')")
    page.wait_for_selector("#pc-modal .pc-cancel-run button")
    page.wait_for_function("document.getElementById('pc-live').textContent.includes('0%')")
    shoot(page, "operator-progress-cancel")
    page.click("#pc-modal .pc-cancel-run button")
    page.wait_for_function(
        "document.getElementById('pc-live').textContent.includes('Cancelled')", timeout=8_000
    )
    assert modal_open(page)
    assert page.locator("#pc-modal .pc-cancel-run").is_hidden()
    assert page.evaluate("el => el === document.getElementById('pc-live')", live)
    assert BulkTask.objects.get().status == "cancelled"
    assert selection_count(page) in (0, 1)
