"""The BULK_EDIT role through HTTP: the modal, validation, every field type, both modes, the
per-object path, the persistence path and its backends, dry runs, and selection scoping."""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client, override_settings

from powercrud.bulk import RowError
from tests.bulk_urls import (
    BOOK_BULK_FIELDS,
    SCRIPT,
    RecordingBackend,
    book_snapshot,
    changes,
    select,
    select_all,
)
from tests.conftest import HtmxClient, row_cell
from tests.testapp.models import Asset, Author, Book, Shelf, ShelfEvent

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.bulk_urls")]

Catalogue = dict[str, Any]


def edit(client: Client, base: str, data: dict[str, Any], dry_run: bool = False) -> Any:
    return client.post(f"/{base}/bulk/edit/", {**data, **({"dry_run": "1"} if dry_run else {})})


def choose(client: Client, base: str, catalogue: Catalogue, *indexes: int) -> list[int]:
    pks = [catalogue["books"][i].pk for i in indexes]
    assert select(client, base, pks).status_code == 200
    return pks


def saved_message(response: Any) -> str:
    """The toast message of an HTMX success (204 + ``pcSaved``)."""
    assert response.status_code == 204, response.content.decode()[:500]
    return json.loads(response.headers["HX-Trigger"])["pcSaved"]["message"]


def fieldset(html: str, name: str) -> str:
    """The modal's fieldset for bulk field ``name``."""
    for block in re.findall(r"<fieldset.*?</fieldset>", html, re.S):
        if f'name="change_{name}"' in block:
            return block
    raise AssertionError(f"no fieldset for {name}")


# ----- the modal -----------------------------------------------------------------------------
@pytest.mark.parametrize("htmx", [True, False])
def test_the_modal_shows_the_count_and_one_toggle_per_field(
    admin_client: Client, htmx_client: HtmxClient, catalogue: Catalogue, htmx: bool
) -> None:
    client = htmx_client if htmx else admin_client
    choose(client, "book", catalogue, 0, 1, 2)
    response = client.get("/book/bulk/edit/")
    assert response.status_code == 200
    html = response.content.decode()
    assert ("<html" in html) is not htmx
    assert '<h2 id="pc-modal-title">Edit 3 books</h2>' in html
    assert "Apply to 3 rows" in html and ">Check first<" in html
    assert "<strong>All or nothing:</strong>" in html
    assert re.findall(r'name="change_(\w+)"', html) == BOOK_BULK_FIELDS
    assert "<select" in fieldset(html, "status") and 'value="out_of_print"' in fieldset(html, "status")
    genre = fieldset(html, "genre")
    assert '<select name="genre"' in genre and '<option value="" selected>' in genre  # may be cleared
    assert all(f'value="{a.pk}"' in fieldset(html, "author") for a in catalogue["authors"])
    assert re.search(r'<input type="number" name="price" step="0.01"', fieldset(html, "price"))
    available = fieldset(html, "is_available")
    assert '<select name="is_available"' in available
    assert (
        '<option value="true">Yes</option>' in available and '<option value="false">No</option>' in available
    )
    assert '<input type="date" name="published_date"' in fieldset(html, "published_date")
    tags = fieldset(html, "tags")
    assert re.search(r'<div id="bulk_tags" class="pc-checklist">', tags)  # a checklist: few tags
    assert 'type="checkbox" name="tags"' in tags
    assert re.findall(r'<option value="(\w+)"', tags.split('name="tags"')[0].split('name="tags__op"')[1]) == [
        "add",
        "remove",
        "replace",
    ]
    # Nothing is toggled on a fresh form.
    assert " checked" not in html


def test_the_modal_names_the_mode_and_hides_apply_without_a_selection(
    admin_client: Client, catalogue: Catalogue
) -> None:
    response = admin_client.get("/book/bulk/edit/")
    assert "No rows are selected. Close this and tick some rows first." in response.content.decode()
    assert "Apply to" not in response.content.decode()
    choose(admin_client, "per-row-books", catalogue, 1)
    html = admin_client.get("/per-row-books/bulk/edit/").content.decode()
    assert "<strong>Row by row:</strong>" in html and "Apply to 1 row<" in html


