"""The run ledger in a real browser: a bulk edit with a reason, its run page, and its undo.

Signs in as the demo admin, ticks five books, changes their price with a reason and applies
(in the request: the demo's async threshold is far above five rows); opens the newest run from
the task dashboard and reads the reason, the counts and "before → after" for each row; runs
axe-core on that page when ``axe_playwright_python`` is installed; then undoes the run and
lands on the undo's page, with the five prices back in the database.

Run with ``pytest -m browser``. Screenshots land in ``artifacts/screenshots/runs-*.png``.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings

from powercrud.models import BulkTask
from sample.models import Book
from tests.browser.conftest import DESKTOP, MOBILE
from tests.browser.helpers import record_failures
from tests.browser.test_book_list import ROWS, modal_open, session_cookie, settled
from tests.browser.test_bulk_edit import (
    checked_pks,
    page_pks,
    row_box,
    select_posts,
    toast_text,
    wait_for_count,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.demo,  # the demo's pages and data (seed_books, setup_demo)
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls("sample.urls"),
]

NEW_PRICE = Decimal("12.34")
REASON = "Spring price review (browser test)"
PICKED = 5
SERIOUS = {"serious", "critical"}
LAPTOP = {"width": 1366, "height": 768}


@pytest.fixture
def demo_data() -> None:
    call_command("seed_books", books=60, quiet=True, stdout=io.StringIO())
    call_command("setup_demo", stdout=io.StringIO())
    Book.objects.filter(price=NEW_PRICE).update(price=NEW_PRICE + 1)  # every picked row will change


def words(text: str) -> str:
    return " ".join(text.split())


def horizontal_overflow(page: Any) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth"))


def axe_violations(page: Any) -> list[dict[str, Any]] | None:
    """axe-core's violations on ``page``, or None when axe_playwright_python is not installed."""
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:
        return None
    return list(Axe().run(page).response["violations"])


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        for node in v["nodes"]:
            lines.append(f"{v['impact']} {v['id']}: {node['target']} {node.get('failureSummary', '')}")
    return "\n".join(lines)


