"""Inline editing, the column chooser and saved views on the demo's book list, in a real browser.

Inline: a row opens as its fields, Enter saves, a bad price is shown in the row, Esc puts the
row back, the list's refresh waits for an edited row, and a row held by a bulk task refuses to
open. Columns: hidden and moved, kept across sessions. Saved views: saved, opened from the
menu, and shared as a link another user opens. axe-core runs with a row in edit mode and with
the chooser open. Screenshots land in ``artifacts/screenshots/inline-*.png`` and ``views-*.png``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command

from powercrud.jobs.locks import acquire_locks
from powercrud.models import BulkTask, ViewPreference
from sample.models import Book
from tests.browser.conftest import MOBILE
from tests.browser.helpers import record_failures
from tests.browser.test_book_list import ROWS, session_cookie, settled
from tests.browser.test_run_history import axe_violations, describe

pytestmark = [
    pytest.mark.browser,
    pytest.mark.demo,
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls("sample.urls"),
]

LAPTOP = {"width": 1366, "height": 768}
SERIOUS = ("serious", "critical")
EDITED = "#pc-content tr[data-pc-inline]"


@pytest.fixture
def demo_data() -> None:
    call_command("seed_books", books=60, quiet=True, stdout=io.StringIO())
    call_command("setup_demo", stdout=io.StringIO())


def headers(page: Any) -> list[str]:
    cells = page.locator("#pc-content thead th").evaluate_all("ths => ths.map(th => th.textContent.trim())")
    return [c for c in cells if c and c != "Actions"]


def toast(page: Any, text: str) -> None:
    page.wait_for_selector(f"#pc-toasts .pc-toast:has-text({text!r})", timeout=5_000)


def no_serious_axe(page: Any) -> None:
    violations = axe_violations(page)
    assert violations is not None, "axe_playwright_python is not installed"
    serious = [v for v in violations if v["impact"] in SERIOUS]
    assert not serious, describe(serious)


def row_pk(page: Any, index: int) -> int:
    return int(page.locator(f"{ROWS} [data-pc-inline-edit]").nth(index).get_attribute("data-pc-inline-edit"))


def open_row(page: Any, index: int) -> Any:
    page.locator(f"{ROWS} [data-pc-inline-edit]").nth(index).click()
    page.wait_for_selector(EDITED)
    return page.locator(EDITED)


def test_inline_edit(
    demo_data: None, live_server: Any, new_page: Callable[..., Any], shoot: Callable[..., Any]
) -> None:
    page = new_page(viewport=LAPTOP, session=session_cookie("admin"), base_url=live_server.url)
    errors = record_failures(page)
    page.goto("/book/?sort=title")

    # Open the first row: its fields in place, the title focused.
    pk = row_pk(page, 0)
    row = open_row(page, 0)
    assert row.locator("input[name=title]").evaluate("e => e === document.activeElement")
    assert row.locator("select[name=status], input[name=price], input[name=is_available]").count() == 3
    shoot(page, "inline-01-row-in-edit-mode-1366x768")
    no_serious_axe(page)

    # Enter saves: the row is plain again, shows the new title, and the database has it.
    row.locator("input[name=title]").fill("Aaa Inline Title")
    row.locator("input[name=title]").press("Enter")
    page.wait_for_selector(EDITED, state="detached")
    toast(page, "Aaa Inline Title")
    assert Book.objects.get(pk=pk).title == "Aaa Inline Title"
    assert page.locator(f"{ROWS} [data-pc-inline-edit='{pk}']").evaluate("e => e === document.activeElement")
    assert "Aaa Inline Title" in page.locator(ROWS).first.inner_text()

    # A bad price stays in the row with its error; Esc puts the row back unchanged.
    row = open_row(page, 0)
    row.locator("input[name=price]").fill("-5")
    row.locator("button[type=submit]").click()
    page.wait_for_selector(f"{EDITED} .pc-field-error")
    assert "greater than or equal to 0" in row.locator(".pc-field-error").inner_text()
    shoot(page, "inline-02-row-error-1366x768")
    row.locator("input[name=price]").press("Escape")
    page.wait_for_selector(EDITED, state="detached")
    assert Book.objects.get(pk=pk).price >= 0

    # The list's own refresh waits while a row is being edited, then runs when it closes.
    row = open_row(page, 1)
    row.locator("input[name=title]").fill("Still typing")
    before = page.evaluate("window.__pcSettled")
    page.evaluate("htmx.trigger(document.body, 'pcRefresh')")
    page.wait_for_timeout(600)
    assert page.locator(f"{EDITED} input[name=title]").input_value() == "Still typing"
    row.locator("input[name=title]").press("Escape")
    page.wait_for_function("n => window.__pcSettled >= n + 2", arg=before)  # the row, then the list
    assert page.locator(EDITED).count() == 0

    # A row a bulk task holds does not open; the toast names the task.
    held = row_pk(page, 2)
    task = BulkTask.objects.create(kind=BulkTask.Kind.UPDATE, model_label="sample.book")
    acquire_locks(task, Book.objects.filter(pk=held))
    page.locator(f"{ROWS} [data-pc-inline-edit='{held}']").click()
    toast(page, f"bulk task #{task.pk}")
    assert page.locator(EDITED).count() == 0
    shoot(page, "inline-03-locked-row-1366x768")

    # On a phone: the edited row scrolls sideways with the table, nothing else does.
    phone = new_page(viewport=MOBILE, session=session_cookie("admin"), base_url=live_server.url)
    phone.goto("/book/?sort=title")
    open_row(phone, 0)
    shoot(phone, "inline-04-row-in-edit-mode-phone")
    overflow = phone.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a 390px phone"
    assert errors == [f"409 GET {live_server.url}/book/{held}/inline/?sort=title"], errors


def test_column_chooser_and_saved_views(
    demo_data: None, live_server: Any, new_page: Callable[..., Any], shoot: Callable[..., Any]
) -> None:
    page = new_page(viewport=LAPTOP, session=session_cookie("admin"), base_url=live_server.url)
    errors = record_failures(page)
    page.goto("/book/")
    everything = headers(page)
    assert "Pages" in everything and "Tags" in everything

    # Hide two columns and apply.
    page.click("details.pc-columns > summary")
    chooser = page.locator("details.pc-columns")
    chooser.locator("label:has-text('Pages') input").uncheck()
    chooser.locator("label:has-text('Tags') input").uncheck()
    settled(page, lambda: chooser.locator("button:has-text('Apply')").click())
    assert headers(page) == [h for h in everything if h not in ("Pages", "Tags")]
    # Move Price left: the chooser stays open, the button keeps the focus.
    settled(page, lambda: page.click("details.pc-columns button[aria-label='Move Price left']"))
    shown = headers(page)
    assert shown.index("Price") < shown.index("Status")
    assert page.locator("details.pc-columns").evaluate("d => d.open")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Move Price left"
    shoot(page, "views-01-column-chooser-open-1366x768")
    no_serious_axe(page)
    stored = ViewPreference.objects.get(kind="columns").columns
    assert "pages" not in stored and stored.index("price") < stored.index("status")

    # A new session (signed in again) shows the same columns.
    again = new_page(viewport=LAPTOP, session=session_cookie("admin"), base_url=live_server.url)
    again.goto("/book/")
    assert headers(again) == shown

    # Save the current filters and sort as a view; it is listed and marked current.
    page.goto("/book/?status=draft&sort=-price")
    page.click("details.pc-views > summary")
    page.fill("#pc-view-name", "Dear drafts")
    settled(page, lambda: page.click("details.pc-views button:has-text('Save view')"))
    saved = ViewPreference.objects.get(kind="saved")
    assert saved.query == "sort=-price&status=draft" and "pages" not in saved.columns
    assert f"view={saved.pk}" in page.url
    assert "Views: Dear drafts" in page.locator("details.pc-views > summary").inner_text()
    shoot(page, "views-02-saved-view-menu-1366x768")
    no_serious_axe(page)

    # Open it from the menu on a plain list.
    page.goto("/book/")
    page.click("details.pc-views > summary")
    page.click("details.pc-views a.pc-saved-open:has-text('Dear drafts')")
    page.wait_for_url("**/book/?*view=*")
    assert page.locator("#pc-filters select[name=status]").input_value() == "draft"
    rows = page.locator(f"{ROWS}").count()
    assert rows == min(25, Book.objects.filter(status="draft").count())

    # Its share link opens the same filters and columns for another user.
    share = page.locator("details.pc-views a.pc-saved-share").get_attribute("href")
    assert share and "view=" not in share and "status=draft" in share
    viewer = new_page(viewport=MOBILE, session=session_cookie("viewer"), base_url=live_server.url)
    viewer_errors = record_failures(viewer)
    viewer.goto(share)
    assert viewer.locator("#pc-filters select[name=status]").input_value() == "draft"
    assert "Pages" not in headers(viewer) and headers(viewer)[: len(shown)] == shown[: len(headers(viewer))]
    statuses = viewer.locator(f"{ROWS}").evaluate_all("rs => rs.length")
    assert statuses > 0
    shoot(viewer, "views-03-shared-link-phone")
    viewer.click("details.pc-columns > summary")
    shoot(viewer, "views-04-column-chooser-phone")
    overflow = viewer.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a 390px phone"
    assert errors == [] and viewer_errors == []
