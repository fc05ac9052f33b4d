"""Selection and the sync bulk-edit modal in a real browser.

Ticks rows on two pages (and a shift-click range), selects all rows matching a status filter
(minus one), opens the bulk-edit modal, gets a field error, checks first (nothing saved), then
applies a valid edit and sees the modal close, the toast and the table change.

Run with ``pytest -m browser``. Screenshots land in ``artifacts/screenshots/bulk-*.png``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings

from sample.models import Book
from tests.browser.conftest import MOBILE
from tests.browser.helpers import record_failures
from tests.browser.test_book_list import ROWS, modal_open, session_cookie, settled, table

pytestmark = [
    pytest.mark.browser,
    pytest.mark.demo,  # the demo's pages and data (seed_books, setup_demo)
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls("sample.urls"),
]

SELECTION = "/book/selection/"
COUNT = "#pc-selection .pc-selection-count strong"


def selection_count(page: Any) -> int:
    """The number in the selection bar (0 when the bar shows its hint)."""
    text = page.evaluate("s => (e => (e ? e.textContent.trim() : '0'))(document.querySelector(s))", COUNT)
    return int(text.replace(",", ""))


def wait_for_count(page: Any, count: int) -> None:
    """Wait until the selection bar says ``count`` (the POST answered and was swapped in)."""
    try:
        page.wait_for_function(
            """([sel, n]) => {
                const el = document.querySelector(sel);
                return (el ? el.textContent.trim().replace(/,/g, '') : '0') === String(n);
            }""",
            arg=[COUNT, count],
            timeout=5_000,
        )
    except Exception as exc:  # the bar's own text makes the failure readable
        raise AssertionError(f"selection bar shows {selection_count(page)}, expected {count}") from exc


def select_posts(page: Any, action: Callable[[], Any]) -> None:
    """Run ``action`` (a tick) and wait for its selection POST to be answered."""
    with page.expect_response(lambda r: r.url.endswith(SELECTION) and r.request.method == "POST"):
        action()


def row_box(page: Any, index: int) -> Any:
    return page.locator(f"{ROWS} input.pc-select-row").nth(index)


def pks(page: Any, boxes: str) -> list[int]:
    return [int(v) for v in page.locator(f"{ROWS} {boxes}").evaluate_all("bs => bs.map(b => b.value)")]


def checked_pks(page: Any) -> list[int]:
    return pks(page, "input.pc-select-row:checked")


def page_pks(page: Any) -> list[int]:
    return pks(page, "input.pc-select-row")


def toast_text(page: Any) -> str:
    page.wait_for_selector("#pc-toasts .pc-toast", timeout=5_000)
    return str(page.locator("#pc-toasts .pc-toast").last.inner_text())


@pytest.fixture
def demo_data() -> None:
    call_command("seed_books", books=60, quiet=True, stdout=io.StringIO())
    call_command("setup_demo", stdout=io.StringIO())


@override_settings(POWERCRUD_SETTINGS={"BULK_MIN_ASYNC_RECORDS": 100_000})
def test_bulk_edit_across_pages_and_filters(
    demo_data: None, live_server: Any, new_page: Callable[..., Any], shoot: Callable[..., Any]
) -> None:
    url = f"{live_server.url}/book/"
    page = new_page(session=session_cookie("admin"), base_url=live_server.url)
    errors = record_failures(page)
    page.goto(url)
    assert page.locator(ROWS).count() == 25
    assert selection_count(page) == 0
    assert page.locator("#pc-selection a:has-text('Edit selected')").get_attribute("aria-disabled") == "true"

    # Page 1: tick two rows, one after the other.
    first_page = page_pks(page)
    select_posts(page, lambda: row_box(page, 0).click())
    wait_for_count(page, 1)
    select_posts(page, lambda: row_box(page, 2).click())
    wait_for_count(page, 2)
    assert checked_pks(page) == [first_page[0], first_page[2]]
    assert page.locator(f"{ROWS}.pc-row-selected").count() == 2
    assert page.locator("input.pc-select-page").evaluate("b => b.indeterminate")
    assert page.url == url, "a selection POST became the page's URL"
    shoot(page, "bulk-01-ticked-page-1")

    # Page 2: the count carries over; a tick and a shift-click make a range of five.
    settled(page, lambda: page.click(".pc-pages a:text-is('2')"))
    assert page.locator(".pc-page-current").inner_text() == "2"
    assert selection_count(page) == 2
    second_page = page_pks(page)
    assert not set(second_page) & set(first_page)
    select_posts(page, lambda: row_box(page, 3).click())
    wait_for_count(page, 3)
    select_posts(page, lambda: row_box(page, 7).click(modifiers=["Shift"]))
    wait_for_count(page, 7)
    assert checked_pks(page) == second_page[3:8]
    shoot(page, "bulk-02-shift-range-page-2")

    # Back on page 1 the two ticks are still there (the server remembers them).
    settled(page, lambda: page.click(".pc-pages a:text-is('1')"))
    assert checked_pks(page) == [first_page[0], first_page[2]]
    assert selection_count(page) == 7
    picked = {first_page[0], first_page[2], *second_page[3:8]}

    # Three ticks in one go, faster than any answer comes back: none is lost.
    page.evaluate(
        "ids => ids.forEach(i => document.querySelectorAll('tbody input.pc-select-row')[i].click())",
        [4, 5, 6],
    )
    wait_for_count(page, 10)
    picked |= {first_page[4], first_page[5], first_page[6]}
    page.reload()
    assert set(checked_pks(page)) == picked & set(first_page)
    assert selection_count(page) == 10

    # A status filter, then "Select all matching": the selection becomes the filter.
    drafts = list(Book.objects.filter(status="draft").order_by("title", "pk").values_list("pk", flat=True))
    assert 3 < len(drafts) <= 25, "the seed should give one page of drafts"
    settled(page, lambda: page.select_option("#filter_status", "draft"))
    assert "status=draft" in page.url
    assert all(row["Status"] == "Draft" for row in table(page))
    assert selection_count(page) == 10  # ticks elsewhere still count
    settled(page, lambda: page.click("[data-pc-select-all]"))  # the bar, then the table refresh
    page.wait_for_function("document.querySelectorAll('input.pc-select-row:not(:checked)').length === 0")
    wait_for_count(page, len(drafts))
    assert "all matching a filter" in page.locator("#pc-selection").inner_text()
    page.wait_for_function("document.querySelector('input.pc-select-page').checked")

    # One row left out by hand: honoured as an exception to the filter.
    left_out = page_pks(page)[1]
    select_posts(page, lambda: row_box(page, 1).click())
    wait_for_count(page, len(drafts) - 1)
    assert "1 left out" in page.locator("#pc-selection").inner_text()
    chosen = [pk for pk in drafts if pk != left_out]
    shoot(page, "bulk-03-select-all-matching")

    # The modal: a title with the count, a toggle per field, nothing toggled.
    dialog = page.locator("#pc-modal")
    settled(page, lambda: page.click("#pc-selection a:has-text('Edit selected')"))
    assert modal_open(page)
    assert dialog.locator("#pc-modal-title").inner_text() == f"Edit {len(chosen)} books"
    apply = dialog.locator(f"button:has-text('Apply to {len(chosen)} rows')")
    assert apply.is_visible()
    assert "All or nothing" in dialog.inner_text()
    assert dialog.locator("input[id^=bulk_change_]:checked").count() == 0
    shoot(page, "bulk-04-modal")

    # A negative price is refused next to the price field, inside the modal; nothing is saved.
    before = dict(Book.objects.values_list("pk", "price"))
    dialog.locator("#bulk_change_price").check()
    dialog.locator("#bulk_price").fill("-5")
    settled(page, apply.click)
    assert modal_open(page)
    price_row = dialog.locator("fieldset.pc-bulk-row:has(#bulk_price)")
    assert "pc-has-error" in (price_row.get_attribute("class") or "")
    assert "greater than or equal to 0" in price_row.locator(".errorlist").inner_text()
    assert dialog.locator("#bulk_price").input_value() == "-5"
    assert page.evaluate("document.activeElement.id") == "bulk_price"
    assert dict(Book.objects.values_list("pk", "price")) == before
    shoot(page, "bulk-05-validation-error")

    # "Check first": a dry run of status -> archived; the preview says what would happen.
    # (Choosing a value ticks its field's toggle: a value set but left out is never meant.)
    dialog.locator("#bulk_change_price").uncheck()
    dialog.locator("#bulk_status").select_option("archived")
    assert dialog.locator("#bulk_change_status").is_checked()
    settled(page, lambda: dialog.locator("button:has-text('Check first')").click())
    assert modal_open(page)
    preview = dialog.locator(".pc-result")
    assert "nothing was saved" in preview.inner_text()
    assert f"{len(chosen)} of {len(chosen)} rows would change" in " ".join(preview.inner_text().split())
    assert "Draft" in preview.locator(".pc-examples").inner_text() or "draft" in preview.inner_text()
    assert dialog.locator("#bulk_change_status").is_checked()
    assert dialog.locator("#bulk_status").input_value() == "archived"
    assert set(Book.objects.filter(pk__in=chosen).values_list("status", flat=True)) == {"draft"}
    shoot(page, "bulk-06-check-first")

    # The same modal on a phone (same session, so the same selection).
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == "sessionid")
    phone = new_page(viewport=MOBILE, session=cookie, base_url=live_server.url)
    phone.goto(f"{url}?status=draft")
    assert selection_count(phone) == len(chosen)
    settled(phone, lambda: phone.click("#pc-selection a:has-text('Edit selected')"))
    assert modal_open(phone)
    shoot(phone, "bulk-07-mobile-modal")
    phone.locator("#bulk_change_price").check()
    phone.locator("#bulk_price").fill("-1")
    settled(phone, lambda: phone.locator("#pc-modal button:has-text('Apply to')").click())
    phone.locator("fieldset.pc-bulk-row:has(#bulk_price) .errorlist").wait_for()
    shoot(phone, "bulk-08-mobile-validation-error")
    overflow = phone.evaluate("(d => d.scrollWidth - d.clientWidth)(document.getElementById('pc-modal'))")
    assert overflow <= 0, f"the modal is {overflow}px wider than the phone"
    phone.context.close()

    # Apply: the modal closes, a toast says how many, the table refreshes under the same filter.
    settled(page, apply.click)
    page.wait_for_function("!document.getElementById('pc-modal').open")
    # The toast also offers "Undo…" (the run's page) and "Reselect" (the selection was cleared).
    assert toast_text(page).splitlines()[0] == f"Updated {len(chosen)} books."
    assert [row["Status"] for row in table(page)] == ["Draft"]  # only the row left out is still a draft
    assert page_pks(page) == [left_out]
    shoot(page, "bulk-09-applied")

    # The changed rows, shown under the new value.
    settled(page, lambda: page.select_option("#filter_status", "archived"))
    shown = {pk: row for pk, row in zip(page_pks(page), table(page), strict=True)}
    assert set(chosen) <= set(shown)
    assert all(row["Status"] == "Archived" for row in shown.values())
    shoot(page, "bulk-10-archived")

    # And in the database: every chosen row changed, the one left out did not, prices untouched.
    assert set(Book.objects.filter(pk__in=chosen).values_list("status", flat=True)) == {"archived"}
    assert Book.objects.get(pk=left_out).status == "draft"
    assert dict(Book.objects.values_list("pk", "price")) == before
    assert not errors, f"JavaScript errors or failed requests: {errors}"
