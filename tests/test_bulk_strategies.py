"""``powercrud.bulk.strategies``: set-based or per-object writes, the per-row checks an update
needs, and the ``auto_now`` fields a write refreshes."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, models
from django.db.models.signals import pre_save
from django.test.utils import CaptureQueriesContext, isolate_apps
from django.utils import timezone

from powercrud.bulk import BulkUpdateService, RowChecks, WriteStrategy, choose_strategy
from powercrud.bulk.strategies import (
    all_constraints,
    auto_now_fields,
    auto_now_values,
    constraint_fields,
    has_save_receivers,
    overrides_save,
    row_checks,
)
from tests.service_helpers import update
from tests.testapp.models import Asset, Author, Book, Shelf, Tag


@pytest.fixture
def receiver_on(request: pytest.FixtureRequest) -> Iterator[list[Any]]:
    """Connect a ``pre_save`` receiver for ``request.param`` (a model, or None for every model)
    for the test; yields the instances it was called with."""
    seen: list[Any] = []

    def record(sender: Any, instance: Any, **kwargs: Any) -> None:
        seen.append(instance)

    pre_save.connect(record, sender=request.param, weak=False, dispatch_uid="test-strategies")
    try:
        yield seen
    finally:
        pre_save.disconnect(sender=request.param, dispatch_uid="test-strategies")


# ----- choosing the write strategy ----------------------------------------------------------------


def test_strategy_choice() -> None:
    service = BulkUpdateService()
    assert service.choose_strategy(Book, ["status", "price"]) is WriteStrategy.SET_BASED
    assert service.choose_strategy(Shelf, ["capacity"]) is WriteStrategy.PER_OBJECT  # post_save

    with isolate_apps("tests.testapp"):

        class Saver(models.Model):  # noqa: DJ008
            name = models.CharField(max_length=10)
            links = models.ManyToManyField(Tag)

            class Meta:
                app_label = "testapp"

            def save(self, *args: Any, **kwargs: Any) -> None:
                super().save(*args, **kwargs)

        assert service.choose_strategy(Saver, ["name"]) is WriteStrategy.PER_OBJECT
        assert service.choose_strategy(Saver, ["links"]) is WriteStrategy.SET_BASED


def test_a_save_override_is_found_on_a_base_class_too() -> None:
    with isolate_apps("tests.testapp"):

        class Audited(models.Model):
            class Meta:
                abstract = True
                app_label = "testapp"

            def save(self, *args: Any, **kwargs: Any) -> None:
                super().save(*args, **kwargs)

        class Note(Audited):  # noqa: DJ008
            text = models.CharField(max_length=10)

            class Meta:
                app_label = "testapp"

        class Plain(models.Model):  # noqa: DJ008
            text = models.CharField(max_length=10)

            class Meta:
                app_label = "testapp"

        assert overrides_save(Note) and not overrides_save(Plain)
        assert choose_strategy(Note, ["text"]) is WriteStrategy.PER_OBJECT
        assert choose_strategy(Plain, ["text"]) is WriteStrategy.SET_BASED


def test_save_receivers_are_found_per_model() -> None:
    assert has_save_receivers(Shelf)  # tests/testapp/signals.py
    assert not has_save_receivers(Book)
    assert not has_save_receivers(Author)


@pytest.mark.parametrize("receiver_on", [Book], indirect=True)
def test_a_pre_save_receiver_for_the_model_forces_the_per_object_path(receiver_on: list[Any]) -> None:
    assert has_save_receivers(Book)
    assert choose_strategy(Book, ["status"]) is WriteStrategy.PER_OBJECT
    assert choose_strategy(Book, ["tags"]) is WriteStrategy.SET_BASED  # links alone never save()
    assert choose_strategy(Author, ["name"]) is WriteStrategy.SET_BASED


@pytest.mark.parametrize("receiver_on", [None], indirect=True)
def test_a_receiver_without_a_sender_forces_the_per_object_path_everywhere(receiver_on: list[Any]) -> None:
    assert choose_strategy(Book, ["status"]) is WriteStrategy.PER_OBJECT
    assert choose_strategy(Author, ["name"]) is WriteStrategy.PER_OBJECT


@pytest.mark.django_db
@pytest.mark.parametrize("receiver_on", [Book], indirect=True)
def test_the_per_object_path_runs_the_receiver_once_per_changed_row(receiver_on: list[Any]) -> None:
    author = Author.objects.create(name="A")
    Book.objects.bulk_create(
        Book(title=f"B{i}", author=author, price=Decimal("1.00"), status=s)
        for i, s in enumerate(["draft", "draft", "published"])
    )
    result = update(Book.objects.all(), {"status": "published"})
    assert (result.success, result.changed) == (True, 2)
    assert sorted(book.title for book in receiver_on) == ["B0", "B1"]  # not the unchanged B2
    assert {book.status for book in receiver_on} == {"published"}


@pytest.mark.django_db
def test_the_set_based_path_is_one_update_and_calls_no_save(monkeypatch: pytest.MonkeyPatch) -> None:
    author = Author.objects.create(name="A")
    Book.objects.bulk_create(Book(title=f"B{i}", author=author, price=Decimal("1.00")) for i in range(5))
    saved: list[Any] = []
    real_save = models.Model.save

    def spy(self: models.Model, *args: Any, **kwargs: Any) -> None:
        saved.append(self)
        real_save(self, *args, **kwargs)

    # Patched on Model itself, so Book still counts as not overriding save().
    monkeypatch.setattr(models.Model, "save", spy)
    assert choose_strategy(Book, ["status"]) is WriteStrategy.SET_BASED
    with CaptureQueriesContext(connection) as queries:
        result = update(Book.objects.all(), {"status": "archived"})
    assert (result.success, result.changed) == (True, 5)
    assert [q["sql"].split()[0] for q in queries.captured_queries].count("UPDATE") == 1
    assert saved == []
    assert set(Book.objects.values_list("status", flat=True)) == {"archived"}


# ----- per-row checks ---------------------------------------------------------------------------


def test_row_checks_follow_the_changed_fields() -> None:
    service = BulkUpdateService()
    assert not service.row_checks(Book, ["status", "price"]).needed
    assert service.row_checks(Asset, ["code"]).unique
    assert not service.row_checks(Asset, ["description"]).needed
    assert service.row_checks(Shelf, ["location"]).clean

    with isolate_apps("tests.testapp"):

        class Priced(models.Model):  # noqa: DJ008
            kind = models.CharField(max_length=10)
            price = models.IntegerField()
            note = models.CharField(max_length=10)

            class Meta:
                app_label = "testapp"
                constraints = [
                    models.CheckConstraint(
                        condition=models.Q(price__gte=0) | models.Q(kind="credit"), name="priced_sign"
                    )
                ]

        checks = service.row_checks(Priced, ["price"])
        assert [c.name for _, c in checks.constraints] == ["priced_sign"]
        assert checks.fields == {"price", "kind"}
        assert not service.row_checks(Priced, ["note"]).needed


def test_no_checks_means_nothing_to_load() -> None:
    checks = row_checks(Book, ["status"])
    assert checks == RowChecks(fields=frozenset({"status"}))
    assert not checks.needed
    assert RowChecks(unique=True).needed and RowChecks(clean=True).needed


def test_unique_together_loads_the_whole_group() -> None:
    with isolate_apps("tests.testapp"):

        class Seat(models.Model):  # noqa: DJ008
            row = models.CharField(max_length=2)
            number = models.IntegerField()
            colour = models.CharField(max_length=10)

            class Meta:
                app_label = "testapp"
                unique_together = [("row", "number")]

        checks = row_checks(Seat, ["number"])
        assert checks.unique and not checks.clean and checks.constraints == ()
        assert checks.fields == {"row", "number"}
        assert not row_checks(Seat, ["colour"]).needed


def test_constraint_fields_of_each_kind_of_constraint() -> None:
    check = models.CheckConstraint(condition=models.Q(price__gte=0) | models.Q(kind="x"), name="c")
    assert constraint_fields(check) == {"price", "kind"}
    unique = models.UniqueConstraint(fields=["code"], condition=models.Q(active=True), name="u")
    assert constraint_fields(unique) == {"code", "active"}
    functional = models.UniqueConstraint(models.functions.Lower("name"), name="f")
    assert constraint_fields(functional) == {"name"}

    class Opaque(models.constraints.BaseConstraint):
        pass

    assert constraint_fields(Opaque(name="o")) is None


def test_a_constraint_whose_fields_are_unknown_touches_every_field() -> None:
    class Opaque(models.constraints.BaseConstraint):
        def validate(self, *args: Any, **kwargs: Any) -> None:
            return None

    with isolate_apps("tests.testapp"):

        class Ledger(models.Model):  # noqa: DJ008
            a = models.IntegerField()
            b = models.IntegerField()

            class Meta:
                app_label = "testapp"
                constraints = [Opaque(name="opaque")]

        checks = row_checks(Ledger, ["a"])
        assert [c.name for _, c in checks.constraints] == ["opaque"]
        assert checks.fields == {"id", "a", "b"}


def test_constraints_of_a_concrete_parent_are_checked_on_the_child() -> None:
    with isolate_apps("tests.testapp"):

        class Account(models.Model):  # noqa: DJ008
            balance = models.IntegerField()

            class Meta:
                app_label = "testapp"
                constraints = [models.CheckConstraint(condition=models.Q(balance__gte=0), name="solvent")]

        class Savings(Account):  # noqa: DJ008
            rate = models.IntegerField()

            class Meta:
                app_label = "testapp"

        assert [(klass, c.name) for klass, c in all_constraints(Savings)] == [(Account, "solvent")]
        assert [c.name for _, c in row_checks(Savings, ["balance"]).constraints] == ["solvent"]
        assert not row_checks(Savings, ["rate"]).needed


# ----- auto_now ---------------------------------------------------------------------------------


def test_auto_now_fields_not_written_are_refreshed() -> None:
    with isolate_apps("tests.testapp"):

        class Stamped(models.Model):  # noqa: DJ008
            name = models.CharField(max_length=10)
            touched = models.DateTimeField(auto_now=True)
            day = models.DateField(auto_now=True)
            at = models.TimeField(auto_now=True)
            created = models.DateTimeField(auto_now_add=True)

            class Meta:
                app_label = "testapp"

        assert [f.name for f in auto_now_fields(Stamped, ["name"])] == ["touched", "day", "at"]
        assert [f.name for f in auto_now_fields(Stamped, ["name", "touched"])] == ["day", "at"]
        before = timezone.now()
        values = auto_now_values(auto_now_fields(Stamped, ["name"]))
        assert set(values) == {"touched", "day", "at"}
        assert before <= values["touched"] <= timezone.now()
        assert values["day"] == datetime.date.today()
        assert isinstance(values["at"], datetime.time)
    assert auto_now_fields(Book, ["status"]) == ()
