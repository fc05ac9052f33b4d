"""The book screen in a real browser: sort, filter, page, search, and the create/detail/delete modals.

Run with ``pytest -m browser``. Screenshots land in ``artifacts/screenshots/``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from sample.models import Book
from tests.browser.conftest import MOBILE

pytestmark = [
    pytest.mark.browser,
    pytest.mark.demo,  # the demo's pages and data (seed_books, setup_demo)
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls("sample.urls"),
]

ROWS = "#pc-content tbody tr"
NEW_TITLE = "Aardvark Browser Test"


def settled(page: Any, action: Callable[[], Any]) -> None:
    """Run ``action`` and wait until the htmx swap it caused has settled."""
    before = page.evaluate("window.__pcSettled")
    action()
    page.wait_for_function("n => window.__pcSettled > n", arg=before)


def table(page: Any) -> list[dict[str, str]]:
    """The visible rows as {column header: cell text}."""
    headers = page.locator("#pc-content thead th").evaluate_all("ths => ths.map(th => th.textContent.trim())")
    cells = page.locator(ROWS).evaluate_all(
        "rows => rows.map(r => Array.from(r.cells).map(c => c.textContent.trim()))"
    )
    return [dict(zip(headers, row, strict=True)) for row in cells]


def titles(page: Any) -> list[str]:
    return [row["Title"] for row in table(page)]


def session_cookie(username: str) -> str:
    client = Client()
    client.force_login(User.objects.get(username=username))
    return client.cookies["sessionid"].value


def result_count(page: Any) -> str:
    """The pager's "Showing 1–25 of 60" line, whitespace collapsed."""
    return " ".join(page.locator(".pc-pagination .pc-count").inner_text().split())


def modal_open(page: Any) -> bool:
    return bool(page.evaluate("document.getElementById('pc-modal').open"))


@pytest.fixture
def demo_data() -> None:
    call_command("seed_books", books=60, quiet=True, stdout=io.StringIO())
    call_command("setup_demo", stdout=io.StringIO())  # users admin/admin and viewer/viewer


