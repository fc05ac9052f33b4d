"""The worker entry point: honest outcomes, run-once delivery, cancel, cleanup, live progress
(the progress writer and live store on their own: test_progress.py).

Tests call ``powercrud.jobs.worker.run_bulk_task`` (the django-q2 job function) directly, one
goes through django-q2's own worker path (``sync=True``); test_worker_process.py runs a
real ``qcluster``.
"""

from __future__ import annotations

import datetime
import threading
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.utils import timezone

from powercrud.bulk.types import BulkContext, BulkResult
from powercrud.bulk_persistence import DefaultBulkUpdatePersistenceBackend, run_bulk_update
from powercrud.jobs import progress
from powercrud.jobs.locks import LockConflict, assert_unlocked
from powercrud.jobs.monitor import fail_stale_tasks, request_cancel
from powercrud.jobs.worker import run_bulk_task
from powercrud.models import BulkTask, RowLock
from tests.async_helpers import SEEN, freeze_now, gate, launch_books, launch_request, make_books, wait_for
from tests.testapp.models import Author, Book, Shelf, Tag

pytestmark = pytest.mark.django_db

H = "tests.async_helpers"


def launched(*args: Any, **kwargs: Any) -> BulkTask:
    """Launch (the enqueue runs at commit in transactional tests, else not at all)."""
    return launch_books(*args, **kwargs)


def statuses() -> set[str]:
    return set(Book.objects.values_list("status", flat=True))


def test_success_end_to_end(admin_user: Any) -> None:
    make_books(25)
    SEEN.clear()
    task = launched(Book.objects.all(), user=admin_user, backend=f"{H}.RecordingBackend")
    assert run_bulk_task(task.pk) == "succeeded"
    task.refresh_from_db()
    assert task.status == BulkTask.Status.SUCCEEDED
    assert (task.done, task.total, task.success_count, task.failure_count) == (25, 25, 25, 0)
    assert task.message == "Updated 25 of 25 rows (25 changed)."
    assert task.attempts == 1
    assert task.started_at <= task.finished_at
    assert task.errors == []
    assert task.result["success"] is True and task.result["success_records"] == 25
    assert task.percent == 100 and task.is_finished
    assert statuses() == {"archived"}
    assert not RowLock.objects.exists()
    (context,) = SEEN
    assert context.mode == "async"
    assert context.task_name == task.task_name == f"powercrud-bulk-{task.pk}"
    assert context.user_id == admin_user.pk
    assert (context.model_label, context.selection_size, context.batch_size) == ("testapp.book", 25, 10)
    assert context.extra == {"task_id": task.pk, "view_name": "books"}


def test_the_scope_is_the_locked_rows_only() -> None:
    make_books(10)
    task = freeze_now(launched(Book.objects.filter(title__endswith="1")))  # 1 row locked: "Book 00001"
    Book.objects.update(title="Book 00001")  # the filter would now match every row
    run_bulk_task(task.pk)
    assert Book.objects.filter(status="archived").count() == 1


def test_success_false_ends_failed_with_row_errors() -> None:
    books = make_books(5)
    task = launched(Book.objects.all(), backend=f"{H}.RefusingBackend")
    assert run_bulk_task(task.pk) == "failed"
    task.refresh_from_db()
    assert task.status == BulkTask.Status.FAILED
    assert task.errors == [
        {"pk": books[0].pk, "field": "status", "messages": ["Not allowed <today>."]},
        {"pk": books[1].pk, "field": "status", "messages": ["Not allowed <today>."]},
    ]
    assert task.failure_count == 2 and task.success_count == 0
    assert task.message == "2 of 2 rows failed, so nothing was saved (all-or-nothing)."
    assert not RowLock.objects.exists()


