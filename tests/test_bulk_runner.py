"""``powercrud.bulk.runner``: the selection frozen once, batches that neither skip nor repeat a
row, and the two transaction modes (all-or-nothing, per-row) with their replays, driven with a
stand-in ``process`` that writes one ``Tag`` per row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from django.db import IntegrityError, InterfaceError, transaction

from powercrud.bulk.runner import (
    BatchOutcome,
    Isolation,
    RunOutcome,
    batches,
    capped_errors_note,
    check_context,
    freeze_pks,
    run_batches,
    write_alias,
)
from powercrud.bulk.types import RowError
from tests.service_helpers import context_for, update
from tests.testapp.models import Author, Book, Tag

pytestmark = pytest.mark.django_db

TAKEN = "taken"  # a Tag name that exists: writing it again is the database refusing a row


class Writer:
    """A ``process(batch, isolation)`` that writes ``Tag(name="row-<pk>")`` per row.

    Rows in ``fail`` are refused by the service (no write); rows in ``reject`` are refused by
    the database (a unique name already taken): without isolation that error escapes the
    batch, with isolation each row has its own savepoint and the bad row is reported.
    ``reject_only_without_isolation`` makes the database refuse a batch that is then fine row by
    row (as a deferred constraint can). ``calls`` records each (batch, isolation).
    """

    def __init__(self, fail: Sequence[int] = (), reject: Sequence[int] = (), **options: Any) -> None:
        self.fail, self.reject = set(fail), set(reject)
        self.reject_only_without_isolation = options.get("reject_only_without_isolation", False)
        self.calls: list[tuple[list[int], Isolation]] = []

    def __call__(self, batch: Sequence[int], isolation: Isolation) -> BatchOutcome:
        self.calls.append((list(batch), isolation))
        out = BatchOutcome()
        for pk in batch:
            if pk in self.fail:
                out.fail(pk, [RowError(pk=pk, field=None, messages=(f"Row {pk} refused.",))])
                continue
            rejected = pk in self.reject and (
                isolation is Isolation.NONE or not self.reject_only_without_isolation
            )
            name = TAKEN if rejected else f"row-{pk}"
            if isolation is Isolation.NONE:
                Tag.objects.create(name=name)
            else:
                try:
                    with transaction.atomic():
                        Tag.objects.create(name=name)
                except IntegrityError:
                    out.fail(pk, [RowError(pk=pk, field="name", messages=("Taken.",))])
                    continue
            out.succeeded += 1
            out.changed += 1
        return out


def run(
    writer: Writer, pks: Sequence[int], *, progress: list[Any] | None = None, **context: Any
) -> RunOutcome:
    """``run_batches`` over ``pks`` in batches of 4 (``context``: BulkContext fields)."""
    return run_batches(
        pks=pks,
        context=context_for(Tag, len(pks), **{"batch_size": 4, **context}),
        using="default",
        process=writer,
        retry_on=(IntegrityError,),
        describe_error=lambda exc: "The database refused the batch.",
        progress_callback=None if progress is None else lambda done, total: progress.append((done, total)),
    )


def written() -> list[int]:
    """The rows whose tag was committed, in order."""
    return sorted(
        int(name[4:]) for name in Tag.objects.filter(name__startswith="row-").values_list("name", flat=True)
    )


@pytest.fixture(autouse=True)
def taken(db: None) -> None:
    Tag.objects.create(name=TAKEN)


PKS = list(range(1, 11))  # batches of 4: [1-4], [5-8], [9-10]


# ----- freezing and batching ----------------------------------------------------------------------


def test_batches_are_consecutive_slices() -> None:
    assert [list(b) for b in batches(PKS, 4)] == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    assert list(batches([], 4)) == []


def test_freeze_pks_reads_the_selection_once_sorted_and_without_duplicates() -> None:
    author = Author.objects.create(name="A")
    books = Book.objects.bulk_create(Book(title=f"B{i}", author=author, price=1) for i in range(5))
    tags = list(Tag.objects.all()) + [Tag.objects.create(name="other")]
    for book in books[:2]:
        book.tags.set(tags)
    joined = Book.objects.filter(tags__in=tags).order_by("-title")  # each of two books twice
    assert freeze_pks(joined, "default") == sorted(b.pk for b in books[:2])
    newest_three = Book.objects.order_by("-pk")[:3]  # a sliced queryset keeps its own order to slice
    assert freeze_pks(newest_three, "default") == sorted(b.pk for b in books[2:])


@pytest.mark.parametrize("atomic", [True, False])
@pytest.mark.django_db
def test_editing_the_filtered_field_reaches_every_row(db: None, settings: Any, atomic: bool) -> None:
    # batches of 5 in all-or-nothing too (the set-based path's BULK_SET_BATCH_SIZE would be one)
    settings.POWERCRUD_SETTINGS = {**getattr(settings, "POWERCRUD_SETTINGS", {}), "BULK_SET_BATCH_SIZE": 1}
    author = Author.objects.create(name="A")
    Book.objects.bulk_create(Book(title=f"T{i}", author=author, price=1, status="draft") for i in range(23))
    Book.objects.bulk_create(Book(title=f"P{i}", author=author, price=1, status="archived") for i in range(3))
    progress: list[tuple[int, int]] = []
    result = update(
        Book.objects.filter(status="draft"),
        {"status": "published"},
        batch_size=5,
        progress=progress,
        atomic=atomic,
    )
    assert (result.success, result.success_records, result.changed) == (True, 23, 23)
    assert Book.objects.filter(status="published").count() == 23
    assert Book.objects.filter(status="archived").count() == 3
    assert progress == [(0, 23), (5, 23), (10, 23), (15, 23), (20, 23), (23, 23)]


@pytest.mark.django_db
def test_duplicate_rows_from_joins_are_written_once(shop: dict[str, Any]) -> None:
    tags = shop["tags"]
    selected = Book.objects.filter(tags__in=tags[:2])  # books[1] matches twice
    result = update(selected, {"pages": 7})
    assert (result.total, result.changed) == (2, 2)


# ----- per-row mode ---------------------------------------------------------------------------


def test_per_row_a_refused_row_fails_alone_and_the_rest_commit() -> None:
    writer = Writer(fail=[5])
    outcome = run(writer, PKS, atomic=False)
    assert (outcome.total, outcome.succeeded, outcome.failed, outcome.rolled_back) == (10, 9, 1, False)
    assert outcome.errors == [RowError(pk=5, field=None, messages=("Row 5 refused.",))]
    assert written() == [1, 2, 3, 4, 6, 7, 8, 9, 10]
    assert [isolation for _, isolation in writer.calls] == [Isolation.NONE] * 3  # no savepoints needed


def test_per_row_a_batch_the_database_rejects_is_replayed_row_by_row() -> None:
    writer = Writer(reject=[6])
    outcome = run(writer, PKS, atomic=False)
    assert writer.calls == [
        ([1, 2, 3, 4], Isolation.NONE),
        ([5, 6, 7, 8], Isolation.NONE),  # rolled back...
        ([5, 6, 7, 8], Isolation.ROW),  # ...and replayed with a savepoint per row
        ([9, 10], Isolation.NONE),
    ]
    assert (outcome.succeeded, outcome.failed) == (9, 1)
    assert [error.pk for error in outcome.errors] == [6]
    assert written() == [1, 2, 3, 4, 5, 7, 8, 9, 10]  # 5 once: the first attempt left nothing


def test_per_row_dry_run_writes_nothing_and_reports_what_would_happen() -> None:
    outcome = run(Writer(fail=[2]), PKS, atomic=False, dry_run=True)
    assert (outcome.succeeded, outcome.failed) == (9, 1)
    assert written() == []


# ----- all-or-nothing mode ------------------------------------------------------------------------


def test_all_or_nothing_a_refused_row_rolls_back_everything_and_lists_every_failure() -> None:
    writer = Writer(fail=[5, 10])
    outcome = run(writer, PKS, atomic=True)
    assert writer.calls == [
        ([1, 2, 3, 4], Isolation.NONE),
        ([5, 6, 7, 8], Isolation.NONE),
        ([9, 10], Isolation.BATCH),  # after a failure: checked behind savepoints, to list every row
    ]
    assert (outcome.succeeded, outcome.changed, outcome.failed, outcome.rolled_back) == (0, 0, 2, True)
    assert [error.pk for error in outcome.errors] == [5, 10]
    assert written() == []


def test_all_or_nothing_without_failures_commits_every_row_once() -> None:
    outcome = run(Writer(), PKS, atomic=True)
    assert (outcome.succeeded, outcome.changed, outcome.failed, outcome.rolled_back) == (10, 10, 0, False)
    assert written() == PKS


def test_all_or_nothing_a_batch_the_database_rejects_is_replayed_to_name_the_row() -> None:
    writer = Writer(reject=[7])
    progress: list[tuple[int, int]] = []
    outcome = run(writer, PKS, atomic=True, progress=progress)
    assert writer.calls == [
        ([1, 2, 3, 4], Isolation.NONE),
        ([5, 6, 7, 8], Isolation.NONE),  # the database refuses: the whole run is rolled back
        ([1, 2, 3, 4], Isolation.BATCH),  # and replayed with savepoints, to find the row
        ([5, 6, 7, 8], Isolation.BATCH),
        ([9, 10], Isolation.BATCH),
    ]
    assert (outcome.succeeded, outcome.failed, outcome.rolled_back) == (0, 1, True)
    assert outcome.errors == [RowError(pk=7, field="name", messages=("Taken.",))]
    assert written() == []
    assert progress == [(0, 10), (4, 10), (10, 10)]  # the replay reports no progress of its own


def test_a_large_first_pass_is_replayed_in_batches_of_the_contexts_size() -> None:
    writer = Writer(reject=[7])
    outcome = run_batches(
        pks=PKS,
        context=context_for(Tag, len(PKS), batch_size=4, atomic=True),
        using="default",
        process=writer,
        retry_on=(IntegrityError,),
        describe_error=str,
        first_batch_size=10,
    )
    assert writer.calls == [
        (PKS, Isolation.NONE),  # one statement's worth for the whole selection, refused
        ([1, 2, 3, 4], Isolation.BATCH),  # the replay: batch_size rows behind each savepoint
        ([5, 6, 7, 8], Isolation.BATCH),
        ([9, 10], Isolation.BATCH),
    ]
    assert (outcome.failed, outcome.rolled_back) == (1, True)
    assert outcome.errors == [RowError(pk=7, field="name", messages=("Taken.",))]
    assert written() == []


def test_all_or_nothing_a_rejection_no_row_explains_is_the_runs_error() -> None:
    outcome = run(Writer(reject=[3], reject_only_without_isolation=True), PKS, atomic=True)
    assert (outcome.succeeded, outcome.failed, outcome.rolled_back) == (0, 1, True)
    assert outcome.errors == [RowError(pk=None, field=None, messages=("The database refused the batch.",))]
    assert written() == []


def test_all_or_nothing_dry_run_rolls_back_a_run_without_failures() -> None:
    outcome = run(Writer(), PKS, atomic=True, dry_run=True)
    assert (outcome.succeeded, outcome.failed, outcome.rolled_back) == (10, 0, False)
    assert written() == []


@pytest.mark.parametrize("atomic", [True, False], ids=["all-or-nothing", "per-row"])
def test_an_error_of_the_run_itself_is_not_a_rows_error(atomic: bool) -> None:
    def lose_the_connection(batch: Sequence[int], isolation: Isolation) -> BatchOutcome:
        raise InterfaceError("connection already closed")

    with pytest.raises(InterfaceError):
        run_batches(
            pks=PKS,
            context=context_for(Tag, len(PKS), atomic=atomic),
            using="default",
            process=lose_the_connection,
            retry_on=(IntegrityError, InterfaceError),
            describe_error=str,
        )


# ----- counts, progress and checks ------------------------------------------------------------------


@pytest.mark.parametrize("atomic", [True, False], ids=["all-or-nothing", "per-row"])
def test_progress_is_reported_before_the_first_batch_and_after_each(atomic: bool) -> None:
    progress: list[tuple[int, int]] = []
    run(Writer(), PKS, atomic=atomic, progress=progress)
    assert progress == [(0, 10), (4, 10), (8, 10), (10, 10)]


def test_errors_past_max_errors_are_counted_not_listed() -> None:
    writer = Writer(fail=[1, 2, 3, 5, 6, 9, 10])
    outcome = run_batches(
        pks=PKS,
        context=context_for(Tag, len(PKS), atomic=False, batch_size=4),
        using="default",
        process=writer,
        retry_on=(IntegrityError,),
        describe_error=str,
        max_errors=3,
    )
    assert outcome.failed == 7
    assert [error.pk for error in outcome.errors] == [1, 2, 3]
    assert capped_errors_note(outcome) == " Only the first 3 errors are listed."
    assert capped_errors_note(run(Writer(fail=[1]), PKS, atomic=False)) == ""


def test_check_context_and_write_alias() -> None:
    check_context(Book, context_for(Book), "update")
    with pytest.raises(
        ValueError, match="^context.model_label is 'testapp.tag' but the queryset is of 'testapp.book'"
    ):
        check_context(Book, context_for(Tag), "update")
    with pytest.raises(ValueError, match="^context.operation is 'update'; this service performs 'delete'."):
        check_context(Book, context_for(Book), "delete")
    assert write_alias(Book.objects.all()) == "default"
    assert write_alias(Book.objects.using("other")) == "other"