def test_posting_without_a_selection_is_a_400(htmx_client: HtmxClient, catalogue: Catalogue) -> None:
    before = book_snapshot()
    response = edit(htmx_client, "book", {"change_status": "1", "status": "published"})
    assert response.status_code == 400
    assert response.content.decode() == (
        '<div class="pc-alert pc-alert-error" role="alert">'
        "No rows are selected. Select rows in the list first.</div>"
    )
    assert book_snapshot() == before


def test_choices_come_from_the_hook(htmx_client: HtmxClient, catalogue: Catalogue) -> None:
    pks = choose(htmx_client, "limited-books", catalogue, 0, 1)
    author_field = fieldset(htmx_client.get("/limited-books/bulk/edit/").content.decode(), "author")
    ursula, italo, chinua = catalogue["authors"]
    assert f'value="{ursula.pk}"' not in author_field
    assert f'value="{italo.pk}"' in author_field and f'value="{chinua.pk}"' in author_field
    before = book_snapshot()
    response = edit(htmx_client, "limited-books", {"change_author": "1", "author": ursula.pk})
    assert response.status_code == 200
    assert "Select a valid choice." in fieldset(response.content.decode(), "author")
    assert book_snapshot() == before
    saved_message(edit(htmx_client, "limited-books", {"change_author": "1", "author": chinua.pk}))
    assert set(Book.objects.filter(pk__in=pks).values_list("author", flat=True)) == {chinua.pk}


# ----- validation ------------------------------------------------------------------------------
INVALID = [
    ({"change_price": "1", "price": "abc"}, "price", "Enter a number."),
    (
        {"change_price": "1", "price": "1234567.891"},
        "price",
        "Ensure that there are no more than 8 digits in total.",
    ),
    ({"change_price": "1", "price": ""}, "price", "This field is required."),
    (
        {"change_status": "1", "status": "bogus"},
        "status",
        "Select a valid choice. bogus is not one of the available choices.",
    ),
    ({"change_author": "1", "author": "999999"}, "author", "Select a valid choice."),
    ({"change_author": "1", "author": "x"}, "author", "Select a valid choice."),
    ({"change_author": "1", "author": ""}, "author", "This field is required."),
    ({"change_is_available": "1", "is_available": "maybe"}, "is_available", "Select a valid choice."),
    ({"change_published_date": "1", "published_date": "2024-13-45"}, "published_date", "Enter a valid date."),
    (
        {"change_tags": "1", "tags__op": "explode", "tags": ["1"]},
        "tags",
        "Select a valid choice. explode is not one of the available choices.",
    ),
    (
        {"change_tags": "1", "tags__op": "add", "tags": ["999999"]},
        "tags",
        "Select a valid choice. 999999 is not one of the available choices.",
    ),
    ({"change_tags": "1", "tags__op": "add"}, "tags", "Choose at least one item to add."),
    ({"change_tags": "1", "tags__op": "remove"}, "tags", "Choose at least one item to remove."),
]


@pytest.mark.parametrize(("data", "field", "message"), INVALID, ids=[f"{f}:{m[:20]}" for _, f, m in INVALID])
def test_an_invalid_value_is_shown_next_to_its_field_and_nothing_is_written(
    htmx_client: HtmxClient, catalogue: Catalogue, data: dict[str, Any], field: str, message: str
) -> None:
    choose(htmx_client, "book", catalogue, 0, 1, 2)
    before = book_snapshot()
    # A valid second field proves the run is refused as a whole.
    response = edit(htmx_client, "book", {"change_status": "1", "status": "published", **data})
    assert response.status_code == 200
    html = response.content.decode()
    block = fieldset(html, field)
    assert "pc-has-error" in block
    assert message in block.replace("&#x27;", "'")
    assert html.count("pc-has-error") == 1
    assert 'id="id_' not in html  # fields not toggled keep the form's element ids
    described = re.findall(r'aria-describedby="([^"]+)"', block)
    assert described and all(f'id="{ref}"' in block for ref in described)
    assert "HX-Trigger" not in response.headers
    assert book_snapshot() == before