def test_row_validation_failure_in_the_real_service_writes_nothing() -> None:
    shelves = [Shelf.objects.create(name=f"S{i}", capacity=10, is_full=i == 0) for i in range(4)]

    task = launch_request(
        Shelf.objects.all(),
        operation="update",
        user=None,
        fields_to_update=["capacity"],
        field_data={"capacity": 0},
        bulk_fields=["capacity"],
        batch_size=2,
    )
    run_bulk_task(task.pk)
    task.refresh_from_db()
    assert task.status == BulkTask.Status.FAILED
    assert {e["pk"] for e in task.errors} == {s.pk for s in shelves[1:]}
    assert all(e["field"] == "capacity" for e in task.errors)
    assert set(Shelf.objects.values_list("capacity", flat=True)) == {10}
    assert not RowLock.objects.exists()


def test_an_exception_fails_readably_writes_nothing_and_frees_the_rows(caplog: Any) -> None:
    make_books(6)
    task = launched(Book.objects.all(), backend=f"{H}.ExplodingBackend")
    assert run_bulk_task(task.pk) == "failed"
    task.refresh_from_db()
    assert task.status == BulkTask.Status.FAILED
    assert task.message == (
        "The task stopped because of an unexpected error; nothing was saved. "
        f"The details are in the worker log under powercrud-bulk-{task.pk}."
    )
    assert "hunter2" not in task.message and task.result is None
    assert "hunter2" in caplog.text  # the traceback is in the log
    assert statuses() == {"draft"}  # the backend's writes were rolled back
    assert not RowLock.objects.exists()


def test_django_q2_timeout_fails_the_task_and_writes_nothing() -> None:
    make_books(4)
    task = launched(Book.objects.all(), backend=f"{H}.TimingOutBackend")
    assert run_bulk_task(task.pk) == "failed"
    task.refresh_from_db()
    assert task.message == (
        "The task ran longer than the worker's time limit (Q_CLUSTER 'timeout') and was stopped; "
        "nothing was saved. Raise the timeout or select fewer rows."
    )
    assert statuses() == {"draft"}
    assert not RowLock.objects.exists()


def test_a_backend_path_that_does_not_import_fails_readably() -> None:
    make_books(3)
    task = launched(Book.objects.all())
    BulkTask.objects.filter(pk=task.pk).update(payload={**task.payload, "backend_path": "tests.gone.Backend"})
    assert run_bulk_task(task.pk) == "failed"
    task.refresh_from_db()
    assert task.message.startswith(
        "The task could not start, so nothing was saved: Bulk update backend path 'tests.gone.Backend': "
        "module 'tests.gone' could not be imported"
    )
    assert not RowLock.objects.exists()


def test_bad_field_data_fails_with_the_input_error() -> None:
    make_books(3)
    task = launched(Book.objects.all(), field_data={"status": "no-such-status"})
    run_bulk_task(task.pk)
    task.refresh_from_db()
    assert task.status == BulkTask.Status.FAILED
    assert "status" in task.message and "Nothing was saved." in task.message
    assert statuses() == {"draft"}


