"""BulkUpdateService end to end: field types, signals and per-row validation, modes, hooks, dry
runs and query cost. Its parts are tested on their own in test_bulk_plan.py, test_bulk_m2m.py,
test_bulk_runner.py and test_bulk_strategies.py."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, models
from django.db.models import QuerySet
from django.test.utils import CaptureQueriesContext, isolate_apps

from powercrud.bulk import (
    BulkContext,
    BulkHookError,
    BulkInputError,
    BulkUpdateService,
    RowChange,
    RowChecks,
    RowError,
)
from tests.conftest import model_table
from tests.service_helpers import book_tags, context_for, snapshot, update
from tests.testapp.models import Asset, Author, Book, Shelf, ShelfEvent

BOOK_FIELDS = [
    "title",
    "status",
    "author",
    "genre",
    "price",
    "published_date",
    "pages",
    "is_available",
    "tags",
]


# --- field types --------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value", "attname", "expected"),
    [
        ("status", "archived", "status", "archived"),
        ("price", "12.50", "price", Decimal("12.50")),
        ("published_date", "2024-01-31", "published_date", datetime.date(2024, 1, 31)),
        ("published_date", None, "published_date", None),
        ("pages", 321, "pages", 321),
        ("pages", None, "pages", None),
        ("is_available", False, "is_available", False),
        ("title", "Renamed", "title", "Renamed"),
        ("genre", None, "genre_id", None),
    ],
)
def test_each_plain_field_type(
    shop: dict[str, Any], field: str, value: Any, attname: str, expected: Any
) -> None:
    selected = Book.objects.filter(status="draft")
    others_before = snapshot_of(Book.objects.exclude(status="draft"))
    result = update(selected, {field: value})
    assert result.success, result.errors
    assert result.total == result.success_records == result.changed == 8
    values = list(
        Book.objects.filter(pk__in=[b.pk for b in shop["books"][:8]]).values_list(attname, flat=True)
    )
    assert values == [expected] * 8
    assert snapshot_of(Book.objects.exclude(pk__in=[b.pk for b in shop["books"][:8]])) == others_before


def snapshot_of(queryset: QuerySet[Any]) -> list[dict[str, Any]]:
    return list(queryset.order_by("pk").values())


@pytest.mark.django_db
def test_foreign_keys(shop: dict[str, Any]) -> None:
    author = shop["authors"][1]
    genre = shop["genres"][1]
    result = update(Book.objects.all(), {"author": author.pk, "genre": genre.pk})
    assert result.success
    assert result.changed == 10  # every row's genre changes, half the authors do
    assert set(Book.objects.values_list("author_id", "genre_id")) == {(author.pk, genre.pk)}


@pytest.mark.django_db
def test_changed_counts_only_rows_that_differ(shop: dict[str, Any]) -> None:
    result = update(Book.objects.all(), {"status": "published"})
    assert (result.success_records, result.changed, result.total) == (10, 8, 10)
    assert result.message == "Updated 10 of 10 rows (8 changed)."


@pytest.mark.django_db
def test_context_must_match(shop: dict[str, Any]) -> None:
    service = BulkUpdateService()
    kwargs: dict[str, Any] = {
        "queryset": Book.objects.all(),
        "bulk_fields": ["status"],
        "fields_to_update": ["status"],
        "field_data": {"status": "draft"},
    }
    with pytest.raises(ValueError) as info:
        service.apply(**kwargs, context=context_for(Author))
    assert str(info.value) == (
        "context.model_label is 'testapp.author' but the queryset is of 'testapp.book'; build the "
        "context for the model being written."
    )
    with pytest.raises(ValueError) as info:
        service.apply(**kwargs, context=context_for(Book, operation="delete"))
    assert str(info.value) == "context.operation is 'delete'; this service performs 'update'."
    with pytest.raises(BulkInputError, match="^fields_to_update is empty"):
        service.apply(**{**kwargs, "fields_to_update": [], "field_data": {}}, context=context_for(Book))


# --- strategies, signals and per-row validation --------------------------------------------------


@pytest.fixture
def shelves(db: None) -> list[Shelf]:
    Shelf.objects.bulk_create(Shelf(name=f"Shelf {i}", capacity=10, is_full=i % 2 == 0) for i in range(6))
    return list(Shelf.objects.order_by("pk"))


@pytest.mark.django_db
def test_per_object_path_fires_signals(shelves: list[Shelf]) -> None:
    result = update(Shelf.objects.all(), {"location": "Hall"})
    assert (result.success, result.changed) == (True, 6)
    assert ShelfEvent.objects.count() == 6
    assert set(ShelfEvent.objects.values_list("message", flat=True)) == {f"Shelf {i} saved" for i in range(6)}
    assert set(Shelf.objects.values_list("location", flat=True)) == {"Hall"}
    result = update(Shelf.objects.all(), {"location": "Hall"})
    assert (result.success, result.changed) == (True, 0)
    assert ShelfEvent.objects.count() == 6  # unchanged rows are not saved


@pytest.mark.django_db
def test_set_based_path_does_not_load_rows(shop: dict[str, Any]) -> None:
    with CaptureQueriesContext(connection) as queries:
        update(Book.objects.all(), {"status": "archived", "price": "9.99"})
    selects = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(selects) == 2  # the selection's count (test helper) and its frozen pks
    assert len(updates) == 1


@pytest.mark.parametrize(
    ("overrides", "values", "batches"),
    [
        ({}, {"status": "archived"}, 1),  # sync, all-or-nothing, set-based: BULK_SET_BATCH_SIZE rows
        ({"atomic": False}, {"status": "archived"}, 4),  # per-row mode: a transaction per batch
        ({"mode": "async"}, {"status": "archived"}, 4),  # a worker: progress and cancel per batch
        ({"dry_run": True}, {"status": "archived"}, 4),  # a check reads every batch
    ],
    ids=["sync-set-based", "per-row", "async", "check"],
)
@pytest.mark.django_db
def test_only_a_sync_set_based_run_writes_bulk_set_batch_size_rows_a_statement(
    shop: dict[str, Any], settings: Any, overrides: dict[str, Any], values: dict[str, Any], batches: int
) -> None:
    settings.POWERCRUD_SETTINGS = {**getattr(settings, "POWERCRUD_SETTINGS", {}), "BULK_SET_BATCH_SIZE": 50}
    progress: list[tuple[int, int]] = []
    with CaptureQueriesContext(connection) as queries:
        result = update(Book.objects.all(), values, batch_size=3, progress=progress, **overrides)
    assert (result.success, result.total) == (True, 10)
    assert len(progress) == batches + 1  # (0, 10), then one report per batch
    if "dry_run" not in overrides:
        updates = [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
        assert len(updates) == batches
        assert Book.objects.filter(status="archived").count() == 10


@pytest.mark.parametrize("atomic", [True, False])
@pytest.mark.django_db
def test_model_clean_fails_rows(shelves: list[Shelf], atomic: bool) -> None:
    before = snapshot(Shelf)
    result = update(Shelf.objects.all(), {"capacity": 0}, atomic=atomic)
    not_full = [s.pk for s in shelves if not s.is_full]
    assert not result.success
    assert result.errors == tuple(
        RowError(pk=pk, field="capacity", messages=("A shelf with no capacity must be marked full.",))
        for pk in not_full
    )
    if atomic:
        assert snapshot(Shelf) == before
        assert (result.success_records, result.changed) == (0, 0)
        assert result.message == "3 of 6 rows failed, so nothing was saved (all-or-nothing)."
    else:
        assert dict(Shelf.objects.values_list("pk", "capacity")) == {
            s.pk: 10 if s.pk in not_full else 0 for s in shelves
        }
        assert (result.success_records, result.changed) == (3, 3)
        assert ShelfEvent.objects.count() == 3
        assert result.message == "3 of 6 rows failed; updated 3 (3 changed)."


@pytest.mark.django_db
def test_per_object_query_cost_matches_a_plain_save_loop(db: None) -> None:
    Shelf.objects.bulk_create(Shelf(name=f"S{i}", capacity=5, is_full=True) for i in range(40))
    with CaptureQueriesContext(connection) as ours:
        update(Shelf.objects.all(), {"capacity": 6, "location": "Annex"})
    with CaptureQueriesContext(connection) as plain:
        for shelf in Shelf.objects.all():
            shelf.capacity, shelf.location = 7, "Attic"
            shelf.full_clean()
            shelf.save()
    assert len(ours) <= len(plain) + 6


# --- modes and database errors ------------------------------------------------------------------


class FailLastRow(BulkUpdateService):
    def __init__(self, pk: Any) -> None:
        self.pk = pk

    def validate_row(
        self, instance: models.Model, new_values: Mapping[str, Any], context: BulkContext
    ) -> None:
        if instance.pk == self.pk:
            raise ValidationError({"price": "This one is wrong."})


@pytest.mark.django_db
def test_all_or_nothing_failure_on_last_row_writes_nothing(shop: dict[str, Any]) -> None:
    before, links = snapshot(Book), book_tags()
    last = shop["books"][-1].pk
    result = update(
        Book.objects.all(),
        {"price": "1.00", "status": "archived", "tags": {"op": "add", "ids": [shop["tags"][2].pk]}},
        service=FailLastRow(last),
        batch_size=3,
    )
    assert not result.success
    assert result.errors == (RowError(pk=last, field="price", messages=("This one is wrong.",)),)
    assert (result.success_records, result.changed, result.total) == (0, 0, 10)
    assert snapshot(Book) == before
    assert book_tags() == links


@pytest.mark.django_db
def test_per_row_mode_commits_valid_rows(shop: dict[str, Any]) -> None:
    last = shop["books"][-1].pk
    result = update(
        Book.objects.all(), {"price": "1.00"}, service=FailLastRow(last), atomic=False, batch_size=4
    )
    assert not result.success
    assert result.errors == (RowError(pk=last, field="price", messages=("This one is wrong.",)),)
    assert (result.success_records, result.changed) == (9, 9)
    prices = dict(Book.objects.values_list("pk", "price"))
    assert prices.pop(last) == Decimal("19.00")
    assert set(prices.values()) == {Decimal("1.00")}


@pytest.fixture
def assets(db: None) -> list[Asset]:
    Asset.objects.bulk_create(Asset(code=f"A-{i}") for i in range(4))
    return list(Asset.objects.order_by("pk"))


@pytest.mark.django_db
def test_uuid_primary_keys(assets: list[Asset]) -> None:
    result = update(Asset.objects.all(), {"description": "Checked", "in_service": False}, batch_size=3)
    assert (result.success, result.changed) == (True, 4)
    assert set(Asset.objects.values_list("description", "in_service")) == {("Checked", False)}


@pytest.mark.django_db
def test_unique_conflict_with_a_row_outside_the_selection(assets: list[Asset]) -> None:
    first, other = assets[0], assets[1]
    result = update(Asset.objects.filter(pk=first.pk), {"code": other.code})
    assert not result.success
    assert result.errors == (
        RowError(pk=str(first.pk), field="code", messages=("Asset with this Code already exists.",)),
    )
    assert Asset.objects.get(pk=first.pk).code == first.code


@pytest.mark.django_db
def test_database_error_is_isolated_to_its_rows_in_per_row_mode(assets: list[Asset]) -> None:
    selected = Asset.objects.filter(pk__in=[a.pk for a in assets[:3]])
    result = update(selected, {"code": "SAME"}, atomic=False)
    assert not result.success
    assert (result.success_records, result.changed) == (1, 1)
    assert [e.pk for e in result.errors] == [str(a.pk) for a in assets[1:3]]
    for error in result.errors:  # the unique column named by the database, in Django's words
        assert (error.field, error.messages) == ("code", ("Asset with this Code already exists.",))
    assert list(Asset.objects.order_by("pk").values_list("code", flat=True)) == [
        "SAME",
        *(a.code for a in assets[1:]),
    ]


@pytest.mark.django_db
def test_database_error_in_all_or_nothing_lists_rows_and_writes_nothing(assets: list[Asset]) -> None:
    before = snapshot(Asset)
    result = update(Asset.objects.all(), {"code": "SAME"})
    assert not result.success
    assert [e.pk for e in result.errors] == [str(a.pk) for a in assets[1:]]
    assert snapshot(Asset) == before


# --- hooks --------------------------------------------------------------------------------------


class Recorder(BulkUpdateService):
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def validate_row(
        self, instance: models.Model, new_values: Mapping[str, Any], context: BulkContext
    ) -> None:
        self.calls.append(("validate_row", (instance.pk, instance.price, dict(new_values))))  # type: ignore[attr-defined]

    def before_batch(self, changes: Sequence[RowChange], context: BulkContext) -> None:
        self.calls.append(("before", list(changes)))

    def after_batch(self, changes: Sequence[RowChange], context: BulkContext) -> None:
        self.calls.append(("after", list(changes)))


@pytest.mark.django_db
def test_hooks_receive_old_and_new_paired_by_row(shop: dict[str, Any]) -> None:
    books, tags = shop["books"], shop["tags"]
    recorder = Recorder()
    selected = Book.objects.filter(pk__in=[b.pk for b in books[:3]])
    result = update(
        selected,
        {"price": "50.00", "tags": {"op": "add", "ids": [tags[1].pk]}},
        service=recorder,
        batch_size=2,
    )
    assert result.success
    expected = [
        RowChange(
            pk=books[0].pk,
            old={"price": Decimal("10.00"), "tags": (tags[0].pk,)},
            new={"price": Decimal("50.00"), "tags": (tags[0].pk, tags[1].pk)},
        ),
        RowChange(
            pk=books[1].pk,
            old={"price": Decimal("11.00"), "tags": (tags[0].pk, tags[1].pk)},
            new={"price": Decimal("50.00"), "tags": (tags[0].pk, tags[1].pk)},
        ),
        RowChange(
            pk=books[2].pk,
            old={"price": Decimal("12.00"), "tags": ()},
            new={"price": Decimal("50.00"), "tags": (tags[1].pk,)},
        ),
    ]
    assert recorder.calls == [
        ("validate_row", (books[0].pk, Decimal("10.00"), dict(expected[0].new))),
        ("validate_row", (books[1].pk, Decimal("11.00"), dict(expected[1].new))),
        ("before", expected[:2]),
        ("after", expected[:2]),
        ("validate_row", (books[2].pk, Decimal("12.00"), dict(expected[2].new))),
        ("before", expected[2:]),
        ("after", expected[2:]),
    ]
    assert list(result.examples) == expected


class RejectInBeforeBatch(BulkUpdateService):
    def __init__(self, pk: Any) -> None:
        self.pk = pk
        self.after: list[Any] = []

    def before_batch(self, changes: Sequence[RowChange], context: BulkContext) -> None:
        if any(change.pk == self.pk for change in changes):
            raise BulkHookError([RowError(pk=self.pk, field="status", messages=("Held back.",))])

    def after_batch(self, changes: Sequence[RowChange], context: BulkContext) -> None:
        self.after += [change.pk for change in changes]


@pytest.mark.parametrize("atomic", [True, False])
@pytest.mark.django_db
def test_before_batch_can_fail_rows(shop: dict[str, Any], atomic: bool) -> None:
    before = snapshot(Book)
    held = shop["books"][2].pk
    service = RejectInBeforeBatch(held)
    result = update(Book.objects.all(), {"status": "archived"}, service=service, atomic=atomic, batch_size=4)
    assert result.errors == (RowError(pk=held, field="status", messages=("Held back.",)),)
    if atomic:
        assert snapshot(Book) == before
    else:
        assert set(Book.objects.filter(status="archived").values_list("pk", flat=True)) == {
            b.pk for b in shop["books"] if b.pk != held
        }
        assert held not in service.after and len(service.after) == 9


@pytest.mark.django_db
def test_before_batch_validation_error_fails_the_whole_batch(shop: dict[str, Any]) -> None:
    class Refuse(BulkUpdateService):
        def before_batch(self, changes: Sequence[RowChange], context: BulkContext) -> None:
            raise ValidationError("Not today.")

    result = update(Book.objects.all(), {"pages": 5}, service=Refuse(), atomic=False, batch_size=4)
    assert result.success_records == 0
    assert result.failed_records == 10
    assert {e.messages for e in result.errors} == {("Not today.",)}


# --- dry run ------------------------------------------------------------------------------------


@pytest.mark.parametrize("atomic", [True, False])
@pytest.mark.django_db
def test_dry_run_writes_nothing_and_predicts_the_real_run(shelves: list[Shelf], atomic: bool) -> None:
    before = snapshot(Shelf)
    check = update(
        Shelf.objects.all(),
        {"capacity": 0, "location": "Basement"},
        dry_run=True,
        atomic=atomic,
        batch_size=4,
    )
    assert snapshot(Shelf) == before
    assert ShelfEvent.objects.count() == 0
    assert check.dry_run
    real = update(Shelf.objects.all(), {"capacity": 0, "location": "Basement"}, atomic=atomic, batch_size=4)
    assert not real.dry_run
    assert check.errors == real.errors and len(real.errors) == 3
    assert (check.success, check.success_records, check.changed, check.total) == (
        real.success,
        real.success_records,
        real.changed,
        real.total,
    )
    assert check.message.startswith("Check only, nothing was saved: 3 of 6 rows would fail")


@pytest.mark.django_db
def test_dry_run_reports_changes_and_examples(shop: dict[str, Any]) -> None:
    before = snapshot(Book)
    result = update(Book.objects.all(), {"status": "published"}, dry_run=True)
    assert snapshot(Book) == before
    assert (result.success, result.changed, result.success_records) == (True, 8, 10)
    assert len(result.examples) == 5
    assert result.examples[0] == RowChange(
        pk=shop["books"][0].pk, old={"status": "draft"}, new={"status": "published"}
    )
    assert result.message == "Check only, nothing was saved: 10 rows checked; 8 would change."


@pytest.mark.django_db
def test_dry_run_runs_the_before_hooks_only(shop: dict[str, Any]) -> None:
    recorder = Recorder()
    result = update(
        Book.objects.filter(pk=shop["books"][0].pk), {"price": "1.00"}, service=recorder, dry_run=True
    )
    assert result.changed == 1
    assert [name for name, _ in recorder.calls] == ["validate_row", "before"]


@pytest.mark.django_db
def test_dry_run_predicts_database_errors(assets: list[Asset]) -> None:
    before = snapshot(Asset)
    check = update(Asset.objects.all(), {"code": "SAME"}, dry_run=True, atomic=False)
    assert snapshot(Asset) == before
    real = update(Asset.objects.all(), {"code": "SAME"}, atomic=False)
    assert check.errors == real.errors and len(check.errors) == 3


# --- selection freezing, batching, progress -----------------------------------------------------


@pytest.mark.django_db
def test_query_budget_for_ten_thousand_rows(db: None) -> None:
    author = Author.objects.create(name="Bulk")
    n = 10_000
    Book.objects.bulk_create(
        (Book(title=f"B{i}", author=author, price=Decimal("1.00")) for i in range(n)), batch_size=2000
    )
    queryset = Book.objects.all()
    context = context_for(Book, n)
    with CaptureQueriesContext(connection) as queries:
        result = BulkUpdateService().apply(
            queryset=queryset,
            bulk_fields=["status", "price"],
            fields_to_update=["status", "price"],
            field_data={"status": "published", "price": "2.50"},
            context=context,
        )
    assert (result.success, result.changed) == (True, n)
    assert len(queries) <= 20 + n // 1000
    assert Book.objects.filter(status="published", price=Decimal("2.50")).count() == n


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field_data", "changed"),
    [
        ({"price": "12.00"}, 9),  # Book 02 already costs 12.00
        ({"price": "12.0"}, 9),  # the same amount written differently
        ({"published_date": "2020-01-01"}, 0),
        ({"genre": None}, 10),
        ({"is_available": True, "pages": 100}, 0),
    ],
)
def test_rows_already_holding_the_value_are_not_changed(
    shop: dict[str, Any], field_data: dict[str, Any], changed: int
) -> None:
    for dry_run in (True, False):  # the read path and the fast path agree
        result = update(Book.objects.all(), field_data, dry_run=dry_run)
        assert (result.success, result.success_records, result.changed) == (True, 10, changed)


# --- a model with a check constraint and an auto_now field ---------------------------------------


@pytest.fixture
def gadget_model(transactional_db: None) -> Any:
    with isolate_apps("tests.testapp"):

        class Gadget(models.Model):  # noqa: DJ008
            kind = models.CharField(max_length=10, default="debit")
            amount = models.IntegerField(default=0)
            note = models.CharField(max_length=20, blank=True)
            touched = models.DateTimeField(auto_now=True)

            class Meta:
                app_label = "testapp"
                constraints = [
                    models.CheckConstraint(
                        condition=models.Q(amount__gte=0) | models.Q(kind="credit"),
                        name="gadget_sign",
                        violation_error_message="Only credits can go below zero.",
                    )
                ]

    with model_table(Gadget):
        yield Gadget


def test_constraints_on_changed_fields_are_checked_per_row(gadget_model: Any) -> None:
    debit = gadget_model.objects.create(kind="debit", amount=5)
    credit = gadget_model.objects.create(kind="credit", amount=5)
    result = update(gadget_model.objects.all(), {"amount": -1}, atomic=False)
    assert result.errors == (
        RowError(pk=debit.pk, field=None, messages=("Only credits can go below zero.",)),
    )
    assert dict(gadget_model.objects.values_list("pk", "amount")) == {debit.pk: 5, credit.pk: -1}
    result = update(gadget_model.objects.all(), {"note": "checked"})  # does not touch the constraint
    assert (result.success, result.changed) == (True, 2)


def test_auto_now_fields_are_refreshed_on_both_paths(gadget_model: Any) -> None:
    first = gadget_model.objects.create(note="a")
    second = gadget_model.objects.create(note="b")
    gadget_model.objects.update(touched=datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC))
    result = update(gadget_model.objects.filter(pk=first.pk), {"note": "fast"})  # set-based, no reads
    assert result.success
    touched = dict(gadget_model.objects.values_list("pk", "touched"))
    assert touched[first.pk].year > 2000 and touched[second.pk].year == 2000
    result = update(gadget_model.objects.filter(pk=second.pk), {"amount": 3})  # per-row checks
    assert result.success
    assert gadget_model.objects.get(pk=second.pk).touched.year > 2000


class DatabaseOnlyConstraint(BulkUpdateService):
    """Pretend the model's constraint exists only in the database: nothing checks it first."""

    def row_checks(self, model: type[models.Model], fields: Sequence[str]) -> RowChecks:
        return RowChecks()


