"""Row locks: one statement to take them, clear conflicts naming the task, nothing left behind."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext

from powercrud.jobs.locks import (
    LockConflict,
    acquire_locks,
    assert_queryset_unlocked,
    assert_unlocked,
    fence_request_runs,
    guard_rows,
    hold_selection,
    lock_key,
    locked_by,
    release_locks,
)
from powercrud.jobs.worker import locked_queryset
from powercrud.models import BulkTask, RowLock
from tests.async_helpers import held_elsewhere, make_books
from tests.testapp.models import Asset, Book, Tag

pytestmark = pytest.mark.django_db


def new_task(**kwargs: Any) -> BulkTask:
    return BulkTask.objects.create(kind="update", model_label="testapp.book", **kwargs)


def test_acquire_locks_every_row_in_one_insert() -> None:
    books = make_books(25)
    task = new_task()
    with CaptureQueriesContext(connection) as queries:
        count = acquire_locks(task, Book.objects.all())
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("INSERT")]
    assert count == 25
    assert len(inserts) == 1
    assert "SELECT" in inserts[0].upper()
    keys = set(RowLock.objects.filter(task=task).values_list("object_pk", flat=True))
    assert keys == {str(b.pk) for b in books}
    assert set(locked_queryset(task, Book).values_list("pk", flat=True)) == {b.pk for b in books}


def test_a_join_that_repeats_rows_takes_each_lock_once() -> None:
    books = make_books(3)
    tags = [Tag.objects.create(name="a"), Tag.objects.create(name="b")]
    for book in books:
        book.tags.set(tags)
    task = new_task()
    queryset = Book.objects.filter(tags__name__in=["a", "b"])  # each book twice
    assert queryset.count() == 6
    assert acquire_locks(task, queryset) == 3


def test_a_sliced_selection_locks_only_its_slice() -> None:
    make_books(10)
    task = new_task()
    assert acquire_locks(task, Book.objects.order_by("-pk")[:4]) == 4
    assert set(locked_queryset(task, Book).values_list("pk", flat=True)) == set(
        Book.objects.order_by("-pk")[:4].values_list("pk", flat=True)
    )


def test_overlapping_selection_conflicts_naming_the_task_and_leaves_nothing() -> None:
    books = make_books(10)
    first = new_task()
    acquire_locks(first, Book.objects.filter(pk__in=[b.pk for b in books[:5]]))
    second = new_task()
    with pytest.raises(LockConflict) as caught:
        acquire_locks(second, Book.objects.filter(pk__in=[b.pk for b in books[3:]]))
    assert caught.value.message == (
        f"2 of the selected books are being changed by bulk task #{first.pk} (queued). "
        "Try again when it finishes."
    )
    assert caught.value.tasks == (first,)
    assert not RowLock.objects.filter(task=second).exists()
    assert RowLock.objects.filter(task=first).count() == 5
    # The disjoint rest can still be locked.
    assert acquire_locks(second, Book.objects.filter(pk__in=[b.pk for b in books[5:]])) == 5


def test_conflict_inside_an_outer_transaction_keeps_that_transaction_usable() -> None:
    books = make_books(4)
    first = new_task()
    acquire_locks(first, Book.objects.filter(pk=books[0].pk))
    with transaction.atomic():
        second = new_task()
        with pytest.raises(LockConflict):
            acquire_locks(second, Book.objects.all())
        assert Book.objects.count() == 4  # the transaction still works
        assert not RowLock.objects.filter(task=second).exists()


def test_a_selection_check_reads_no_row_of_the_model_while_none_of_its_rows_is_locked() -> None:
    """Nearly every sync run: no run holds a row of the model, so the check asks only that,
    without reading the selection's keys (4-5 ms a 10,000-row selection on SQLite)."""
    books = make_books(3)
    other_model = new_task(status=BulkTask.Status.RUNNING)
    acquire_locks(other_model, Tag.objects.filter(pk__in=[Tag.objects.create(name="t").pk]))
    with CaptureQueriesContext(connection) as queries:
        assert_queryset_unlocked(Book.objects.all())
    assert len(queries) == 1
    assert Book._meta.db_table not in queries[0]["sql"]
    task = new_task(status=BulkTask.Status.RUNNING)
    acquire_locks(task, Book.objects.filter(pk=books[0].pk))
    assert_queryset_unlocked(Book.objects.filter(pk__in=[books[1].pk, books[2].pk]))  # others' rows
    with pytest.raises(LockConflict):
        assert_queryset_unlocked(Book.objects.all())


def test_form_edit_of_a_locked_row_gets_a_message_naming_the_task() -> None:
    books = make_books(3)
    task = new_task(status=BulkTask.Status.RUNNING)
    acquire_locks(task, Book.objects.filter(pk__in=[books[0].pk, books[1].pk]))
    assert locked_by(Book, books[0].pk) == task
    assert locked_by("testapp.book", str(books[1].pk)) == task
    assert locked_by(Book, books[2].pk) is None
    with pytest.raises(LockConflict) as caught:
        assert_unlocked("testapp.book", [books[0].pk])
    assert caught.value.message == (
        f"This book is being changed by bulk task #{task.pk} (running). Try again when it finishes."
    )
    with pytest.raises(LockConflict, match=r"^2 of the selected books are being changed"):
        assert_unlocked(Book, [b.pk for b in books])
    assert_unlocked(Book, [books[2].pk])
    assert_unlocked(Book, [])
    with pytest.raises(LockConflict):
        assert_queryset_unlocked(Book.objects.all())
    assert_queryset_unlocked(Book.objects.filter(pk=books[2].pk))
    with pytest.raises(LockConflict, match="bulk task"), guard_rows(Book, [books[1].pk]):
        pass
    with guard_rows(Book, [books[2].pk]):
        Book.objects.filter(pk=books[2].pk).update(title="edited")
    assert release_locks(task) == 2
    assert_unlocked(Book, [b.pk for b in books])


