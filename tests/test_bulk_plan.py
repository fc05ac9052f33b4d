"""``powercrud.bulk.plan``: what a bulk update will do, decided once per run (the fields it may
write, each value checked once for every row), the rows of a batch as they are read, and the
model's per-row checks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from powercrud.bulk import BulkInputError, M2MChange, RowChange, RowChecks, WriteStrategy
from powercrud.bulk.m2m import M2MEdit, resolve_edit
from powercrud.bulk.plan import (
    Load,
    UpdatePlan,
    clean_value,
    load_rows,
    model_check_errors,
    validation_messages,
)
from powercrud.bulk.strategies import row_checks
from tests.service_helpers import context_for, snapshot, update
from tests.testapp.models import Asset, Author, Book, Shelf, Tag


def plan_for(
    model: Any,
    values: dict[str, Any],
    *,
    m2m: tuple[M2MEdit, ...] = (),
    load: Load = Load.VALUES,
    checks: RowChecks | None = None,
    exclude: frozenset[str] = frozenset(),
) -> UpdatePlan:
    """An ``UpdatePlan`` writing ``values`` (already checked) to ``model``."""
    return UpdatePlan(
        model=model,
        using="default",
        context=context_for(model),
        values=values,
        attnames={name: model._meta.get_field(name).attname for name in values},
        m2m=m2m,
        strategy=WriteStrategy.SET_BASED,
        checks=checks or RowChecks(),
        exclude=exclude,
        auto_now=(),
        load=load,
        only=None,
        validate_row=False,
        before_batch=False,
        after_batch=False,
    )


# ----- what a run may write, checked before any write --------------------------------------------


@pytest.mark.django_db
def test_value_is_validated_once_before_any_write(shop: dict[str, Any]) -> None:
    before = snapshot(Book)
    with pytest.raises(BulkInputError) as info:
        update(Book.objects.all(), {"status": "published", "author": 999_999})
    assert info.value.field == "author"
    assert str(info.value) == (
        "Invalid value for 'author': no author with id 999999 can be chosen (it does not exist "
        "or is not allowed)."
    )
    with pytest.raises(BulkInputError) as info:
        update(Book.objects.all(), {"price": "1234567.00"})
    assert str(info.value) == (
        "Invalid value for 'price': Ensure that there are no more than 8 digits in total."
    )
    with pytest.raises(BulkInputError) as info:
        update(Book.objects.all(), {"status": "lost"})
    assert str(info.value) == "Invalid value for 'status': Value 'lost' is not a valid choice."
    assert snapshot(Book) == before


@pytest.mark.django_db
def test_only_bulk_fields_can_be_written(shop: dict[str, Any]) -> None:
    before = snapshot(Book)
    with CaptureQueriesContext(connection) as queries, pytest.raises(BulkInputError) as info:
        update(Book.objects.all(), {"status": "archived", "title": "x"}, bulk_fields=["status"])
    assert info.value.field == "title"
    assert (
        str(info.value) == "'title' is not one of the bulk_fields (status); only bulk_fields can be written."
    )
    assert not [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert snapshot(Book) == before


@pytest.mark.django_db
def test_each_value_is_checked_once_for_all_rows(db: None) -> None:
    """The existence check of a new foreign key costs one query however many rows change."""
    authors = [Author.objects.create(name=name) for name in ("Old", "New")]

    def author_queries(count: int) -> int:
        Book.objects.all().delete()
        Book.objects.bulk_create(
            Book(title=f"B{i}", author=authors[0], price=Decimal("1.00")) for i in range(count)
        )
        with CaptureQueriesContext(connection) as queries:
            result = update(Book.objects.all(), {"author": authors[1].pk})
        assert (result.success, result.changed) == (True, count)
        return sum('"testapp_author"' in q["sql"] for q in queries.captured_queries)

    assert author_queries(3) == author_queries(60) == 1


@pytest.mark.django_db
def test_clean_value_returns_the_value_or_names_the_field() -> None:
    author = Author.objects.create(name="A")
    assert clean_value(Book, "default", "price", Decimal("3.50")) == Decimal("3.50")
    assert clean_value(Book, "default", "author", author.pk) == author.pk
    assert clean_value(Book, "default", "genre", None) is None  # blank=True: empty is allowed
    with pytest.raises(BulkInputError) as info:
        clean_value(Book, "default", "price", Decimal("-1"))
    assert (info.value.field, str(info.value)) == (
        "price",
        "Invalid value for 'price': Ensure this value is greater than or equal to 0.",
    )
    with pytest.raises(BulkInputError) as info:
        clean_value(Book, "default", "author", None)  # not blank: None is refused, not written
    assert info.value.field == "author"
    assert str(info.value).startswith("Invalid value for 'author': ")


def test_validation_messages_by_field() -> None:
    by_field = ValidationError({"price": ["Too dear.", "Too round."], NON_FIELD_ERRORS: ["No."]})
    assert validation_messages(by_field) == {"price": ["Too dear.", "Too round."], None: ["No."]}
    assert validation_messages(ValidationError(["One.", "Two."])) == {None: ["One.", "Two."]}
    assert validation_messages(ValidationError("Alone.")) == {None: ["Alone."]}


# ----- the rows of a batch ----------------------------------------------------------------------


@pytest.fixture
def books(db: None) -> list[Book]:
    author = Author.objects.create(name="A")
    Book.objects.bulk_create(
        Book(title=f"B{i}", author=author, price=Decimal("1.00"), status=status)
        for i, status in enumerate(["draft", "published", "draft"])
    )
    return list(Book.objects.order_by("pk"))


def test_load_rows_reads_old_values_and_pairs_them_with_the_new(books: list[Book]) -> None:
    plan = plan_for(Book, {"status": "published", "price": Decimal("1.00")})
    with CaptureQueriesContext(connection) as queries:
        rows = load_rows(plan, [books[2].pk, books[0].pk, books[1].pk])
    assert len(queries) == 1
    assert [row.pk for row in rows] == [b.pk for b in books]  # pk order
    assert [row.instance for row in rows] == [None, None, None]  # values only
    assert [row.old for row in rows] == [
        {"status": s, "price": Decimal("1.00")} for s in ("draft", "published", "draft")
    ]
    assert all(row.new == {"status": "published", "price": Decimal("1.00")} for row in rows)
    assert [row.changed for row in rows] == [True, False, True]
    assert rows[0].change() == RowChange(
        pk=books[0].pk,
        old={"status": "draft", "price": Decimal("1.00")},
        new={"status": "published", "price": Decimal("1.00")},
    )


def test_load_rows_skips_rows_deleted_since_the_selection_was_frozen(books: list[Book]) -> None:
    Book.objects.filter(pk=books[1].pk).delete()
    rows = load_rows(plan_for(Book, {"status": "archived"}), [b.pk for b in books])
    assert [row.pk for row in rows] == [books[0].pk, books[2].pk]


def test_load_rows_with_instances_for_save_and_clean(books: list[Book]) -> None:
    plan = plan_for(Book, {"author": books[0].author_id}, load=Load.INSTANCES)
    rows = load_rows(plan, [books[0].pk])
    assert isinstance(rows[0].instance, Book) and rows[0].instance.pk == books[0].pk
    assert rows[0].old == {"author": books[0].author_id}  # the attname: a key, not an object
    assert not rows[0].changed


def test_load_rows_includes_the_many_to_many_links_before_and_after(books: list[Book]) -> None:
    tags = [Tag.objects.create(name=f"t{i}") for i in range(2)]
    books[0].tags.set([tags[0]])
    books[1].tags.set([tags[0], tags[1]])
    edit = resolve_edit(Book, "tags", M2MChange(op="add", ids=(tags[1].pk,)), "default")
    plan = plan_for(Book, {}, m2m=(edit,))
    with CaptureQueriesContext(connection) as queries:
        rows = load_rows(plan, [b.pk for b in books])
    assert len(queries) == 2  # the rows, then the links of the one field
    assert [(row.old["tags"], row.new["tags"]) for row in rows] == [
        ((tags[0].pk,), (tags[0].pk, tags[1].pk)),
        ((tags[0].pk, tags[1].pk), (tags[0].pk, tags[1].pk)),
        ((), (tags[1].pk,)),
    ]
    assert [row.changed for row in rows] == [True, False, True]
    assert not any(row.plain_changed for row in rows)


# ----- the model's per-row checks -----------------------------------------------------------------


@pytest.mark.django_db
def test_model_check_errors_runs_the_model_clean_on_the_new_values() -> None:
    shelf = Shelf.objects.create(name="S", capacity=5, is_full=False)
    plan = plan_for(Shelf, {"capacity": 0}, load=Load.INSTANCES, checks=row_checks(Shelf, ["capacity"]))
    assert model_check_errors(plan, shelf) == {"capacity": ["A shelf with no capacity must be marked full."]}
    assert shelf.capacity == 0  # the values were applied to the instance
    full = Shelf.objects.create(name="F", capacity=5, is_full=True)
    assert model_check_errors(plan, full) == {}


@pytest.mark.django_db
def test_model_check_errors_finds_a_unique_value_taken_by_another_row() -> None:
    taken, mine = Asset.objects.create(code="A-1"), Asset.objects.create(code="A-2")
    checks = row_checks(Asset, ["code"])
    every = frozenset(f.name for f in Asset._meta.concrete_fields)
    plan = plan_for(Asset, {"code": taken.code}, checks=checks, exclude=every - checks.fields)
    assert model_check_errors(plan, mine) == {"code": ["Asset with this Code already exists."]}
    free = plan_for(Asset, {"code": "A-3"}, checks=checks, exclude=every - checks.fields)
    assert model_check_errors(free, Asset.objects.get(pk=mine.pk)) == {}


@pytest.mark.django_db
def test_model_check_errors_runs_nothing_the_checks_do_not_ask_for() -> None:
    shelf = Shelf.objects.create(name="S", capacity=5, is_full=False)
    plan = plan_for(Shelf, {"capacity": 0}, checks=RowChecks())
    assert model_check_errors(plan, shelf) == {}  # clean() not asked for: not run