def test_duplicate_delivery_runs_once() -> None:
    books = make_books(4)
    tag = Tag.objects.create(name="new")
    task = launched(Book.objects.all(), fields=["tags"], field_data={"tags": {"op": "add", "ids": [tag.pk]}})
    assert run_bulk_task(task.pk) == "succeeded"
    # Someone removes a tag after the run; a second delivery must not add it back.
    books[0].tags.remove(tag)
    assert run_bulk_task(task.pk) == "skipped"
    task.refresh_from_db()
    assert task.attempts == 1
    assert Book.tags.through.objects.count() == 3
    assert BulkTask.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_delivery_runs_once() -> None:
    """Two workers get the same job at the same moment: one runs, one skips (PostgreSQL)."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL for truly concurrent transactions")
    make_books(300)
    tag = Tag.objects.create(name="new")
    task = launched(
        Book.objects.all(),
        fields=["tags"],
        field_data={"tags": {"op": "add", "ids": [tag.pk]}},
        batch_size=50,
    )
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def deliver() -> None:
        try:
            barrier.wait()
            outcomes.append(run_bulk_task(task.pk))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["skipped", "succeeded"]
    assert Book.tags.through.objects.count() == 300
    task.refresh_from_db()
    assert task.attempts == 1 and task.success_count == 300
    assert not RowLock.objects.exists()


def test_django_q2_worker_path(settings: Any) -> None:
    """django-q2's own worker code (``sync=True``) calls the job with the task id."""
    from django_q.models import Task
    from django_q.tasks import async_task

    make_books(5)
    task = launched(Book.objects.all())
    async_task("powercrud.jobs.worker.run_bulk_task", task.pk, task_name=task.task_name, sync=True)
    task.refresh_from_db()
    assert task.status == BulkTask.Status.SUCCEEDED
    q_task = Task.objects.get(name=task.task_name)
    assert q_task.success and q_task.result == "succeeded"


# --- cancel -------------------------------------------------------------------------------------


def test_cancel_queued_never_runs() -> None:
    make_books(5)
    task = launched(Book.objects.all())
    cancelled = request_cancel(task)
    assert cancelled.status == BulkTask.Status.CANCELLED
    assert cancelled.message == "Cancelled before it started; nothing was saved."
    assert not RowLock.objects.exists()
    assert run_bulk_task(task.pk) == "skipped"
    assert statuses() == {"draft"}
    # A finished task is left as it is.
    assert request_cancel(task.pk).status == BulkTask.Status.CANCELLED


def run_in_thread(task_id: int, outcome: list[str]) -> threading.Thread:
    def target() -> None:
        try:
            outcome.append(run_bulk_task(task_id))
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("atomic", [True, False], ids=["all-or-nothing", "per-row"])
def test_cancel_running_stops_at_the_next_batch_and_writes_nothing(atomic: bool) -> None:
    make_books(40)
    arrived, release = gate("cancel")
    task = launched(
        Book.objects.all(), backend=f"{H}.PausingBackend", config={"gate": "cancel"}, atomic=atomic
    )
    outcome: list[str] = []
    thread = run_in_thread(task.pk, outcome)
    assert arrived.wait(30)  # the first batch is written (not committed)
    running = request_cancel(task.pk)
    assert running.status == BulkTask.Status.RUNNING and running.cancel_requested
    release.set()
    thread.join(30)
    assert outcome == ["cancelled"]
    task.refresh_from_db()
    assert task.status == BulkTask.Status.CANCELLED
    assert task.message.startswith("Cancelled after ") and task.message.endswith("; nothing was saved.")
    assert statuses() == {"draft"}
    assert not RowLock.objects.exists()
    assert task.row_counts == {"not_reached": 40}  # the ledger: no row was kept
    assert set(task.rows.values_list("outcome", flat=True)) == {"not_reached"}


# --- progress -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_progress_is_visible_while_an_all_or_nothing_run_is_open() -> None:
    """Another connection sees done/total/heartbeat move while the run's transaction is open."""
    make_books(50)
    arrived, release = gate("progress")
    task = launched(Book.objects.all(), backend=f"{H}.PausingBackend", config={"gate": "progress"})
    outcome: list[str] = []
    thread = run_in_thread(task.pk, outcome)
    try:
        assert arrived.wait(30)

        def observed() -> BulkTask | None:
            # What a dashboard does: read the row, bring it up to date from the live store.
            seen = BulkTask.objects.get(pk=task.pk)
            progress.live_progress([seen])
            return seen if seen.done >= 10 and seen.heartbeat_at is not None else None

        seen = wait_for(observed, timeout=10)
        assert (seen.done, seen.total, seen.percent) == (10, 50, 20)
        first_beat = seen.heartbeat_at
        # The heartbeat keeps moving while the batch is stuck.
        wait_for(lambda: (s := observed()) is not None and s.heartbeat_at > first_beat, timeout=5)
        if connection.vendor == "postgresql":
            assert Book.objects.filter(status="archived").count() == 0  # nothing committed yet
    finally:
        release.set()
        thread.join(30)
    assert outcome == ["succeeded"]
    assert progress.read_live(task) is None  # the live store forgets finished tasks