@override_settings(POWERCRUD_SETTINGS={"BULK_MIN_ASYNC_RECORDS": 100_000})
def test_run_page_and_undo(
    demo_data: None, live_server: Any, new_page: Callable[..., Any], shoot: Callable[..., Any]
) -> None:
    started = time.monotonic()
    page = new_page(session=session_cookie("admin"), base_url=live_server.url)
    errors = record_failures(page)
    page.goto("/book/")
    assert page.locator(ROWS).count() == 25

    # Five books on the first page; their prices before the edit.
    for index in range(PICKED):
        select_posts(page, lambda i=index: row_box(page, i).click())
        wait_for_count(page, index + 1)
    picked = page_pks(page)[:PICKED]
    assert checked_pks(page) == picked
    before = dict(Book.objects.filter(pk__in=picked).values_list("pk", "price"))
    untouched = dict(Book.objects.exclude(pk__in=picked).values_list("pk", "price"))

    # The modal: a new price and a reason, applied in the request; the toast says so.
    dialog = page.locator("#pc-modal")
    settled(page, lambda: page.click("#pc-selection a:has-text('Edit selected')"))
    # powercrud.js opens the dialog after the swap has settled: wait for it, then check it.
    page.wait_for_function("document.getElementById('pc-modal').open", timeout=5_000)
    assert modal_open(page)
    dialog.locator("#bulk_change_price").check()
    dialog.locator("#bulk_price").fill(str(NEW_PRICE))
    dialog.locator("#bulk_reason").fill(REASON)
    settled(page, lambda: dialog.locator(f"button:has-text('Apply to {PICKED} rows')").click())
    page.wait_for_function("!document.getElementById('pc-modal').open")
    assert toast_text(page).splitlines()[0] == f"Updated {PICKED} books."  # then "Undo…", "Reselect"
    assert set(Book.objects.filter(pk__in=picked).values_list("price", flat=True)) == {NEW_PRICE}
    run = BulkTask.objects.latest("pk")
    assert (run.kind, run.mode, run.dry_run, run.reason) == ("update", "sync", False, REASON)

    # The task dashboard lists it first; its page has the reason, the counts and each row.
    page.goto("/powercrud/tasks/")
    first = page.locator("a.pc-task-id").first
    assert first.inner_text() == f"#{run.pk}"
    assert REASON in page.locator("#pc-content tbody tr").first.inner_text()
    first.click()
    page.wait_for_url(f"**/powercrud/tasks/{run.pk}/")
    assert page.locator(".pc-task-reason-full").inner_text() == REASON
    counts = words(page.locator(".pc-run-counts").inner_text())
    assert f"Changed {PICKED}" in counts, counts
    assert "Failed 0" in counts, counts
    rows = page.locator("#pc-task-rows tbody tr")
    assert rows.count() == PICKED
    shown: dict[int, str] = {}
    for i in range(PICKED):
        cells = rows.nth(i).locator("td")
        pk = int(cells.nth(0).inner_text().split()[0].lstrip("#"))
        assert cells.nth(1).inner_text() == "Changed"
        shown[pk] = words(cells.nth(2).inner_text())
    assert set(shown) == set(picked)
    for pk, change in shown.items():
        # The arrow is for the eye, " to " for a screen reader (visually hidden, still in the text).
        assert change.startswith("Price:"), change
        assert str(before[pk]) in change and str(NEW_PRICE) in change, change
        assert change.index(str(before[pk])) < change.index("→") < change.rindex(str(NEW_PRICE)), change
    undo = page.locator("button[name=undo_run]")
    assert undo.inner_text() == "Undo this run" and undo.get_attribute("value") == str(run.pk)
    assert horizontal_overflow(page) <= 0, "the run page is wider than a 1366px screen"
    shoot(page, "runs-01-run-page-desktop")
    shoot(page, "runs-02-run-page-desktop-full", full_page=True)
    page.set_viewport_size(LAPTOP)
    shoot(page, "runs-03-run-page-1366x768")
    page.set_viewport_size(DESKTOP)

    # axe-core on the run page: no serious or critical violation.
    violations = axe_violations(page)
    if violations is not None:
        serious = [v for v in violations if v["impact"] in SERIOUS]
        assert not serious, describe(serious)

    # The same page on a phone: nothing wider than the screen.
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == "sessionid")
    phone = new_page(viewport=MOBILE, session=cookie, base_url=live_server.url)
    phone.goto(f"/powercrud/tasks/{run.pk}/")
    assert phone.locator("#pc-task-rows tbody tr").count() == PICKED
    shoot(phone, "runs-04-run-page-phone")
    shoot(phone, "runs-05-run-page-phone-full", full_page=True)
    overflow = horizontal_overflow(phone)
    rows_overflow = phone.evaluate(
        "(w => w.scrollWidth - w.clientWidth)(document.querySelector('#pc-task-rows .pc-table-wrap'))"
    )
    phone.context.close()
    assert overflow <= 0, f"the run page is {overflow}px wider than a 390px phone"
    assert rows_overflow <= 0, f"the rows table scrolls {rows_overflow}px sideways on a 390px phone"

    # Undo: a new run, in the request, and its page; the prices are back.
    with page.expect_navigation():
        undo.click()
    undo_run = BulkTask.objects.latest("pk")
    assert undo_run.pk != run.pk
    page.wait_for_url(f"**/powercrud/tasks/{undo_run.pk}/")
    assert undo_run.read_request().source_action == "undo"
    assert undo_run.reason == f"Undo of run #{run.pk}"
    summary = words(page.locator("#pc-task-summary + .pc-detail").inner_text())
    assert f"Undoes run #{run.pk}" in summary, summary
    assert page.locator(f".pc-detail a[href$='/powercrud/tasks/{run.pk}/']").inner_text() == f"run #{run.pk}"
    assert f"Changed {PICKED}" in words(page.locator(".pc-run-counts").inner_text())
    # Its "Changes" card says it puts each row's own old value back (not the price it undoes).
    note = words(page.locator(".pc-task-undo-note").inner_text())
    assert f"Puts back the values each row held before run #{run.pk} (Price)" in note, note
    assert str(NEW_PRICE) not in page.locator("#pc-task-changes + *").inner_text()
    undone = words(page.locator("#pc-task-rows tbody").inner_text())
    assert all(f"{NEW_PRICE} → to {before[pk]}" in undone for pk in picked), undone
    assert dict(Book.objects.filter(pk__in=picked).values_list("pk", "price")) == before
    assert dict(Book.objects.exclude(pk__in=picked).values_list("pk", "price")) == untouched
    # The undo answers with a plain redirect to its page: no toast or message says it worked
    # (the page itself does). Recorded here so a toast, if one is added, is checked too.
    toasts = page.locator("#pc-toasts .pc-toast")
    if toasts.count():
        assert f"#{undo_run.pk}" in toasts.last.inner_text() or "Undo" in toasts.last.inner_text()
    shoot(page, "runs-06-undo-run-page")

    # The undone run's page no longer offers an undo (a run is undone once).
    page.goto(f"/powercrud/tasks/{run.pk}/")
    assert page.locator("button[name=undo_run]").count() == 0
    assert not errors, f"JavaScript errors or failed requests: {errors}"
    assert time.monotonic() - started < 60
