"""Import in a real browser (the demo's books): the list's Import link opens the modal, a CSV is
uploaded, its columns come matched with their first values, a check shows its counts, the
import applies and the browser lands on the run's page, whose Undo removes the rows again.

Run with ``pytest -m browser``.
Screenshots land in ``artifacts/screenshots/import-*.png``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sample.models import Author, Book
from tests.browser.helpers import record_failures
from tests.browser.test_operator_screen import axe_serious, open_list
from tests.browser.test_operator_screen import demo_data as demo_data

pytestmark = [
    pytest.mark.browser,
    pytest.mark.demo,
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls("sample.urls"),
    pytest.mark.usefixtures("demo_data"),
]


def test_upload_match_check_apply_and_undo_an_import(
    new_page: Callable[..., Any], live_server: Any, shoot: Callable[[Any, str], Path], tmp_path: Path
) -> None:
    author = Author.objects.order_by("pk").first()
    assert author is not None
    before = Book.objects.count()
    data = tmp_path / "new-books.csv"
    data.write_text(
        "Title,Author,Status,Price,Published date\n"
        f"Imported one,{author.name},Published,12.50,2024-05-01\n"
        f"Imported two,{author.name},draft,7,\n"
        f"Imported three,{author.name},draft,3.25,01/02/2023\n",
        encoding="utf-8",
    )
    page = open_list(new_page, live_server)
    failures = record_failures(page)
    page.get_by_role("link", name="Import").click()
    modal = page.locator("#pc-modal-body")
    modal.get_by_label("File").set_input_files(str(data))
    modal.get_by_label("Find author by").select_option("name")
    shoot(page, "import-upload")
    modal.get_by_role("button", name="Upload").click()
    page.wait_for_selector("#pc-modal-body .pc-import-map")
    assert modal.get_by_label("Title").input_value() == "title"
    assert modal.get_by_label("Published date").input_value() == "published_date"
    assert "Imported one · Imported two · Imported three" in modal.inner_text()
    assert axe_serious(page) == []
    shoot(page, "import-map")
    modal.get_by_role("button", name="Check").click()
    page.wait_for_selector("#pc-modal-body .pc-run-counts")
    assert "New 3" in " ".join(modal.locator(".pc-run-counts").inner_text().split())
    assert Book.objects.count() == before  # a check writes nothing
    shoot(page, "import-check")
    modal.get_by_role("button", name="Import").click()
    page.wait_for_url("**/powercrud/tasks/*/")
    assert Book.objects.count() == before + 3
    assert Book.objects.get(title="Imported one").status == "published"
    shoot(page, "import-run", full_page=True)
    page.get_by_role("button", name="Undo this run").click()
    page.wait_for_url("**/powercrud/tasks/*/")
    assert Book.objects.count() == before
    assert "3 created rows deleted" in page.inner_text("body")
    shoot(page, "import-undone")
    assert failures == []