# --- worker death -------------------------------------------------------------------------------


def test_stale_running_task_is_failed_and_its_rows_released(capsys: Any) -> None:
    make_books(5)
    task = launched(Book.objects.all())
    long_ago = timezone.now() - datetime.timedelta(seconds=600)
    BulkTask.objects.filter(pk=task.pk).update(status="running", started_at=long_ago, heartbeat_at=long_ago)
    assert fail_stale_tasks(older_than_seconds=900) == []
    call_command("powercrud_cleanup", "--older-than", "120")
    assert capsys.readouterr().out == f"Marked 1 bulk task(s) failed and released their rows: #{task.pk}.\n"
    task.refresh_from_db()
    assert task.status == BulkTask.Status.FAILED
    assert task.message.startswith("The worker stopped responding (no heartbeat for 6")
    assert task.message.endswith("s), so the task was ended; nothing was saved.")
    assert not RowLock.objects.exists()
    assert run_bulk_task(task.pk) == "skipped"  # a late redelivery does nothing


@pytest.mark.django_db(transaction=True)
def test_a_live_heartbeat_keeps_a_task_alive() -> None:
    make_books(2)
    task = launched(Book.objects.all())
    long_ago = timezone.now() - datetime.timedelta(seconds=600)
    BulkTask.objects.filter(pk=task.pk).update(status="running", started_at=long_ago, heartbeat_at=long_ago)
    task.refresh_from_db()
    store = progress.live_store()
    store.write(task, 1, 2)  # what a live worker's writer does every second
    store.close()
    if connection.vendor != "sqlite":
        task.refresh_from_db()
    assert fail_stale_tasks(older_than_seconds=120) == []


def test_lost_queued_task_is_failed(django_capture_on_commit_callbacks: Any) -> None:
    make_books(4)
    with django_capture_on_commit_callbacks(execute=True):
        waiting = freeze_now(launched(Book.objects.filter(title__endswith="1")))
    lost = freeze_now(launched(Book.objects.exclude(title__endswith="1")))  # never enqueued
    old = timezone.now() - datetime.timedelta(hours=2)
    BulkTask.objects.update(created_at=old)
    assert fail_stale_tasks(queued_older_than_seconds=3600) == [lost.pk]
    lost.refresh_from_db()
    assert (
        lost.message
        == "The task was never picked up by a worker (queued for more than 3600 s); nothing was saved."
    )
    assert RowLock.objects.filter(task=waiting).exists() and not RowLock.objects.filter(task=lost).exists()


