"""Launching async bulk tasks off the request path: the submit records the run and its stored
selection and enqueues after commit, reading no row; the worker's first step locks the rows
(its own committed transaction), and a conflict, a cancel or an empty selection found then ends
the run with no lock left behind."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.models import Value
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_q.models import OrmQ

from powercrud.bulk.request import BulkRequest
from powercrud.bulk.types import BulkInputError
from powercrud.jobs import freeze
from powercrud.jobs.freeze import stored_selection
from powercrud.jobs.launch import LaunchError
from powercrud.jobs.locks import LockConflict, acquire_locks
from powercrud.jobs.monitor import request_cancel
from powercrud.jobs.progress import live_progress
from powercrud.jobs.worker import run_bulk_task
from powercrud.models import SELECTION_KEY, BulkTask, RowLock, RunRow
from tests.async_helpers import launch_books, launch_request, make_books, wait_for
from tests.bulk_urls import select_all
from tests.conftest import HtmxClient
from tests.testapp.models import Book

pytestmark = pytest.mark.django_db

Status = BulkTask.Status


def queued_job_names() -> list[str]:
    return [job.name() for job in OrmQ.objects.all()]


def statuses() -> dict[str, int]:
    found: dict[str, int] = {}
    for status in Book.objects.values_list("status", flat=True):
        found[status] = found.get(status, 0) + 1
    return found


def ledger(task: BulkTask) -> dict[str, int]:
    found: dict[str, int] = {}
    for outcome in RunRow.objects.filter(run=task).values_list("outcome", flat=True):
        found[outcome] = found.get(outcome, 0) + 1
    return found


# ----- the submit ---------------------------------------------------------------------------------


def test_launch_records_the_selection_and_enqueues_after_commit_locking_nothing(
    django_capture_on_commit_callbacks: Any, admin_user: Any
) -> None:
    make_books(12)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        task = launch_books(Book.objects.filter(title__endswith="1"), user=admin_user)
        assert queued_job_names() == []  # nothing reaches the queue before the commit
    assert len(callbacks) == 1
    callbacks[0]()
    task.refresh_from_db()
    assert task.status == Status.QUEUED
    assert (task.kind, task.model_label, task.owner) == ("update", "testapp.book", admin_user)
    assert task.total == 0  # not counted by the submit: the worker counts what it locks
    assert not RowLock.objects.exists()
    request = {key: value for key, value in task.payload.items() if key != SELECTION_KEY}
    names = ("operation", "fields_to_update", "field_data", "batch_size")
    assert {name: request[name] for name in names} == {
        "operation": "update",
        "fields_to_update": ["status"],
        "field_data": {"status": "archived"},
        "batch_size": 10,
    }
    assert task.read_request() == BulkRequest.from_dict(request)  # the stored selection is not the request's
    assert set(task.payload[SELECTION_KEY]) == {"model", "query", "django"}
    restored = stored_selection(task)
    assert restored is not None and restored.keys is None
    assert sorted(restored.queryset.values_list("title", flat=True)) == ["Book 00001", "Book 00011"]
    assert queued_job_names() == [task.task_name]
    job = OrmQ.objects.get()
    assert job.task["func"] == "powercrud.jobs.worker.run_bulk_task"
    assert job.task["args"] == (task.pk,)  # the only argument: the task id
    assert task.q_task_id == job.task_id()


def test_the_worker_locks_the_stored_selection_then_runs_it(django_capture_on_commit_callbacks: Any) -> None:
    make_books(12)
    with django_capture_on_commit_callbacks(execute=True):
        task = launch_books(Book.objects.filter(title__endswith="1"))
    # A row that joins the selection between the submit and the freeze is part of the run.
    Book.objects.filter(title="Book 00010").update(title="Book 00021")
    assert run_bulk_task(task.pk) == Status.SUCCEEDED
    task.refresh_from_db()
    assert (task.total, task.done, task.success_count) == (3, 3, 3)
    assert task.message == "Updated 3 of 3 rows (3 changed)."
    assert SELECTION_KEY not in task.payload  # frozen: the locks were the selection from then on
    assert ledger(task) == {"changed": 3}
    assert statuses() == {"archived": 3, "draft": 9}
    assert not RowLock.objects.exists()
    assert run_bulk_task(task.pk) == "skipped"  # a second delivery changes nothing
    task.refresh_from_db()
    assert (task.status, task.attempts, ledger(task)) == (Status.SUCCEEDED, 1, {"changed": 3})


def submit_queries(client: HtmxClient, rows: int) -> tuple[int, list[str]]:
    """Make ``rows`` books, select them all and submit a bulk edit; the submit's queries."""
    Book.objects.all().delete()
    make_books(rows)
    assert select_all(client, "async-rule-books").status_code == 200
    with CaptureQueriesContext(connection) as captured:
        response = client.post("/async-rule-books/bulk/edit/", {"change_status": "on", "status": "archived"})
    assert response.status_code == 202, response.content.decode()[:500]
    assert "Bulk edit of the selected books" in response.content.decode()
    return len(captured), [query["sql"] for query in captured.captured_queries]


