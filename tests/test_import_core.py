"""Import, request-free: the modes, conversion and validation, natural keys, many-to-many,
all-or-nothing and per-row, the per-object path's signals, column matching. Through the guard
(``run_request()``), as the views and workers run it. Reading files: test_import_files.py."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from powercrud.bulk.importing import ImportSpec, mapped_rows, match_columns, unique_keys
from powercrud.bulk.request import BulkRequest
from powercrud.bulk.types import BulkInputError, BulkResult
from powercrud.bulk_persistence import run_request
from tests.testapp.models import Author, Book, Edition, Genre, Shelf, ShelfEvent, Tag

pytestmark = pytest.mark.django_db


def make_request(
    model: type[Any],
    fields: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    mode: str = "create",
    key: Sequence[str] = (),
    natural: dict[str, str] | None = None,
    atomic: bool = True,
    dry_run: bool = False,
    first_line: int = 2,
) -> BulkRequest:
    spec = ImportSpec(fields=tuple(fields), mode=mode, key=tuple(key), natural_keys=natural or {})  # type: ignore[arg-type]
    return BulkRequest(
        operation="import",
        model_label=model._meta.label_lower,
        atomic=atomic,
        dry_run=dry_run,
        import_data={
            "spec": spec.to_data(),
            "rows": [[first_line + i, list(values)] for i, values in enumerate(rows)],
        },
    )


def run_import(
    model: type[Any], fields: Sequence[str], rows: Sequence[Sequence[Any]], **options: Any
) -> BulkResult:
    scope = options.pop("scope", None)
    request = make_request(model, fields, rows, **options)
    context = request.context(mode="sync", user_id=None, selection_size=len(rows))
    return run_request(request, queryset=scope if scope is not None else model.objects.all(), context=context)


@pytest.fixture
def people() -> dict[str, Any]:
    return {
        "ann": Author.objects.create(name="Ann Leckie"),
        "ted": Author.objects.create(name="Ted Chiang"),
        "sf": Genre.objects.create(name="SF"),
        "a": Tag.objects.create(name="award"),
        "b": Tag.objects.create(name="classic"),
    }


BOOK = ["title", "author", "status", "price", "published_date", "tags"]


# --- create -------------------------------------------------------------------------------------


def test_create_converts_every_value_like_the_forms(people: dict[str, Any]) -> None:
    rows = [
        [
            "Ancillary Justice",
            people["ann"].pk,
            "published",
            "12.50",
            "2013-10-01",
            f"{people['a'].pk}, {people['b'].pk}",
        ],
        ["Exhalation", people["ted"].pk, "Out of print", "9", "07/05/2019", ""],
    ]
    result = run_import(Book, BOOK, rows)
    assert result.success, result.errors
    assert (result.total, result.success_records, result.changed) == (2, 2, 2)
    assert "2 new" in result.message
    first = Book.objects.get(title="Ancillary Justice")
    assert (first.author, first.status, first.price) == (people["ann"], "published", Decimal("12.50"))
    assert first.published_date == datetime.date(2013, 10, 1)
    assert set(first.tags.all()) == {people["a"], people["b"]}
    second = Book.objects.get(title="Exhalation")
    assert second.status == "out_of_print"  # a choice by its label
    assert second.published_date == datetime.date(2019, 7, 5)  # a format DateField accepts
    assert list(second.tags.all()) == []


def test_a_failing_last_row_in_all_or_nothing_writes_nothing(people: dict[str, Any]) -> None:
    rows = [["Good", people["ann"].pk, "draft", "1.00", "", ""]] * 3 + [
        ["Bad", people["ann"].pk, "draft", "-4", "", ""]
    ]
    result = run_import(Book, BOOK, rows)
    assert not result.success
    assert Book.objects.count() == 0
    assert result.failed_records == 1
    (error,) = result.errors
    assert error.field == "price" and error.pk == "line 5"
    assert error.messages[0].startswith("Line 5: ")
    assert "nothing was saved" in result.message


def test_per_row_keeps_the_good_rows_and_names_the_bad(people: dict[str, Any]) -> None:
    rows = [
        ["Good", people["ann"].pk, "draft", "1.00", "", ""],
        ["No price", people["ann"].pk, "draft", "", "", ""],
        ["Bad date", people["ann"].pk, "draft", "3", "31/31/2020", ""],
        ["Bad status", people["ann"].pk, "nope", "3", "", ""],
        ["Bad tag", people["ann"].pk, "draft", "3", "", "999999"],
    ]
    result = run_import(Book, BOOK, rows, atomic=False)
    assert list(Book.objects.values_list("title", flat=True)) == ["Good"]
    assert result.failed_records == 4 and result.success_records == 1
    fields = {(e.pk, e.field) for e in result.errors}
    assert fields == {
        ("line 3", "price"),
        ("line 4", "published_date"),
        ("line 5", "status"),
        ("line 6", "tags"),
    }


def test_a_unique_clash_on_create_is_the_row_failure() -> None:
    Genre.objects.create(name="SF")
    result = run_import(Genre, ["name"], [["Fantasy"], ["SF"], ["Horror"]], atomic=False)
    assert sorted(Genre.objects.values_list("name", flat=True)) == ["Fantasy", "Horror", "SF"]
    (error,) = result.errors
    assert error.pk == "line 3"
    assert result.failed_records == 1 and result.success_records == 2


def test_a_check_writes_nothing_and_counts_what_the_apply_would_do(people: dict[str, Any]) -> None:
    result = run_import(Genre, ["name"], [["Fantasy"], ["SF"]], dry_run=True, atomic=False)
    assert result.dry_run and not result.success
    assert list(Genre.objects.values_list("name", flat=True)) == ["SF"]
    assert result.message.startswith("Check only")
    assert "1 new" in result.message and result.failed_records == 1


# --- natural keys -------------------------------------------------------------------------------


def test_foreign_keys_by_a_natural_key_case_insensitive(people: dict[str, Any]) -> None:
    result = run_import(
        Book,
        ["title", "author", "genre", "price"],
        [["A", "ann leckie", "sf", "1"]],
        natural={"author": "name", "genre": "name"},
    )
    assert result.success, result.errors
    book = Book.objects.get()
    assert (book.author, book.genre) == (people["ann"], people["sf"])


def test_a_natural_key_not_found_or_ambiguous_is_a_row_error(people: dict[str, Any]) -> None:
    Author.objects.create(name="Ted Chiang")  # a second one
    rows = [["A", "Nobody", "1"], ["B", "Ted Chiang", "1"], ["C", "Ann Leckie", "1"]]
    result = run_import(Book, ["title", "author", "price"], rows, natural={"author": "name"}, atomic=False)
    assert list(Book.objects.values_list("title", flat=True)) == ["C"]
    by_line = {e.pk: " ".join(e.messages) for e in result.errors}
    assert "No author with name “Nobody”" in by_line["line 2"]
    assert "2 authors have name “Ted Chiang”" in by_line["line 3"]


def test_many_to_many_by_natural_key(people: dict[str, Any]) -> None:
    result = run_import(
        Book,
        ["title", "author", "price", "tags"],
        [["A", people["ann"].pk, "1", "Award, CLASSIC"]],
        natural={"tags": "name"},
    )
    assert result.success, result.errors
    assert set(Book.objects.get().tags.values_list("name", flat=True)) == {"award", "classic"}


# --- upsert and skip ----------------------------------------------------------------------------


def test_upsert_on_a_unique_together_key() -> None:
    Edition.objects.create(code="B1", language="en", title="Old", copies=1)
    Edition.objects.create(code="B1", language="fr", title="Vieux", copies=2)
    rows = [["B1", "en", "New", "5"], ["B1", "fr", "Vieux", "2"], ["B1", "de", "Neu", "3"]]
    result = run_import(
        Edition, ["code", "language", "title", "copies"], rows, mode="upsert", key=["code", "language"]
    )
    assert result.success, result.errors
    assert "1 new, 1 updated, 1 unchanged, 0 skipped" in result.message
    assert result.changed == 2
    found = {(e.code, e.language): (e.title, e.copies) for e in Edition.objects.all()}
    assert found == {("B1", "en"): ("New", 5), ("B1", "fr"): ("Vieux", 2), ("B1", "de"): ("Neu", 3)}
    assert Edition.objects.get(language="en").pk == 1 or Edition.objects.filter(language="en").count() == 1


def test_upsert_keeps_the_existing_row_and_its_key() -> None:
    kept = Edition.objects.create(code="B1", language="en", title="Old", copies=1)
    run_import(
        Edition, ["code", "language", "title"], [["B1", "en", "New"]], mode="upsert", key=["code", "language"]
    )
    kept.refresh_from_db()
    assert (kept.title, kept.copies, Edition.objects.count()) == ("New", 1, 1)  # copies not imported: kept


def test_upsert_refuses_rows_outside_the_scope() -> None:
    Edition.objects.create(code="B1", language="en", title="Old")
    Edition.objects.create(code="B2", language="en", title="Hidden")
    scope = Edition.objects.exclude(code="B2")
    rows = [["B1", "en", "New"], ["B2", "en", "Changed"]]
    result = run_import(
        Edition,
        ["code", "language", "title"],
        rows,
        mode="upsert",
        key=["code", "language"],
        scope=scope,
        atomic=False,
    )
    assert Edition.objects.get(code="B2").title == "Hidden"
    assert Edition.objects.get(code="B1").title == "New"
    (error,) = result.errors
    assert error.pk == Edition.objects.get(code="B2").pk and "Line 3" in error.messages[0]


def test_skip_existing_reports_them_as_skipped() -> None:
    Genre.objects.create(name="SF")
    result = run_import(Genre, ["name"], [["SF"], ["Fantasy"], ["Horror"]], mode="skip", key=["name"])
    assert result.success
    assert "2 new, 0 updated, 0 unchanged, 1 skipped" in result.message
    assert result.success_records == 3 and result.changed == 2
    assert Genre.objects.count() == 3


def test_the_same_key_twice_in_the_file_fails_the_second_row() -> None:
    result = run_import(Genre, ["name"], [["SF"], ["SF"]], mode="upsert", key=["name"], atomic=False)
    assert Genre.objects.count() == 1
    (error,) = result.errors
    assert error.pk == "line 3" and "as line 2" in error.messages[0]


def test_the_key_must_be_unique_and_imported() -> None:
    with pytest.raises(BulkInputError, match="not unique"):
        run_import(Edition, ["code", "title"], [["B1", "x"]], mode="upsert", key=["code"])
    with pytest.raises(BulkInputError, match="not matched to a column"):
        run_import(Genre, ["name"], [["SF"]], mode="upsert", key=["id"])
    assert ("code", "language") in unique_keys(Edition)


# --- the per-object path ------------------------------------------------------------------------


def test_signals_fire_on_the_per_object_path_and_clean_runs() -> None:
    existing = Shelf.objects.create(name="A", capacity=5)
    ShelfEvent.objects.all().delete()
    rows = [["B", "10", "False"], ["C", "0", "False"], ["D", "3", "True"]]
    result = run_import(Shelf, ["name", "capacity", "is_full"], rows, atomic=False)
    assert sorted(Shelf.objects.values_list("name", flat=True)) == ["A", "B", "D"]
    assert sorted(ShelfEvent.objects.values_list("message", flat=True)) == ["B created", "D created"]
    (error,) = result.errors
    assert error.field == "capacity" and error.pk == "line 3"
    assert existing.events.count() == 0


# --- mapping ------------------------------------------------------------------------------------


def test_columns_match_by_name_or_verbose_name_and_the_key_column_is_left_out() -> None:
    headers = ["ID", " Title ", "AVAILABLE", "Unknown", "price"]
    mapping = match_columns(Book, headers, ["title", "is_available", "price", "author"])
    assert mapping == [None, "title", "is_available", None, "price"]
    explicit = match_columns(Book, headers, ["title", "author"], {"Unknown": "author", "AVAILABLE": None})
    assert explicit == [None, "title", None, "author", None]
    fields, rows = mapped_rows(mapping, [(2, ("1", "T", "yes", "?", "3"))])
    assert fields == ("title", "is_available", "price") and rows == [[2, ["T", "yes", "3"]]]


def test_two_columns_for_one_field_are_refused() -> None:
    with pytest.raises(BulkInputError, match="both fill"):
        match_columns(Book, ["title", "TITLE "], ["title"], {"TITLE ": "title"})


def test_fields_outside_the_allowed_ones_are_refused(people: dict[str, Any]) -> None:
    request = make_request(Book, ["title", "price"], [["A", "1"]])
    request = BulkRequest.from_dict({**request.to_dict(), "bulk_fields": ["title"]})
    context = request.context(mode="sync", user_id=None, selection_size=1)
    with pytest.raises(BulkInputError, match="cannot be imported here"):
        run_request(request, queryset=Book.objects.all(), context=context)
    assert Book.objects.count() == 0


@pytest.mark.parametrize("bad", [{"a": 1}, float("nan"), [[1]], object()])
def test_import_rows_must_be_json(bad: Any) -> None:
    with pytest.raises(TypeError, match="Line 2 of the import holds"):
        make_request(Genre, ["name"], [[bad]])
    with pytest.raises(ValueError, match="not one value per field"):
        make_request(Genre, ["name"], [["a", "b"]])
    assert make_request(Book, ["title", "tags"], [["A", ["x", 1, None]]]).import_rows == [
        (2, ["A", ["x", 1, None]])
    ]