@pytest.mark.django_db(transaction=True)
def test_cleanup_during_a_run_wins_and_the_run_rolls_back() -> None:
    """If cleanup failed the task meanwhile, the worker's late outcome must not overwrite it."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: cleanup writes from another connection during the run")
    make_books(3)
    task = launched(Book.objects.all(), backend=f"{H}.RecordingBackend")
    from tests import async_helpers

    original = async_helpers.RecordingBackend.persist_bulk_update

    def then_cleanup(self: Any, **kwargs: Any) -> BulkResult:
        result = original(self, **kwargs)

        def cleanup() -> None:  # another process, another connection
            BulkTask.objects.filter(pk=task.pk).update(status="failed", message="ended by cleanup")
            connection.close()

        other = threading.Thread(target=cleanup)
        other.start()
        other.join(10)
        return result

    async_helpers.RecordingBackend.persist_bulk_update = then_cleanup  # type: ignore[method-assign]
    try:
        assert run_bulk_task(task.pk) == "superseded"
    finally:
        async_helpers.RecordingBackend.persist_bulk_update = original  # type: ignore[method-assign]
    task.refresh_from_db()
    assert task.message == "ended by cleanup"
    assert statuses() == {"draft"}


# --- sync and async agree -----------------------------------------------------------------------


def snapshot() -> list[tuple[Any, ...]]:
    return list(Book.objects.order_by("pk").values_list("pk", "status", "price", "author_id"))


@pytest.mark.parametrize(
    ("fields", "data", "atomic"),
    [
        (["status", "price"], {"status": "published", "price": "9.99"}, True),
        (["author"], {"author": -1}, True),  # an author that does not exist
        (["status"], {"status": "archived"}, False),
    ],
    ids=["update", "input-error", "per-row"],
)
def test_same_input_same_end_state_and_result_in_sync_and_async(
    fields: list[str], data: dict[str, Any], atomic: bool
) -> None:
    make_books(23)
    Author.objects.create(name="Other")
    queryset = Book.objects.filter(price__gte=Decimal("12"))
    bulk_fields = ["status", "genre", "author", "price", "tags", "is_available"]
    before = snapshot()

    context = BulkContext(
        mode="sync",
        model_label="testapp.book",
        user_id=None,
        selection_size=queryset.count(),
        atomic=atomic,
        batch_size=10,
    )
    sync_error: str | None = None
    with transaction.atomic():
        try:
            sync = run_bulk_update(
                DefaultBulkUpdatePersistenceBackend(),
                queryset=queryset,
                bulk_fields=bulk_fields,
                fields_to_update=fields,
                field_data=data,
                context=context,
            ).to_dict()
        except Exception as exc:  # the input error the view turns into a 400
            sync, sync_error = None, str(exc)
        sync_state = snapshot()
        transaction.set_rollback(True)
    assert snapshot() == before

    task = launched(queryset, fields=fields, field_data=data, atomic=atomic)
    run_bulk_task(task.pk)
    task.refresh_from_db()
    assert snapshot() == sync_state
    if sync_error is None:
        assert task.result == sync
        assert task.status == ("succeeded" if sync["success"] else "failed")
    else:
        assert task.status == "failed" and sync_error in task.message


# --- delete and other keys ----------------------------------------------------------------------


def test_async_delete_and_protected_rows() -> None:
    make_books(7)
    task = launch_request(Book.objects.filter(title__endswith="1"), operation="delete", user=None)
    assert run_bulk_task(task.pk) == "succeeded"
    assert Book.objects.count() == 6
    authors = launch_request(Author.objects.all(), operation="delete", user=None)
    assert run_bulk_task(authors.pk) == "failed"  # books PROTECT their author
    authors.refresh_from_db()
    assert "cannot be deleted" in authors.errors[0]["messages"][0]
    assert Author.objects.count() == 1 and not RowLock.objects.exists()


def test_uuid_primary_keys_end_to_end() -> None:
    from tests.testapp.models import Asset

    for i in range(5):
        Asset.objects.create(code=f"A{i}")
    task = launch_request(
        Asset.objects.filter(code__in=["A1", "A3"]),
        operation="update",
        user=None,
        fields_to_update=["in_service"],
        field_data={"in_service": False},
        bulk_fields=["in_service"],
    )
    assert run_bulk_task(task.pk) == "succeeded"
    assert set(Asset.objects.filter(in_service=False).values_list("code", flat=True)) == {"A1", "A3"}


def test_form_edit_conflicts_while_a_task_holds_the_row() -> None:
    books = make_books(3)
    task = freeze_now(launched(Book.objects.all()))
    with pytest.raises(
        LockConflict, match=rf"^This book is being changed by bulk task #{task.pk} \(queued\)\."
    ):
        assert_unlocked(Book, [books[1].pk])
    run_bulk_task(task.pk)
    assert_unlocked(Book, [books[1].pk])