@pytest.mark.parametrize("atomic", [True, False])
def test_database_errors_on_the_fast_path_name_exactly_the_bad_rows(gadget_model: Any, atomic: bool) -> None:
    gadget_model.objects.bulk_create(
        gadget_model(kind="debit" if i % 3 == 0 else "credit", amount=1) for i in range(7)
    )
    debits = list(gadget_model.objects.filter(kind="debit").order_by("pk").values_list("pk", flat=True))
    before = snapshot(gadget_model)
    service = DatabaseOnlyConstraint()
    check = update(
        gadget_model.objects.all(), {"amount": -2}, service=service, atomic=atomic, batch_size=2, dry_run=True
    )
    assert snapshot(gadget_model) == before
    with CaptureQueriesContext(connection) as queries:
        result = update(
            gadget_model.objects.all(), {"amount": -2}, service=service, atomic=atomic, batch_size=2
        )
    reads = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    assert not [sql for sql in reads if '"amount"' in sql.split("FROM")[0]]  # no rows read: fast path
    assert [e.pk for e in result.errors] == debits
    # caught by the database, told in the constraint's own words, as the Python check says it
    assert {e.messages for e in result.errors} == {("Only credits can go below zero.",)}
    assert check.errors == result.errors
    amounts = dict(gadget_model.objects.values_list("pk", "amount"))
    if atomic:
        assert snapshot(gadget_model) == before
        assert result.success_records == 0
    else:
        assert amounts == {pk: 1 if pk in debits else -2 for pk in amounts}
        assert result.success_records == 7 - len(debits)