def test_no_field_toggled_is_an_error(htmx_client: HtmxClient, catalogue: Catalogue) -> None:
    choose(htmx_client, "book", catalogue, 0, 1)
    before = book_snapshot()
    for data in ({}, {"status": "published", "price": "1"}, {"change_status": "0", "status": "published"}):
        response = edit(htmx_client, "book", data)
        assert response.status_code == 200
        assert "Choose at least one field to change." in response.content.decode()
    assert book_snapshot() == before


def test_values_of_fields_not_toggled_are_ignored(htmx_client: HtmxClient, catalogue: Catalogue) -> None:
    pks = choose(htmx_client, "book", catalogue, 0, 1)
    before = book_snapshot()
    response = edit(
        htmx_client,
        "book",
        {"change_status": "1", "status": "out_of_print", "price": "0.01", "title": "Hacked", "author": "999"},
    )
    saved_message(response)
    assert changes(before, book_snapshot()) == {pk: {"status": "out_of_print"} for pk in pks}


# ----- every field type, through both persistence paths -----------------------------------------
def tags(catalogue: Catalogue, *indexes: int) -> list[int]:
    return [catalogue["tags"][i].pk for i in indexes]


FIELD_CASES: list[
    tuple[str, Callable[[Catalogue], dict[str, Any]], Callable[[Catalogue, dict[str, Any]], dict[str, Any]]]
] = [
    (
        "status",
        lambda c: {"change_status": "1", "status": "out_of_print"},
        lambda c, old: {"status": "out_of_print"},
    ),
    (
        "genre",
        lambda c: {"change_genre": "1", "genre": c["genres"][1].pk},
        lambda c, old: {"genre_id": c["genres"][1].pk},
    ),
    ("genre cleared", lambda c: {"change_genre": "1", "genre": ""}, lambda c, old: {"genre_id": None}),
    (
        "author",
        lambda c: {"change_author": "1", "author": c["authors"][2].pk},
        lambda c, old: {"author_id": c["authors"][2].pk},
    ),
    ("price", lambda c: {"change_price": "1", "price": "12.50"}, lambda c, old: {"price": Decimal("12.50")}),
    (
        "unavailable",
        lambda c: {"change_is_available": "1", "is_available": "false"},
        lambda c, old: {"is_available": False},
    ),
    (
        "available",
        lambda c: {"change_is_available": "1", "is_available": "true"},
        lambda c, old: {"is_available": True},
    ),
    (
        "date",
        lambda c: {"change_published_date": "1", "published_date": "2024-02-29"},
        lambda c, old: {"published_date": datetime.date(2024, 2, 29)},
    ),
    (
        "date cleared",
        lambda c: {"change_published_date": "1", "published_date": ""},
        lambda c, old: {"published_date": None},
    ),
    (
        "tags add",
        lambda c: {"change_tags": "1", "tags__op": "add", "tags": tags(c, 1)},
        lambda c, old: {"tags": tuple(sorted({*old["tags"], *tags(c, 1)}))},
    ),
    (
        "tags remove",
        lambda c: {"change_tags": "1", "tags__op": "remove", "tags": tags(c, 0)},
        lambda c, old: {"tags": tuple(t for t in old["tags"] if t not in tags(c, 0))},
    ),
    (
        "tags replace",
        lambda c: {"change_tags": "1", "tags__op": "replace", "tags": tags(c, 1)},
        lambda c, old: {"tags": tuple(tags(c, 1))},
    ),
    ("tags cleared", lambda c: {"change_tags": "1", "tags__op": "replace"}, lambda c, old: {"tags": ()}),
    (
        "several at once",
        lambda c: {
            "change_status": "1",
            "status": "published",
            "change_price": "1",
            "price": "3",
            "change_tags": "1",
            "tags__op": "add",
            "tags": tags(c, 0, 1),
        },
        lambda c, old: {"status": "published", "price": Decimal("3.00"), "tags": tuple(tags(c, 0, 1))},
    ),
]


