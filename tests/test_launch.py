"""Launching async bulk tasks: record, lock, enqueue after commit; failures leave nothing behind."""

from __future__ import annotations

from typing import Any

import pytest
from django_q.models import OrmQ

from powercrud.bulk.request import BulkRequest
from powercrud.bulk.types import BulkInputError
from powercrud.jobs.launch import LaunchError
from powercrud.jobs.locks import LockConflict
from powercrud.models import BulkTask, RowLock
from tests.async_helpers import launch_books, launch_request, make_books
from tests.testapp.models import Book

pytestmark = pytest.mark.django_db


def queued_job_names() -> list[str]:
    return [job.name() for job in OrmQ.objects.all()]


def test_launch_records_locks_and_enqueues_after_commit(
    django_capture_on_commit_callbacks: Any, admin_user: Any
) -> None:
    make_books(12)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        task = launch_books(Book.objects.filter(title__endswith="1"), user=admin_user)
        assert queued_job_names() == []  # nothing reaches the queue before the commit
    assert len(callbacks) == 1
    callbacks[0]()
    task.refresh_from_db()
    assert task.status == BulkTask.Status.QUEUED
    assert task.kind == "update"
    assert task.model_label == "testapp.book"
    assert task.owner == admin_user
    assert task.total == 2  # "Book 00001" and "Book 00011"
    assert task.payload == {
        "version": 1,
        "operation": "update",
        "model_label": "testapp.book",
        "fields_to_update": ["status"],
        "field_data": {"status": "archived"},
        "bulk_fields": ["status", "genre", "author", "price", "tags", "is_available"],
        "backend_path": "",
        "backend_config": {},
        "atomic": True,
        "batch_size": 10,
        "view_name": "books",
        "dry_run": False,
        "reason": "",
        "source_run": None,
        "source_action": None,
    }
    assert task.read_request() == BulkRequest.from_dict(task.payload)
    assert RowLock.objects.filter(task=task).count() == 2
    assert queued_job_names() == [task.task_name]
    job = OrmQ.objects.get()
    assert job.task["func"] == "powercrud.jobs.worker.run_bulk_task"
    assert job.task["args"] == (task.pk,)  # the only argument: the task id
    assert task.q_task_id == job.task_id()


def test_conflicting_launch_leaves_nothing(django_capture_on_commit_callbacks: Any) -> None:
    make_books(10)
    with django_capture_on_commit_callbacks(execute=True):
        first = launch_books(Book.objects.filter(title__endswith="1"))
    tasks_before = BulkTask.objects.count()
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(LockConflict) as caught:
        launch_books(Book.objects.all())
    assert callbacks == []
    assert f"bulk task #{first.pk} (queued)" in caught.value.message
    assert BulkTask.objects.count() == tasks_before
    assert RowLock.objects.exclude(task=first).count() == 0
    assert queued_job_names() == [first.task_name]


def test_broker_down_fails_the_task_and_frees_its_rows(
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
    assert task.status == BulkTask.Status.FAILED
    assert task.finished_at is not None
    assert "not reachable" in task.message
    assert not RowLock.objects.exists()
    assert not BulkTask.objects.filter(status=BulkTask.Status.QUEUED).exists()


def test_a_backend_path_that_does_not_import_is_refused_before_anything() -> None:
    make_books(3)
    with pytest.raises(LaunchError, match="could not be imported"):
        launch_books(Book.objects.all(), backend="tests.nowhere.Backend")
    assert not BulkTask.objects.exists()
    assert not RowLock.objects.exists()


def test_an_empty_selection_is_refused_and_rolled_back() -> None:
    make_books(3)
    with pytest.raises(LaunchError, match="No books are selected"):
        launch_books(Book.objects.filter(title="nothing"))
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
    with pytest.raises(ValueError, match="operation must be 'update' or 'delete'"):
        launch_request(Book.objects.all(), operation="explode", user=None)
    assert not BulkTask.objects.exists()


def test_delete_launch(django_capture_on_commit_callbacks: Any) -> None:
    make_books(4)
    with django_capture_on_commit_callbacks(execute=True):
        task = launch_request(Book.objects.all(), operation="delete", user=None)
    assert task.kind == "delete"
    assert task.total == 4
    assert queued_job_names() == [task.task_name]
