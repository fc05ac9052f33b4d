"""Screens opened as whole pages (a new tab, a direct link) work with JavaScript on: their
forms and links must not aim at the list's modal, which such a page does not have."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sample.models import Book
from tests.browser.helpers import record_failures
from tests.browser.test_book_list import demo_data, session_cookie  # noqa: F401 - a fixture

pytestmark = [
    pytest.mark.browser,
    pytest.mark.demo,
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls("sample.urls"),
]


def test_full_page_edit_form_and_detail_work_with_javascript(
    demo_data: None,  # noqa: F811
    live_server: Any,
    new_page: Callable[..., Any],
) -> None:
    book = Book.objects.order_by("pk").first()
    assert book is not None
    page = new_page(base_url=live_server.url, session=session_cookie("admin"))
    failures = record_failures(page)
    page.goto(f"/book/{book.pk}/")
    page.click("a.pc-btn-primary:has-text('Edit')")  # the detail page's Edit: a whole page here
    page.wait_for_url(f"**/book/{book.pk}/edit/")
    page.fill("#id_title", "Renamed on a whole page")
    page.click("button[type=submit]:has-text('Save')")
    page.wait_for_url("**/book/")
    book.refresh_from_db()
    assert book.title == "Renamed on a whole page"
    page.goto(f"/book/{book.pk}/delete/")
    page.click("button[type=submit]:has-text('Delete')")
    page.wait_for_url("**/book/")
    assert not Book.objects.filter(pk=book.pk).exists()
    assert not failures, failures