@pytest.mark.urls("tests.bulk_urls")
def test_the_submit_costs_the_same_queries_for_10_and_1000_rows(htmx_client: HtmxClient) -> None:
    small, small_sql = submit_queries(htmx_client, 10)
    large, large_sql = submit_queries(htmx_client, 1000)
    assert small == large, (small_sql, large_sql)
    lock_table = RowLock._meta.db_table
    assert not [sql for sql in large_sql if lock_table in sql]  # no row is locked by the submit
    book_table = Book._meta.db_table
    counts = [sql for sql in large_sql if "COUNT(" in sql.upper() and f'FROM "{book_table}"' in sql]
    assert len(counts) == 1 and "LIMIT 1" in counts[0]  # the mode is chosen by a bounded count
    tasks = list(BulkTask.objects.order_by("pk"))
    assert [task.total for task in tasks] == [0, 0]
    assert run_bulk_task(tasks[1].pk) == Status.SUCCEEDED
    tasks[1].refresh_from_db()
    assert (tasks[1].total, tasks[1].success_count) == (1000, 1000)
    assert statuses() == {"archived": 1000}


@pytest.mark.urls("tests.bulk_urls")
def test_a_small_selection_still_runs_in_the_request_with_its_exact_count(
    htmx_client: HtmxClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.bulk_urls import AsyncRuleBookView

    monkeypatch.setattr(AsyncRuleBookView, "bulk_min_async_records", 50)
    make_books(20)
    assert select_all(htmx_client, "async-rule-books").status_code == 200
    response = htmx_client.post("/async-rule-books/bulk/edit/", {"change_status": "on", "status": "archived"})
    assert response.status_code == 204, response.content.decode()[:500]
    run = BulkTask.objects.get()
    assert (run.mode, run.total, run.success_count) == (BulkTask.Mode.SYNC, 20, 20)
    make_books(40)  # 60 rows now: at or past the threshold of 50, a worker's
    assert select_all(htmx_client, "async-rule-books").status_code == 200
    response = htmx_client.post("/async-rule-books/bulk/edit/", {"change_status": "on", "status": "draft"})
    assert response.status_code == 202


# ----- the freeze in the worker ----------------------------------------------------------------------


def test_a_conflict_found_at_freeze_ends_the_run_failed_with_the_launch_message(
    django_capture_on_commit_callbacks: Any,
) -> None:
    make_books(10)
    with django_capture_on_commit_callbacks(execute=True):
        first = launch_books(Book.objects.filter(title__endswith="1"))
        second = launch_books(Book.objects.all())  # overlaps: both are accepted by the submit
    acquire_locks(first, Book.objects.filter(title__endswith="1"))  # the first one froze first
    assert run_bulk_task(second.pk) == Status.FAILED
    second.refresh_from_db()
    assert second.message == (
        f"1 of the selected book is being changed by bulk task #{first.pk} (queued). "
        "Try again when it finishes."
    )
    assert (second.total, second.done, second.success_count) == (0, 0, 0)
    assert not RowLock.objects.filter(task=second).exists()
    assert RowLock.objects.filter(task=first).count() == 1  # the holder keeps its lock
    assert not RunRow.objects.filter(run=second).exists()
    assert statuses() == {"draft": 10}


def test_rows_gone_before_the_freeze_end_the_run_failed_and_say_so(
    django_capture_on_commit_callbacks: Any,
) -> None:
    make_books(4)
    with django_capture_on_commit_callbacks(execute=True):
        task = launch_books(Book.objects.filter(title__startswith="Book"))
    Book.objects.all().delete()
    assert run_bulk_task(task.pk) == Status.FAILED
    task.refresh_from_db()
    assert task.message == (
        "None of the selected books could be locked (they are gone, or you may no longer change them); "
        "nothing was saved."
    )
    assert not RowLock.objects.exists()


def test_a_cancel_before_the_worker_starts_means_it_never_locks(
    django_capture_on_commit_callbacks: Any,
) -> None:
    make_books(5)
    with django_capture_on_commit_callbacks(execute=True):
        task = launch_books(Book.objects.all())
    request_cancel(task)
    assert run_bulk_task(task.pk) == "skipped"
    task.refresh_from_db()
    assert task.status == Status.CANCELLED
    assert not RowLock.objects.exists()
    assert statuses() == {"draft": 5}


def test_a_cancel_while_the_rows_are_being_locked_leaves_no_lock(
    django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_books(8)
    with django_capture_on_commit_callbacks(execute=True):
        task = launch_books(Book.objects.all())
    seen: dict[str, Any] = {}

    def lock_then_cancel(locked: BulkTask, *args: Any) -> int:
        taken = acquire_locks(locked, *args)
        seen["taken"] = RowLock.objects.filter(task=locked).count()
        request_cancel(locked.pk)  # pressed while the INSERT ... SELECT ran
        return taken

    monkeypatch.setattr(freeze, "acquire_locks", lock_then_cancel)
    assert run_bulk_task(task.pk) == Status.CANCELLED
    task.refresh_from_db()
    assert seen["taken"] == 8
    assert task.status == Status.CANCELLED
    assert task.message.startswith("Cancelled after 0 of 8 rows")
    assert not RowLock.objects.exists()  # the freeze was rolled back
    assert not RunRow.objects.filter(run=task).exists()
    assert statuses() == {"draft": 8}


@pytest.mark.urls("tests.bulk_urls")
@pytest.mark.django_db(transaction=True)  # the writer's own connection must see the task (PostgreSQL)
def test_the_locking_phase_is_shown_while_the_worker_locks(
    django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch, admin_client: Any
) -> None:
    make_books(6)
    with django_capture_on_commit_callbacks(execute=True):
        task = launch_books(Book.objects.all())
    shown: dict[str, str] = {}

    def lock_and_look(locked: BulkTask, *args: Any) -> int:
        # The writer thread reports the phase within its first interval (0.2 s).
        wait_for(lambda: live_progress([BulkTask.objects.get(pk=locked.pk)])[0].message, timeout=5)
        page = admin_client.get(reverse("powercrud:tasks-progress", args=[locked.pk]))
        shown["progress"] = page.content.decode()
        shown["list"] = admin_client.get(reverse("powercrud:tasks-list")).content.decode()
        return acquire_locks(locked, *args)

    monkeypatch.setattr(freeze, "acquire_locks", lock_and_look)
    assert run_bulk_task(task.pk) == Status.SUCCEEDED
    assert "Locking 6 rows…" in shown["progress"]  # the modal's fragment
    assert "Locking 6 rows…" in shown["list"]  # the dashboard
    task.refresh_from_db()
    assert task.message == "Updated 6 of 6 rows (6 changed)."


def test_a_tampered_selection_is_refused_not_unpickled(django_capture_on_commit_callbacks: Any) -> None:
    make_books(3)
    with django_capture_on_commit_callbacks(execute=True):
        task = launch_books(Book.objects.all())
    stored = task.payload[SELECTION_KEY]
    stored["query"] = stored["query"].replace(":", "x:", 1)  # any change breaks the signature
    BulkTask.objects.filter(pk=task.pk).update(payload={**task.payload, SELECTION_KEY: stored})
    assert run_bulk_task(task.pk) == Status.FAILED
    task.refresh_from_db()
    assert "SECRET_KEY" in task.message and task.message.startswith("The task could not start")
    assert not RowLock.objects.exists()
    assert statuses() == {"draft": 3}


def test_a_selection_stored_by_another_django_is_refused(django_capture_on_commit_callbacks: Any) -> None:
    make_books(3)
    with django_capture_on_commit_callbacks(execute=True):
        task = launch_books(Book.objects.all())
    stored = {**task.payload[SELECTION_KEY], "django": "4.2.0"}  # a web server not yet upgraded
    BulkTask.objects.filter(pk=task.pk).update(payload={**task.payload, SELECTION_KEY: stored})
    assert run_bulk_task(task.pk) == Status.FAILED
    task.refresh_from_db()
    assert "stored by Django 4.2.0" in task.message and task.message.startswith("The task could not start")
    assert not RowLock.objects.exists()
    assert statuses() == {"draft": 3}


class LocalValue(Value):
    """Picklable (module level); the test below makes an unpicklable one."""


def test_a_selection_that_cannot_be_stored_is_locked_by_the_submit(
    django_capture_on_commit_callbacks: Any,
) -> None:
    class Unpicklable(Value):  # a local class: pickle cannot name it
        pass

    make_books(6)
    rows = Book.objects.annotate(flag=Unpicklable(1)).filter(flag=1, title__endswith="1")
    with django_capture_on_commit_callbacks(execute=True):
        task = launch_books(rows)
    assert SELECTION_KEY not in task.payload
    assert task.total == 1 and RowLock.objects.filter(task=task).count() == 1
    with pytest.raises(LockConflict, match=f"bulk task #{task.pk}"):
        launch_books(Book.objects.annotate(flag=Unpicklable(1)).filter(flag=1))
    assert run_bulk_task(task.pk) == Status.SUCCEEDED
    assert statuses() == {"archived": 1, "draft": 5}
    stored = Book.objects.annotate(flag=LocalValue(1)).filter(flag=1)
    with django_capture_on_commit_callbacks(execute=True):
        later = launch_books(stored)
    assert SELECTION_KEY in later.payload  # a picklable expression is stored as usual


# ----- failures at submit leave nothing ---------------------------------------------------------------


def test_broker_down_fails_the_task(
    django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real Redis client pointed at a closed port: the enqueue fails after the commit."""
    redis = pytest.importorskip("redis")
    from django_q import tasks as q_tasks
    from django_q.brokers.redis_broker import Redis

    broker = Redis(list_key="powercrud-test")
    broker.connection = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    monkeypatch.setattr(q_tasks, "get_broker", lambda *args, **kwargs: broker)
    make_books(5)
    with (
        pytest.raises(LaunchError) as caught,
        django_capture_on_commit_callbacks(execute=True),
    ):
        launch_books(Book.objects.all())
    assert caught.value.message == (
        "The task could not be queued because the task queue is not reachable; nothing was saved. "
        "Try again later, or ask an administrator to check the workers."
    )
    task = BulkTask.objects.get()
    assert task.status == Status.FAILED
    assert task.finished_at is not None
    assert "not reachable" in task.message
    assert not RowLock.objects.exists()
    assert not BulkTask.objects.filter(status=Status.QUEUED).exists()


def test_a_backend_path_that_does_not_import_is_refused_before_anything() -> None:
    make_books(3)
    with pytest.raises(LaunchError, match="could not be imported"):
        launch_books(Book.objects.all(), backend="tests.nowhere.Backend")
    assert not BulkTask.objects.exists()
    assert not RowLock.objects.exists()


def test_a_selection_empty_by_construction_is_refused() -> None:
    make_books(3)
    with pytest.raises(LaunchError, match="No books are selected"):
        launch_books(Book.objects.none())
    assert not BulkTask.objects.exists()


def test_inputs_are_checked_before_anything_is_written() -> None:
    make_books(2)
    with pytest.raises(TypeError, match="JSON-able"):
        launch_books(Book.objects.all(), field_data={"status": object()})
    with pytest.raises(BulkInputError, match="'title' cannot be changed in bulk here"):
        launch_request(
            Book.objects.all(),
            operation="update",
            user=None,
            fields_to_update=["title"],
            field_data={"title": "x"},
            bulk_fields=["status"],
        )
    with pytest.raises(ValueError, match="operation must be"):
        launch_request(Book.objects.all(), operation="explode", user=None)
    assert not BulkTask.objects.exists()


def test_delete_launch(django_capture_on_commit_callbacks: Any) -> None:
    make_books(4)
    with django_capture_on_commit_callbacks(execute=True):
        task = launch_request(Book.objects.all(), operation="delete", user=None)
    assert task.kind == "delete"
    assert queued_job_names() == [task.task_name]
    assert run_bulk_task(task.pk) == Status.SUCCEEDED
    task.refresh_from_db()
    assert (task.total, task.success_count) == (4, 4)
    assert not Book.objects.exists() and not RowLock.objects.exists()


@pytest.mark.urls("tests.bulk_urls")
def test_the_run_page_names_the_rows_once_the_worker_counted_them(
    django_capture_on_commit_callbacks: Any, admin_client: Any, admin_user: Any
) -> None:
    make_books(3)
    with django_capture_on_commit_callbacks(execute=True):
        task = launch_books(Book.objects.all(), user=admin_user)
    page = admin_client.get(reverse("powercrud:tasks-detail", args=[task.pk])).content.decode()
    assert "Bulk edit of the selected books" in page and "of 0 books" not in page
    assert run_bulk_task(task.pk) == Status.SUCCEEDED
    page = admin_client.get(reverse("powercrud:tasks-detail", args=[task.pk])).content.decode()
    assert "Bulk edit of 3 books" in page


def test_the_mode_is_chosen_counting_only_as_far_as_the_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.bulk_urls import AsyncRuleBookView

    make_books(30)
    monkeypatch.setattr(AsyncRuleBookView, "bulk_min_async_records", 10)
    view = AsyncRuleBookView()
    with CaptureQueriesContext(connection) as captured:
        assert view.selection_size(Book.objects.all()) == 10  # at least the threshold: a worker's
    (query,) = captured.captured_queries
    assert "LIMIT 10" in query["sql"] and "ORDER BY" not in query["sql"]
    assert view.selection_size(Book.objects.filter(title__endswith="1")) == 3  # below it: exact
    monkeypatch.setattr(AsyncRuleBookView, "should_run_async", lambda self, size: size > 20)
    assert view.selection_size(Book.objects.all()) == 30  # a view that decides itself gets the count
    monkeypatch.undo()
    monkeypatch.setattr(AsyncRuleBookView, "bulk_async", False)
    assert view.selection_size(Book.objects.all()) == 30  # everything in the request: exact, as before