def test_release_is_one_delete() -> None:
    make_books(30)
    task = new_task()
    acquire_locks(task, Book.objects.all())
    with CaptureQueriesContext(connection) as queries:
        assert release_locks(task.pk) == 30
    assert len(queries.captured_queries) == 1


def test_uuid_primary_keys_lock_and_resolve() -> None:
    assets = [Asset.objects.create(code=f"A{i}") for i in range(3)]
    task = BulkTask.objects.create(kind="update", model_label="testapp.asset")
    assert acquire_locks(task, Asset.objects.all()) == 3
    # The key computed in Python is the one the database cast produced.
    stored = set(RowLock.objects.filter(task=task).values_list("object_pk", flat=True))
    assert stored == {lock_key(Asset, a.pk) for a in assets}
    assert locked_by(Asset, str(assets[0].pk)) == task
    assert set(locked_queryset(task, Asset)) == set(assets)


def test_empty_selection_locks_nothing() -> None:
    task = new_task()
    assert acquire_locks(task, Book.objects.none()) == 0
    assert acquire_locks(task, Book.objects.filter(pk=-1)) == 0


@pytest.mark.django_db(transaction=True)
def test_two_launch_transactions_at_once_exactly_one_gets_the_rows() -> None:
    """Real concurrent transactions (PostgreSQL): the second waits, then conflicts."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (SQLite serialises writers; see the sequential test)")
    make_books(200)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def launch(name: str) -> None:
        try:
            with transaction.atomic():
                task = new_task(payload={"name": name})
                barrier.wait()
                acquire_locks(task, Book.objects.all())
            outcomes.append("locked")
        except LockConflict as exc:
            outcomes.append(exc.message)
        finally:
            connection.close()

    threads = [threading.Thread(target=launch, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes)[1] == "locked"
    assert "being changed by bulk task" in sorted(outcomes)[0]
    assert RowLock.objects.values("task").distinct().count() == 1
    assert RowLock.objects.count() == 200


# --- bulk runs in the request -------------------------------------------------------------------


def test_hold_selection_refuses_rows_a_task_holds_naming_it() -> None:
    books = make_books(6)
    task = new_task()
    acquire_locks(task, Book.objects.filter(pk__in=[b.pk for b in books[:2]]))
    with pytest.raises(LockConflict) as caught, hold_selection(Book.objects.all()):
        pytest.fail("the body must not run")
    assert caught.value.message == (
        f"2 of the selected books are being changed by bulk task #{task.pk} (queued). "
        "Try again when it finishes."
    )
    with hold_selection(Book.objects.filter(pk__in=[b.pk for b in books[2:]])):
        assert transaction.get_connection().in_atomic_block


def _locked_elsewhere(model: Any, pks: list[Any]) -> set[Any]:
    """Which of rows ``pks`` another connection cannot lock right now."""
    found: set[Any] = set()

    def probe() -> None:
        try:
            for pk in pks:
                try:
                    with transaction.atomic():
                        list(model.objects.select_for_update(nowait=True).filter(pk=pk))
                except OperationalError:
                    found.add(pk)
        finally:
            connection.close()

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join(30)
    return found


@pytest.mark.django_db(transaction=True)
def test_hold_selection_locks_exactly_the_selected_rows_whatever_the_queryset() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (SQLite has no row locks)")
    books = make_books(8)
    pks = [b.pk for b in books]
    tag = Tag.objects.create(name="a")
    other = Tag.objects.create(name="b")
    for book in books[:3]:
        book.tags.set([tag, other])
    selections = {
        "a join that repeats rows": (Book.objects.filter(tags__name__in=["a", "b"]), pks[:3]),
        "distinct": (Book.objects.filter(tags__name__in=["a", "b"]).distinct(), pks[:3]),
        "a slice": (Book.objects.order_by("-pk")[:2], pks[-2:]),
        "a related filter": (Book.objects.filter(author__name="Async Author", pk__in=pks[4:6]), pks[4:6]),
    }
    for name, (queryset, expected) in selections.items():
        with hold_selection(queryset):
            assert _locked_elsewhere(Book, pks) == set(expected), name
            assert _locked_elsewhere(Tag, [tag.pk]) == set(), name  # joined tables are not locked
    assets = [Asset.objects.create(code=f"A-{i}") for i in range(3)]
    with hold_selection(Asset.objects.filter(pk=assets[1].pk)):
        assert _locked_elsewhere(Asset, [a.pk for a in assets]) == {assets[1].pk}
    assert _locked_elsewhere(Book, pks) == set()  # released with the transaction


@pytest.mark.django_db(transaction=True)
def test_a_launch_over_rows_a_sync_run_holds_conflicts_and_leaves_nothing() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (SQLite runs one writer at a time)")
    books = make_books(10)
    with held_elsewhere(lambda: hold_selection(Book.objects.filter(pk__in=[b.pk for b in books[:5]]))):
        overlapping = Book.objects.filter(pk__in=[b.pk for b in books[4:]])
        with (
            pytest.raises(LockConflict, match="being changed by someone else right now"),
            transaction.atomic(),
        ):
            acquire_locks(new_task(), overlapping)
            fence_request_runs(overlapping)
        assert not BulkTask.objects.exists() and not RowLock.objects.exists()
        with transaction.atomic():  # disjoint rows: no conflict
            task = new_task()
            acquire_locks(task, Book.objects.filter(pk__in=[b.pk for b in books[5:]]))
            fence_request_runs(Book.objects.filter(pk__in=[b.pk for b in books[5:]]))
        assert RowLock.objects.filter(task=task).count() == 5