@pytest.mark.parametrize("base", ["book", "plain-books"])
@pytest.mark.parametrize(("name", "data", "expected"), FIELD_CASES, ids=[case[0] for case in FIELD_CASES])
def test_each_field_type_is_applied_to_exactly_the_selected_rows(
    htmx_client: HtmxClient,
    catalogue: Catalogue,
    base: str,
    name: str,
    data: Callable[[Catalogue], dict[str, Any]],
    expected: Callable[[Catalogue, dict[str, Any]], dict[str, Any]],
) -> None:
    # Book 00 has both tags and no genre; none of these is archived.
    pks = choose(htmx_client, base, catalogue, 0, 1, 2, 4, 5)
    before = book_snapshot()
    message = saved_message(edit(htmx_client, base, data(catalogue)))
    assert message.startswith("Updated 5 books.")
    after = book_snapshot()
    wanted = {pk: {**before[pk], **expected(catalogue, before[pk])} for pk in pks}
    assert {pk: after[pk] for pk in pks} == wanted
    assert {pk: row for pk, row in after.items() if pk not in pks} == {
        pk: row for pk, row in before.items() if pk not in pks
    }


def test_the_toast_counts_rows_that_already_had_the_value(
    htmx_client: HtmxClient, catalogue: Catalogue
) -> None:
    choose(htmx_client, "book", catalogue, 0, 1, 2, 5)  # Book 01 and Book 05 are published
    message = saved_message(edit(htmx_client, "book", {"change_status": "1", "status": "published"}))
    assert message == "Updated 4 books. 2 already had these values."


def test_without_htmx_a_success_redirects_to_the_list_with_a_message(
    admin_client: Client, catalogue: Catalogue
) -> None:
    pks = choose(admin_client, "book", catalogue, 0, 1)
    response = edit(admin_client, "book", {"change_status": "1", "status": "out_of_print"})
    assert response.status_code == 302
    assert response.url == "/book/"
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Updated 2 books."]
    assert set(Book.objects.filter(pk__in=pks).values_list("status", flat=True)) == {"out_of_print"}


# ----- all-or-nothing and per-row ------------------------------------------------------------
ARCHIVED_RULE = "“Book 03” is archived; archived books cannot be re-priced."


def test_all_or_nothing_a_failure_on_the_last_row_writes_nothing(
    htmx_client: HtmxClient, catalogue: Catalogue
) -> None:
    pks = choose(htmx_client, "book", catalogue, 0, 1, 2, 3)  # Book 03 is archived and the last row
    before = book_snapshot()
    response = edit(
        htmx_client, "book", {"change_price": "1", "price": "9.99", "change_status": "1", "status": "draft"}
    )
    assert response.status_code == 200
    assert book_snapshot() == before
    result = response.context["result"]
    assert result.errors == (RowError(pk=pks[3], field="price", messages=(ARCHIVED_RULE,)),)
    assert (result.success, result.success_records) == (False, 0)
    html = response.content.decode()
    assert "<strong>Nothing was saved.</strong> 1 row failed" in html
    assert f"<tr>{row_cell(f'/book/{pks[3]}/', pks[3])}<td>price</td><td>{ARCHIVED_RULE}</td></tr>" in html
    assert "HX-Trigger" not in response.headers  # nothing to refresh
    assert 'name="change_price" id="bulk_change_price" checked' in html  # the form keeps its values


def test_per_row_mode_commits_valid_rows_and_lists_the_failed(
    htmx_client: HtmxClient, catalogue: Catalogue
) -> None:
    pks = choose(htmx_client, "per-row-books", catalogue, 0, 3, 5, 7)  # Book 03 and 07 are archived
    before = book_snapshot()
    response = edit(htmx_client, "per-row-books", {"change_price": "1", "price": "9.99"})
    assert response.status_code == 200
    assert changes(before, book_snapshot()) == {
        pks[0]: {"price": Decimal("9.99")},
        pks[2]: {"price": Decimal("9.99")},
    }
    result = response.context["result"]
    assert [(e.pk, e.field) for e in result.errors] == [(pks[1], "price"), (pks[3], "price")]
    html = response.content.decode()
    assert "<strong>2 saved, 2 failed.</strong>" in html
    assert (
        f"<tr>{row_cell(f'/per-row-books/{pks[1]}/', pks[1])}<td>price</td><td>{ARCHIVED_RULE}</td></tr>"
        in html
    )
    assert json.loads(response.headers["HX-Trigger"]) == {"pcRefresh": {}}