def test_book_screen(
    demo_data: None, live_server: Any, new_page: Callable[..., Any], shoot: Callable[..., Any]
) -> None:
    url = f"{live_server.url}/book/"
    page = new_page(base_url=live_server.url)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # Sign in through the login form.
    page.goto(url)
    assert "/accounts/login/" in page.url
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin")
    shoot(page, "01-login")
    page.click("button[type=submit]:has-text('Sign in')")
    page.wait_for_url(url)
    assert page.locator(ROWS).count() == 25
    assert result_count(page) == "Showing 1–25 of 60"
    overflow = page.evaluate("(w => w.scrollWidth - w.clientWidth)(document.querySelector('.pc-table-wrap'))")
    assert overflow <= 0, f"the book table is {overflow}px wider than a 1366px screen"
    shoot(page, "02-list")

    # Sort by price: order changes, URL says so, prices ascend.
    default_titles = titles(page)
    settled(page, lambda: page.click("th a.pc-sort:has-text('Price')"))
    assert re.search(r"[?&]sort=price\b", page.url)
    prices = [Decimal(row["Price"].replace(",", "")) for row in table(page)]
    assert prices == sorted(prices)
    assert titles(page) != default_titles
    shoot(page, "03-sorted-by-price")

    # Filter by status: every row is Published and the URL carries the filter (and keeps the sort).
    settled(page, lambda: page.select_option("#pc-filters select[name=status]", "published"))
    assert "status=published" in page.url
    rows = table(page)
    assert rows and all(row["Status"] == "Published" for row in rows)
    published = Book.objects.filter(status="published").count()
    assert result_count(page).endswith(f"of {published}")
    assert "sort=price" in page.url, "filtering after sorting dropped the sort"
    shoot(page, "04-filtered-published")

    # Page 2, then the back button restores page 1.
    page.goto(url)
    page_one = titles(page)
    settled(page, lambda: page.click(".pc-pages a:text-is('2')"))
    assert re.search(r"[?&]page=2\b", page.url)
    assert page.locator(".pc-page-current").inner_text() == "2"
    assert titles(page) != page_one
    shoot(page, "05-page-2")
    settled(page, page.go_back)
    assert "page=2" not in page.url
    page.wait_for_selector(".pc-page-current:text-is('1')")
    assert titles(page) == page_one

    # Text search narrows the rows to matches.
    target = Book.objects.order_by("pk").first()
    assert target is not None
    word = target.title.split()[-1]
    settled(page, lambda: page.fill("#pc-search", word))
    assert f"q={word}" in page.url
    rows = table(page)
    assert rows and all(word.lower() in (r["Title"] + r["Author"]).lower() for r in rows)
    assert target.title in titles(page)
    page.locator("#pc-search").focus()
    shoot(page, "06-search-focus")

    # Create: empty submit shows errors inside the modal; fixing them saves, closes and lists the row.
    page.goto(url)
    settled(page, lambda: page.click("a.pc-btn-primary:has-text('New book')"))
    assert modal_open(page)
    assert page.evaluate("document.activeElement.id") == "id_title", "focus did not move into the modal"
    dialog = page.locator("#pc-modal")
    shoot(page, "07-create-modal")
    settled(page, lambda: dialog.locator("button[type=submit]").click())
    assert modal_open(page)
    assert dialog.locator(".pc-has-error").count() >= 3  # title, author, price
    assert "This field is required" in dialog.inner_text()
    assert page.evaluate("document.activeElement.id") == "id_title", "focus is not on the first invalid field"
    shoot(page, "08-create-errors")
    dialog.locator("#id_title").fill(NEW_TITLE)
    dialog.locator("#id_author").select_option(index=1)
    dialog.locator("#id_price").fill("12.50")
    dialog.locator("#id_status").select_option("published")
    history_length = page.evaluate("history.length")
    settled(page, lambda: dialog.locator("button[type=submit]").click())  # the list refresh settles
    page.wait_for_function("!document.getElementById('pc-modal').open")
    assert titles(page)[0] == NEW_TITLE
    assert page.evaluate("history.length") == history_length, "the refresh after a save added a history entry"
    assert Book.objects.filter(title=NEW_TITLE).count() == 1
    assert page.locator(".pc-toast").first.inner_text().startswith("Book")
    shoot(page, "09-created")

    # Detail modal, closed with its × button.
    row = page.locator(ROWS).filter(has_text=NEW_TITLE)
    settled(page, lambda: row.locator("a[aria-label^='View ']").click())
    assert modal_open(page)
    assert "12.50" in dialog.inner_text() and "Published" in dialog.inner_text()
    shoot(page, "10-detail-modal")
    dialog.locator(".pc-close").click()
    page.wait_for_function("!document.getElementById('pc-modal').open")

    # Delete modal: confirm, the modal closes and the row is gone.
    settled(page, lambda: row.locator("a[aria-label^='Delete ']").click())
    assert modal_open(page)
    assert NEW_TITLE in dialog.inner_text()
    shoot(page, "11-delete-modal")
    settled(page, lambda: dialog.locator("button:has-text('Delete')").click())
    page.wait_for_function("!document.getElementById('pc-modal').open")
    assert NEW_TITLE not in titles(page)
    assert not Book.objects.filter(title=NEW_TITLE).exists()

    # Mobile: the list and a modal.
    phone = new_page(viewport=MOBILE, session=session_cookie("admin"), base_url=live_server.url)
    phone.goto(url)
    assert phone.locator(ROWS).count() == 25
    shoot(phone, "12-mobile-list")
    settled(phone, lambda: phone.click("a.pc-btn-primary:has-text('New book')"))
    shoot(phone, "13-mobile-create-modal")
    phone.context.close()

    assert not errors, f"JavaScript errors: {errors}"


def test_viewer_sees_no_write_buttons(
    demo_data: None, live_server: Any, new_page: Callable[..., Any], shoot: Callable[..., Any]
) -> None:
    page = new_page(session=session_cookie("viewer"), base_url=live_server.url)
    page.goto(f"{live_server.url}/book/")
    assert page.locator(ROWS).count() == 25
    assert page.locator("text=New book").count() == 0
    actions = page.locator(f"{ROWS} td.pc-actions")
    # Row actions are icons named for their row ("View Atlas Silent").
    assert actions.locator("a[aria-label^='View ']").count() == 25
    assert actions.locator("a[aria-label^='Edit '], a[aria-label^='Delete ']").count() == 0
    shoot(page, "14-viewer-list")
