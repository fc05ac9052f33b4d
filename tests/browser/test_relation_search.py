"""Relations that scale, in a real browser: the Author control searches as you type in the
create form, in the list's Author filter and in the bulk-edit modal; a match is picked and
saved, filtered on and applied. axe-core runs on the form page (no serious or critical
violations). Screenshots at 1366x768 and 390x844 land in ``artifacts/screenshots/relation-*.png``.

The demo's 20 authors count as "many" here (FILTER_SELECT_MAX_CHOICES=5), so every place draws
the search control, as it would over a table of thousands.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings

from sample.models import Author, Book
from tests.browser.conftest import MOBILE
from tests.browser.helpers import record_failures
from tests.browser.test_book_list import ROWS, modal_open, session_cookie, settled, table
from tests.browser.test_bulk_edit import row_box, select_posts, toast_text, wait_for_count

pytestmark = [
    pytest.mark.browser,
    pytest.mark.demo,
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls("sample.urls"),
]

LAPTOP = {"width": 1366, "height": 768}
SERIOUS = ("serious", "critical")
SETTINGS = {"FILTER_SELECT_MAX_CHOICES": 5, "BULK_MIN_ASYNC_RECORDS": 100_000}


@pytest.fixture
def demo_data() -> None:
    call_command("seed_books", books=60, quiet=True, stdout=io.StringIO())
    call_command("setup_demo", stdout=io.StringIO())


def axe_serious(page: Any) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    found = []
    for violation in Axe().run(page).response["violations"]:
        if violation["impact"] in SERIOUS:
            found += [f"{violation['id']}: {node['target']}" for node in violation["nodes"]]
    return found


def distinct_authors() -> list[tuple[Author, str]]:
    """Authors with a word of their name in no other author's (so typing it finds just them)."""
    names = list(Author.objects.values_list("name", flat=True))
    found = []
    for author in Author.objects.order_by("name"):
        word = author.name.split()[-1]
        if sum(word.lower() in n.lower() for n in names) == 1:
            found.append((author, word))
    assert len(found) >= 2, "the seed should give authors with distinct surnames"
    return found


def pick(page: Any, scope: Any, control_id: str, typed: str, value: Any) -> None:
    """Type ``typed`` into the search control of input ``control_id`` and pick option ``value``."""
    box = scope.locator(f"#{control_id}-ts-control")
    box.click()
    with page.expect_response(lambda r: "/relation/" in r.url and f"q={typed}" in r.url):
        box.press_sequentially(typed, delay=30)
    option = page.locator(f".ts-dropdown .option[data-value='{value}']")
    option.wait_for(state="visible")
    assert page.locator(".ts-dropdown .option").count() == 1, "the search should narrow to one author"
    option.click()


@override_settings(POWERCRUD_SETTINGS=SETTINGS)
def test_author_searches_in_the_form_the_filter_and_the_bulk_modal(
    demo_data: None, live_server: Any, new_page: Callable[..., Any], shoot: Callable[..., Any]
) -> None:
    (author, word), (target, target_word) = distinct_authors()[:2]
    page = new_page(viewport=LAPTOP, session=session_cookie("admin"), base_url=live_server.url)
    errors = record_failures(page)

    # ----- the create form as a full page: no options rendered, a labelled search box, axe-core.
    page.goto(f"{live_server.url}/book/new/")
    assert page.locator("select[name=author]").count() == 0
    assert page.locator("#id_author.tomselected").count() == 1
    assert page.locator("label[for='id_author-ts-control']").count() == 1  # the label names the box
    violations = axe_serious(page)
    assert violations == [], "\n".join(violations)
    shoot(page, "relation-01-form-1366")

    # ----- the same form in the modal (loaded by htmx): search, pick, save.
    page.goto(f"{live_server.url}/book/")
    settled(page, lambda: page.click("a:has-text('New book')"))
    assert modal_open(page)
    dialog = page.locator("#pc-modal")
    dialog.locator("#id_title").fill("Relation Browser Test")
    dialog.locator("#id_price").fill("12.50")
    pick(page, dialog, "id_author", word, author.pk)
    assert dialog.locator("#id_author").input_value() == str(author.pk)
    shoot(page, "relation-02-form-picked-1366")
    dialog.locator("button:has-text('Create book')").click()
    assert "created" in toast_text(page)
    assert Book.objects.get(title="Relation Browser Test").author == author

    # ----- the Author filter: same place, search, pick; the table narrows to that author.
    filters = page.locator("#pc-filters label").all_inner_texts()
    assert "Author" in filters
    settled(page, lambda: pick(page, page, "filter_author", word, author.pk))
    assert f"author={author.pk}" in page.url
    assert {row["Author"] for row in table(page)} == {author.name}
    shoot(page, "relation-03-filter-1366")
    # On reload the filter shows the author's name, not an id.
    page.reload()
    assert page.locator("#pc-filters .ts-control .item").inner_text().strip() == author.name
    assert page.locator("#pc-filters label").all_inner_texts() == filters

    # ----- the bulk modal: tick two rows, search the author, apply.
    page.goto(f"{live_server.url}/book/?page_size=25")
    boxes = page.locator(f"{ROWS} input.pc-select-row").evaluate_all("bs => bs.map(b => b.value)")
    pks = [int(v) for v in boxes[:2]]
    select_posts(page, lambda: row_box(page, 0).click())
    wait_for_count(page, 1)
    select_posts(page, lambda: row_box(page, 1).click())
    wait_for_count(page, 2)
    page.click("#pc-selection a:has-text('Edit selected')")
    page.wait_for_function("document.getElementById('pc-modal').open")
    dialog = page.locator("#pc-modal")
    assert dialog.locator("select[name=author]").count() == 0
    pick(page, dialog, "bulk_author", target_word, target.pk)
    assert dialog.locator("#bulk_change_author").is_checked()  # picking ticks the field's toggle
    shoot(page, "relation-04-bulk-1366")
    page.set_viewport_size(MOBILE)
    shoot(page, "relation-05-bulk-390")
    page.set_viewport_size(LAPTOP)
    settled(page, lambda: dialog.locator("button:has-text('Apply to 2 rows')").click())
    assert "Updated 2 books" in toast_text(page)
    assert set(Book.objects.filter(pk__in=pks).values_list("author", flat=True)) == {target.pk}

    # ----- the form on a phone.
    page.set_viewport_size(MOBILE)
    page.goto(f"{live_server.url}/book/new/")
    page.locator("#id_author-ts-control").click()
    page.locator(".ts-dropdown .option").first.wait_for(state="visible")
    shoot(page, "relation-06-form-open-390")
    assert errors == []