@pytest.fixture
def shelves(db: None) -> list[Shelf]:
    made = [
        Shelf.objects.create(name="Attic", capacity=10),
        Shelf.objects.create(name="Basement", capacity=20, is_full=True),
        Shelf.objects.create(name="Cellar", capacity=30),
    ]
    ShelfEvent.objects.all().delete()
    return made


def test_the_per_object_path_fires_post_save_through_the_view(
    htmx_client: HtmxClient, shelves: list[Shelf]
) -> None:
    select(htmx_client, "shelf", [s.pk for s in shelves])
    saved_message(edit(htmx_client, "shelf", {"change_location": "1", "location": "Wing B"}))
    assert set(Shelf.objects.values_list("location", flat=True)) == {"Wing B"}
    assert sorted(ShelfEvent.objects.values_list("message", flat=True)) == [
        "Attic saved",
        "Basement saved",
        "Cellar saved",
    ]


def test_the_models_clean_rule_fails_rows_one_by_one(htmx_client: HtmxClient, shelves: list[Shelf]) -> None:
    select(htmx_client, "shelf", [s.pk for s in shelves])
    response = edit(htmx_client, "shelf", {"change_capacity": "1", "capacity": "0"})
    assert response.status_code == 200
    result = response.context["result"]
    assert [(e.pk, e.field, e.messages) for e in result.errors] == [
        (shelves[0].pk, "capacity", ("A shelf with no capacity must be marked full.",)),
        (shelves[2].pk, "capacity", ("A shelf with no capacity must be marked full.",)),
    ]
    assert dict(Shelf.objects.values_list("name", "capacity")) == {"Attic": 10, "Basement": 0, "Cellar": 30}
    assert list(ShelfEvent.objects.values_list("message", flat=True)) == ["Basement saved"]


# ----- the persistence path ---------------------------------------------------------------------
def test_the_backend_path_is_the_default_sync_path(
    htmx_client: HtmxClient, admin_user: Any, catalogue: Catalogue
) -> None:
    RecordingBackend.calls.clear()
    pks = choose(htmx_client, "recorded-books", catalogue, 0, 2, 4)
    saved_message(
        edit(
            htmx_client,
            "recorded-books",
            {
                "change_status": "1",
                "status": "published",
                "change_author": "1",
                "author": catalogue["authors"][1].pk,
            },
        )
    )
    [call] = RecordingBackend.calls
    assert call["pks"] == pks
    assert list(call["fields_to_update"]) == ["status", "author"]
    assert call["field_data"] == {"status": "published", "author": catalogue["authors"][1].pk}
    assert list(call["bulk_fields"]) == BOOK_BULK_FIELDS
    context = call["context"]
    assert (context.mode, context.model_label, context.user_id) == ("sync", "testapp.book", admin_user.pk)
    assert (context.selection_size, context.atomic, context.dry_run, context.operation) == (
        3,
        True,
        False,
        "update",
    )
    assert set(Book.objects.filter(pk__in=pks).values_list("status", "author")) == {
        ("published", catalogue["authors"][1].pk)
    }


