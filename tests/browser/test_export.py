"""Export in a real browser: the Export menu of the demo's book list downloads what the list
shows (after a filter), and the selection; axe-core on the open menu; laptop and phone.

Run with ``pytest -m browser``. Screenshots land in ``artifacts/screenshots/export-*.png``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sample.models import Book
from tests.browser.conftest import MOBILE
from tests.browser.helpers import record_failures
from tests.browser.test_book_list import settled
from tests.browser.test_bulk_edit import row_box, selection_count, wait_for_count
from tests.browser.test_operator_screen import axe_serious, open_list
from tests.browser.test_operator_screen import demo_data as demo_data  # the fixture, used by name

pytestmark = [
    pytest.mark.browser,
    pytest.mark.demo,
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls("sample.urls"),
    pytest.mark.usefixtures("demo_data"),
]


def download(page: Any, link: Any) -> list[list[str]]:
    """Click ``link`` and read the CSV file it downloads."""
    with page.expect_download() as info:
        link.click()
    path = Path(info.value.path())
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


def test_the_export_menu_downloads_the_filtered_list_and_the_selection(
    new_page: Callable[..., Any], live_server: Any, shoot: Callable[[Any, str], Path]
) -> None:
    page = open_list(new_page, live_server)
    failures = record_failures(page)
    menu = page.locator('details[data-pc-menu="export"]')
    menu.locator("summary").click()
    assert menu.get_attribute("open") is not None
    shoot(page, "export-menu-laptop")
    assert axe_serious(page) == []

    rows = download(page, menu.get_by_role("link", name="CSV of all matching books"))
    assert rows[0][:3] == ["id", "title", "author"]
    assert len(rows) == Book.objects.count() + 1

    # After a filter the menu's links follow the list.
    settled(page, lambda: page.select_option("#pc-filters select[name=status]", "draft"))
    menu = page.locator('details[data-pc-menu="export"]')
    menu.locator("summary").click()
    rows = download(page, menu.get_by_role("link", name="CSV of all matching books"))
    drafts = Book.objects.filter(status="draft").count()
    assert len(rows) == drafts + 1 and {r[4] for r in rows[1:]} == {"draft"}

    # The selection alone.
    row_box(page, 0).check()
    row_box(page, 2).check()
    wait_for_count(page, 2)
    assert selection_count(page) == 2
    bar = page.locator("#pc-selection")
    shoot(page, "export-selection-bar")
    rows = download(page, bar.get_by_role("link", name="CSV of the selected books"))
    assert len(rows) == 3
    assert failures == []


def test_the_export_menu_fits_a_phone(
    new_page: Callable[..., Any], live_server: Any, shoot: Callable[[Any, str], Path]
) -> None:
    page = open_list(new_page, live_server, viewport=MOBILE)
    menu = page.locator('details[data-pc-menu="export"]')
    menu.locator("summary").click()
    panel = menu.locator(".pc-menu-panel").bounding_box()
    assert panel is not None
    assert panel["x"] >= 0 and panel["x"] + panel["width"] <= MOBILE["width"] + 1
    shoot(page, "export-menu-phone")