def test_a_backend_returning_failure_is_shown_in_the_modal(
    htmx_client: HtmxClient, catalogue: Catalogue
) -> None:
    pks = choose(htmx_client, "refused-books", catalogue, 0, 1)
    before = book_snapshot()
    response = edit(htmx_client, "refused-books", {"change_status": "1", "status": "archived"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "<strong>Nothing was saved.</strong>" in html
    assert (
        f"<tr>{row_cell(f'/refused-books/{pks[0]}/', pks[0])}<td>status</td>"
        "<td>Refused by policy &lt;script&gt;alert(1)&lt;/script&gt;</td></tr>" in html
    )
    assert SCRIPT not in html
    assert book_snapshot() == before


def test_a_backend_that_writes_then_fails_leaves_nothing_written(
    htmx_client: HtmxClient, catalogue: Catalogue
) -> None:
    choose(htmx_client, "ledger-books", catalogue, 0, 1, 2)
    before = book_snapshot()
    response = edit(
        htmx_client,
        "ledger-books",
        {"change_status": "1", "status": "archived", "change_tags": "1", "tags__op": "replace"},
    )
    assert response.status_code == 200
    assert book_snapshot() == before
    assert response.context["result"].success_records == 0
    html = response.content.decode()
    assert "Nothing was saved." in html and "The ledger is closed." in html
    assert "HX-Trigger" not in response.headers


def test_a_dry_run_writes_nothing_even_through_a_backend_that_ignores_it(
    htmx_client: HtmxClient, catalogue: Catalogue
) -> None:
    pks = choose(htmx_client, "careless-books", catalogue, 0, 1)
    before = book_snapshot()
    response = edit(htmx_client, "careless-books", {"change_status": "1", "status": "archived"}, dry_run=True)
    assert response.status_code == 200
    assert "Check complete — nothing was saved." in response.content.decode()
    assert book_snapshot() == before
    saved_message(edit(htmx_client, "careless-books", {"change_status": "1", "status": "archived"}))
    assert set(Book.objects.filter(pk__in=pks).values_list("status", flat=True)) == {"archived"}


# ----- dry run ("Check first") ------------------------------------------------------------------
@pytest.mark.parametrize("base", ["book", "per-row-books"])
def test_check_first_writes_nothing_and_predicts_the_real_run(
    htmx_client: HtmxClient, catalogue: Catalogue, base: str
) -> None:
    pks = choose(htmx_client, base, catalogue, 0, 1, 3, 6, 7)  # Book 03 and 07 are archived
    data = {
        "change_price": "1",
        "price": "9.99",
        "change_tags": "1",
        "tags__op": "add",
        "tags": tags(catalogue, 1),
    }
    before = book_snapshot()
    check = edit(htmx_client, base, data, dry_run=True)
    assert check.status_code == 200
    assert book_snapshot() == before
    assert "HX-Trigger" not in check.headers
    predicted = check.context["result"]
    assert predicted.dry_run
    assert [(e.pk, e.field) for e in predicted.errors] == [(pks[2], "price"), (pks[4], "price")]
    html = check.content.decode()
    assert "<strong>Check complete — nothing was saved.</strong>" in html
    if base == "book":  # all-or-nothing: every row was checked, and the others are said to pass
        assert (
            "2 of 5 rows would fail; the other 3 passed the check, but this screen saves all rows or none."
            in html
        )
    else:
        assert "0 of 5 rows would change; 2 would fail." not in html and "; 2 would fail." in html
    assert f"<tr>{row_cell(f'/{base}/{pks[2]}/', pks[2])}<td>price</td><td>{ARCHIVED_RULE}</td></tr>" in html
    real = edit(htmx_client, base, data)
    assert real.status_code == 200
    assert real.context["result"].errors == predicted.errors
    written = changes(before, book_snapshot())
    if base == "book":  # all-or-nothing
        assert written == {}
    else:
        assert sorted(written) == [pks[0], pks[1], pks[3]]
        assert real.context["result"].success_records == predicted.success_records == 3


def test_check_first_reports_changes_and_examples(htmx_client: HtmxClient, catalogue: Catalogue) -> None:
    pks = choose(htmx_client, "book", catalogue, 0, 1, 2)  # Book 01 is already published
    before = book_snapshot()
    response = edit(htmx_client, "book", {"change_status": "1", "status": "published"}, dry_run=True)
    assert book_snapshot() == before
    result = response.context["result"]
    assert (result.success, result.dry_run, result.total, result.changed) == (True, True, 3, 2)
    assert [example.pk for example in result.examples] == [pks[0], pks[2]]
    html = response.content.decode()
    assert "2 of 3 rows would change." in html
    assert "Examples of the change" in html
    assert '<span class="pc-old">Draft</span> → <span class="pc-new">Published</span>' in html  # labels


# ----- the selection as written ---------------------------------------------------------------------
@override_settings(POWERCRUD_SETTINGS={"BULK_BATCH_SIZE": 3})
@pytest.mark.parametrize("base", ["book", "plain-books", "per-row-books"])
def test_an_edit_of_the_filtered_field_reaches_every_selected_row(
    htmx_client: HtmxClient, catalogue: Catalogue, base: str
) -> None:
    drafts = sorted(Book.objects.filter(status="draft").values_list("pk", flat=True))
    assert len(drafts) == 8
    select_all(htmx_client, base, "status=draft")
    before = book_snapshot()
    assert (
        saved_message(edit(htmx_client, base, {"change_status": "1", "status": "published"}))
        == "Updated 8 books."
    )
    assert changes(before, book_snapshot()) == {pk: {"status": "published"} for pk in drafts}


def test_select_all_with_exceptions_is_written_exactly(htmx_client: HtmxClient, catalogue: Catalogue) -> None:
    books = catalogue["books"]
    select_all(
        htmx_client, "book", "status=draft&author=" + str(catalogue["authors"][0].pk)
    )  # Book 00, 12, 24
    select(htmx_client, "book", [books[12].pk], checked=False)
    select(htmx_client, "book", [books[1].pk])
    before = book_snapshot()
    saved_message(edit(htmx_client, "book", {"change_is_available": "1", "is_available": "false"}))
    # Book 00 and 24 were available; Book 01 already was not.
    assert changes(before, book_snapshot()) == {
        books[0].pk: {"is_available": False},
        books[24].pk: {"is_available": False},
    }


def test_ids_outside_the_users_scope_are_never_touched(user_factory: Any, catalogue: Catalogue) -> None:
    user = user_factory("ursula", "view_book", "change_book")
    user.first_name = "Ursula Le Guin"
    user.save()
    client = HtmxClient()
    client.force_login(user)
    everything = [b.pk for b in catalogue["books"]]
    response = select(client, "my-books", everything)
    assert response.status_code == 200
    own = sorted(b.pk for b in catalogue["books"] if b.author == catalogue["authors"][0])
    assert len(own) == 10
    assert "<strong>10</strong> selected" in response.content.decode()
    assert "Edit 10 books" in client.get("/my-books/bulk/edit/").content.decode()
    before = book_snapshot()
    assert (
        saved_message(edit(client, "my-books", {"change_status": "1", "status": "archived"}))
        == "Updated 10 books. 3 already had these values."
    )
    assert sorted(changes(before, book_snapshot())) == sorted(
        pk for pk in own if before[pk]["status"] != "archived"
    )
    # Select-all in the scoped view is scoped too.
    select_all(client, "my-books", "")
    before = book_snapshot()
    saved_message(edit(client, "my-books", {"change_price": "1", "price": "1.00"}))
    assert sorted(changes(before, book_snapshot())) == own


def test_rows_the_scope_filters_out_are_never_touched(htmx_client: HtmxClient, catalogue: Catalogue) -> None:
    archived = {b.pk for b in catalogue["books"] if b.status == "archived"}
    select(htmx_client, "unarchived-books", [b.pk for b in catalogue["books"][:10]])
    select_all(htmx_client, "unarchived-books", "")
    select(htmx_client, "unarchived-books", sorted(archived))  # explicit inclusions outside the scope
    before = book_snapshot()
    assert saved_message(
        edit(htmx_client, "unarchived-books", {"change_genre": "1", "genre": ""})
    ).startswith("Updated 23 books.")
    written = changes(before, book_snapshot())
    assert not archived & set(written)
    assert Book.objects.filter(status="archived", genre__isnull=False).count() == 6


# ----- UUID primary keys -----------------------------------------------------------------------------
def test_uuid_primary_keys_end_to_end(htmx_client: HtmxClient) -> None:
    assets = [Asset.objects.create(code=f"A-{i}", description="old") for i in range(3)]
    select(htmx_client, "asset", [str(assets[0].pk), str(assets[2].pk).upper()])
    html = htmx_client.get("/asset/bulk/edit/").content.decode()
    assert "Edit 2 assets" in html
    assert re.findall(r'name="change_(\w+)"', html) == ["description", "in_service"]
    check = edit(
        htmx_client,
        "asset",
        {"change_description": "1", "description": "Moved", "change_in_service": "1", "in_service": "false"},
        dry_run=True,
    )
    assert [example.pk for example in check.context["result"].examples] == sorted(
        [assets[0].pk, assets[2].pk]
    )
    assert set(Asset.objects.values_list("description", flat=True)) == {"old"}
    message = saved_message(
        edit(
            htmx_client,
            "asset",
            {
                "change_description": "1",
                "description": "Moved",
                "change_in_service": "1",
                "in_service": "false",
            },
        )
    )
    assert message == "Updated 2 assets."
    assert dict(Asset.objects.values_list("code", "description")) == {
        "A-0": "Moved",
        "A-1": "old",
        "A-2": "Moved",
    }
    assert dict(Asset.objects.values_list("code", "in_service")) == {"A-0": False, "A-1": True, "A-2": False}


def test_an_author_picked_for_books_must_still_exist(htmx_client: HtmxClient, catalogue: Catalogue) -> None:
    choose(htmx_client, "plain-books", catalogue, 0, 1)
    ghost = Author.objects.create(name="Ghost")
    form_html = htmx_client.get("/plain-books/bulk/edit/").content.decode()
    assert f'value="{ghost.pk}"' in form_html
    ghost_pk = ghost.pk
    ghost.delete()
    before = book_snapshot()
    response = edit(htmx_client, "plain-books", {"change_author": "1", "author": ghost_pk})
    assert response.status_code == 200
    assert "Select a valid choice." in fieldset(response.content.decode(), "author")
    assert book_snapshot() == before


def test_check_first_on_the_per_object_path_leaves_no_signal_side_effects(
    htmx_client: HtmxClient, shelves: list[Shelf]
) -> None:
    select(htmx_client, "shelf", [s.pk for s in shelves])
    data = {"change_capacity": "1", "capacity": "0"}
    check = edit(htmx_client, "shelf", data, dry_run=True)
    assert check.status_code == 200
    assert ShelfEvent.objects.count() == 0  # post_save ran inside the rolled-back check
    assert dict(Shelf.objects.values_list("name", "capacity")) == {"Attic": 10, "Basement": 20, "Cellar": 30}
    real = edit(htmx_client, "shelf", data)
    assert real.context["result"].errors == check.context["result"].errors
    assert real.context["result"].success_records == check.context["result"].success_records == 1


def test_without_htmx_errors_render_the_whole_page(admin_client: Client, catalogue: Catalogue) -> None:
    choose(admin_client, "book", catalogue, 0, 3)
    before = book_snapshot()
    invalid = admin_client.post("/book/bulk/edit/", {"change_price": "1", "price": "abc"})
    assert invalid.status_code == 200
    assert "<html" in invalid.content.decode() and "Enter a number." in invalid.content.decode()
    failed = admin_client.post("/book/bulk/edit/", {"change_price": "1", "price": "1"})
    assert failed.status_code == 200
    assert "<html" in failed.content.decode() and ARCHIVED_RULE in failed.content.decode()
    assert book_snapshot() == before


# ----- what a submit costs ---------------------------------------------------------------------
def submit_statements(client: Client, rows: int) -> list[str]:
    """The statements of one sync edit of every one of ``rows`` fresh books, after select-all."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.async_helpers import make_books

    Book.objects.all().delete()
    make_books(rows)
    select_all(client, "plain-books", "")
    with CaptureQueriesContext(connection) as queries:
        assert saved_message(edit(client, "plain-books", {"change_status": "1", "status": "archived"}))
    assert Book.objects.filter(status="archived").count() == rows
    return [query["sql"] for query in queries.captured_queries]


def test_a_sync_edit_costs_the_same_statements_for_30_and_3000_rows(htmx_client: HtmxClient) -> None:
    """Issue 12: the set-based path writes the selection in one statement and its ledger in
    another, whatever its size below BULK_SET_BATCH_SIZE; nothing reads the ledger back."""
    submit_statements(htmx_client, 5)  # Django's one-off checks (the database's JSON support)
    small, large = submit_statements(htmx_client, 30), submit_statements(htmx_client, 3000)
    assert len(small) == len(large)
    books = [sql for sql in large if sql.startswith('UPDATE "testapp_book"')]
    ledger = [sql for sql in large if sql.startswith('INSERT INTO "powercrud_runrow"')]
    record = [sql for sql in large if sql.startswith('UPDATE "powercrud_bulktask"')]
    assert (len(books), len(ledger), len(record)) == (1, 1, 1)  # the record closed in one UPDATE
    assert not [sql for sql in large if "GROUP BY" in sql]  # counts known, not read
