"""Failure paths of one bulk edit, in the worker function and through the views.

A database error on one row, a backend that returns nonsense or ignores a cancel, a worker
whose database connection is killed, a broker that cannot take the job. Every test checks
what was written, what the task record says, and that no row lock is left behind.
(test_tasks.py already proves the backend that raises, returns ``success=False`` or cannot
be imported, and django-q2's timeout; see docs/reliability.md.)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import DatabaseError, OperationalError, connection, connections, transaction
from django.test import Client, override_settings

from powercrud.bulk_persistence import DefaultBulkUpdatePersistenceBackend
from powercrud.jobs.monitor import request_cancel
from powercrud.jobs.progress import TaskCancelled
from powercrud.jobs.worker import run_bulk_task
from powercrud.models import BulkTask, RowLock
from tests.async_helpers import ARRIVED, GATES, gate, launch_books, launch_request, make_books
from tests.bulk_urls import BOOK_BULK_FIELDS, book_snapshot, select
from tests.conftest import HtmxClient, make_user
from tests.testapp.models import Book

HERE = "tests.reliability.test_failure_paths"
FROZEN = "this book is frozen"


# --- backends named by path ---------------------------------------------------------------------


class NonsenseBackend(DefaultBulkUpdatePersistenceBackend):
    """Writes every row, then returns what ``config["returns"]`` names instead of a result."""

    RETURNS: dict[str, Any] = {
        "none": None,
        "a string": "ok",
        "no success_records": {"success": True},
        "success as text": {"success": "yes", "success_records": 3},
    }

    def persist_bulk_update(self, **kwargs: Any) -> Any:
        super().persist_bulk_update(**kwargs)
        return self.RETURNS[self.config["returns"]]


class CancelIgnoringBackend(DefaultBulkUpdatePersistenceBackend):
    """Pauses after its first batch (gate ``config["gate"]``), then ignores ``TaskCancelled``."""

    def persist_bulk_update(self, *, progress_callback: Any = None, **kwargs: Any) -> Any:
        name = self.config["gate"]
        paused = False

        def report(done: int, total: int) -> None:
            nonlocal paused
            with contextlib.suppress(TaskCancelled):  # a careless backend carries on
                progress_callback(done, total)
            if done and not paused:
                paused = True
                ARRIVED[name].set()
                GATES[name].wait(30)

        return super().persist_bulk_update(progress_callback=report, **kwargs)


class ConnectionNotingBackend(DefaultBulkUpdatePersistenceBackend):
    """Notes its database connection's server process id, then pauses like CancelIgnoringBackend."""

    pids: dict[str, int] = {}

    def persist_bulk_update(self, *, progress_callback: Any = None, **kwargs: Any) -> Any:
        name = self.config["gate"]
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            self.pids[name] = cursor.fetchone()[0]
        paused = False

        def report(done: int, total: int) -> None:
            nonlocal paused
            progress_callback(done, total)
            if done and not paused:
                paused = True
                ARRIVED[name].set()
                GATES[name].wait(30)

        return super().persist_bulk_update(progress_callback=report, **kwargs)


# --- helpers ------------------------------------------------------------------------------------


def statuses() -> set[str]:
    return set(Book.objects.values_list("status", flat=True))


def run_in_thread(task_id: int, outcome: list[str]) -> threading.Thread:
    def target() -> None:
        try:
            outcome.append(run_bulk_task(task_id))
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    return thread


@pytest.fixture
def frozen_book(db: None) -> Iterator[Book]:
    """Twelve books; the seventh cannot be updated: a database trigger refuses it."""
    books = make_books(12)
    frozen = books[6]
    Book.objects.filter(pk=frozen.pk).update(pages=13)
    table = Book._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION pc_refuse_frozen() RETURNS trigger AS $$ BEGIN "
                f"IF OLD.pages = 13 THEN RAISE EXCEPTION '{FROZEN}' USING ERRCODE = 'check_violation'; "
                "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                f"CREATE TRIGGER pc_refuse_frozen BEFORE UPDATE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION pc_refuse_frozen()"
            )
        else:
            cursor.execute(
                f"CREATE TRIGGER pc_refuse_frozen BEFORE UPDATE ON {table} WHEN OLD.pages = 13 "
                f"BEGIN SELECT RAISE(ABORT, '{FROZEN}'); END"
            )
    yield frozen  # the test's transaction rolls the trigger back


# --- a database error on row k of N -------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.urls("tests.bulk_urls")
@override_settings(POWERCRUD_SETTINGS={"BULK_BATCH_SIZE": 4})
@pytest.mark.parametrize(
    ("url_base", "backend", "atomic"),
    [
        ("plain-books", None, True),  # powercrud's default backend, set-based path
        ("per-row-books", "tests.testapp.backends.BookBulkUpdateBackend", False),  # rows read and checked
    ],
    ids=["all-or-nothing", "per-row"],
)
def test_a_database_error_on_one_row_same_outcome_in_sync_and_async(
    frozen_book: Book, url_base: str, backend: str | None, atomic: bool
) -> None:
    """Row 7 of 12 (second batch of four) is refused by the database itself, not by Python."""
    client = HtmxClient()
    client.force_login(make_user("ops", superuser=True))
    pks = sorted(Book.objects.values_list("pk", flat=True))
    assert select(client, url_base, pks).status_code == 200
    before = book_snapshot()

    with transaction.atomic():  # the sync run through the view, then undone for the async run
        response = client.post(f"/{url_base}/bulk/edit/", {"change_status": "1", "status": "published"})
        assert response.status_code == 200
        sync = response.context["result"]
        sync_state = book_snapshot()
        transaction.set_rollback(True)
    assert book_snapshot() == before
    assert f"The database rejected the change: {FROZEN}" in response.content.decode()

    task = launch_request(
        Book.objects.filter(pk__in=pks),
        operation="update",
        user=None,
        fields_to_update=["status"],
        field_data={"status": "published"},
        bulk_fields=BOOK_BULK_FIELDS,
        backend_path=backend,
        atomic=atomic,
    )
    assert run_bulk_task(task.pk) == "failed"
    task.refresh_from_db()
    assert task.result == sync.to_dict()  # the same result, field for field
    assert book_snapshot() == sync_state  # the same rows written
    assert task.errors == [
        {"pk": frozen_book.pk, "field": None, "messages": [f"The database rejected the change: {FROZEN}"]}
    ]
    published = {pk for pk, row in sync_state.items() if row["status"] == "published"}
    if atomic:
        assert published == set() and task.success_count == 0
        assert task.message == "1 of 12 rows failed, so nothing was saved (all-or-nothing)."
    else:
        assert published == set(pks) - {frozen_book.pk} and task.success_count == 11
    assert not RowLock.objects.exists()


# --- backends that misbehave --------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("returns", list(NonsenseBackend.RETURNS))
def test_a_backend_returning_something_that_is_not_a_result_fails_and_writes_nothing(
    returns: str, caplog: Any
) -> None:
    make_books(5)
    task = launch_books(Book.objects.all(), backend=f"{HERE}.NonsenseBackend", config={"returns": returns})
    assert run_bulk_task(task.pk) == "failed"
    task.refresh_from_db()
    assert task.message == (
        "The task stopped because of an unexpected error; nothing was saved. "
        f"The details are in the worker log under {task.task_name}."
    )
    assert "must return a BulkResult" in caplog.text  # what the developer needs, in the log
    assert statuses() == {"draft"}
    assert not RowLock.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("atomic", [True, False], ids=["all-or-nothing", "per-row"])
def test_a_backend_that_ignores_a_cancel_is_still_cancelled_and_rolled_back(atomic: bool) -> None:
    make_books(30)
    arrived, release = gate("ignore-cancel")
    task = launch_books(
        Book.objects.all(),
        backend=f"{HERE}.CancelIgnoringBackend",
        config={"gate": "ignore-cancel"},
        atomic=atomic,
    )
    outcome: list[str] = []
    worker = run_in_thread(task.pk, outcome)
    try:
        assert arrived.wait(30)
        assert request_cancel(task.pk).cancel_requested
    finally:
        release.set()
        worker.join(30)
    assert outcome == ["cancelled"]  # the backend returned success; the worker knew better
    task.refresh_from_db()
    assert task.status == BulkTask.Status.CANCELLED and task.message.endswith("; nothing was saved.")
    assert statuses() == {"draft"}
    assert not RowLock.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_worker_whose_database_connection_is_killed_mid_run_fails_and_frees_the_rows() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: pg_terminate_backend() ends one connection from another")
    make_books(30)
    arrived, release = gate("killed-connection")
    task = launch_books(
        Book.objects.all(), backend=f"{HERE}.ConnectionNotingBackend", config={"gate": "killed-connection"}
    )
    outcome: list[str] = []
    worker = run_in_thread(task.pk, outcome)
    try:
        assert arrived.wait(30)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(%s)", [ConnectionNotingBackend.pids["killed-connection"]]
            )
    finally:
        release.set()
        worker.join(30)
    assert outcome == ["failed"]
    task.refresh_from_db()
    assert task.status == BulkTask.Status.FAILED
    assert task.message.startswith("The task stopped because of an unexpected error; nothing was saved.")
    assert statuses() == {"draft"}
    assert not RowLock.objects.exists()


# --- the broker cannot take the job -------------------------------------------------------------


class BrokerUnavailable(Exception):
    """What a broker client outside django-q2's own (SQS, MongoDB, ...) might raise."""


def unreachable_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    redis = pytest.importorskip("redis")
    from django_q import tasks as q_tasks
    from django_q.brokers.redis_broker import Redis

    broker = Redis(list_key="powercrud-reliability")
    broker.connection = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    monkeypatch.setattr(q_tasks, "get_broker", lambda *args, **kwargs: broker)


def failing_orm_broker(error: BaseException) -> Any:
    def patch(monkeypatch: pytest.MonkeyPatch) -> None:
        from django_q.brokers.orm import ORM

        def enqueue(self: Any, task: Any) -> Any:
            raise error

        monkeypatch.setattr(ORM, "enqueue", enqueue)

    return patch


BROKERS_DOWN = {
    "redis refuses the connection": unreachable_redis,
    "the ORM broker's database is down": failing_orm_broker(OperationalError("could not connect to server")),
    "the ORM broker's database errors": failing_orm_broker(DatabaseError("relation django_q_ormq is gone")),
    "another broker's own error": failing_orm_broker(BrokerUnavailable("queue endpoint unreachable")),
}


@pytest.mark.django_db(transaction=True)
@override_settings(POWERCRUD_SETTINGS={"BULK_MIN_ASYNC_RECORDS": 1})
@pytest.mark.parametrize("down", list(BROKERS_DOWN))
def test_broker_down_through_the_view_is_a_503_and_leaves_nothing_queued_or_locked(
    down: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_q.models import OrmQ

    books = make_books(5)
    client: Client = HtmxClient()
    client.force_login(make_user("ops", superuser=True))
    assert select(client, "book", [b.pk for b in books]).status_code == 200
    BROKERS_DOWN[down](monkeypatch)
    response = client.post("/book/bulk/edit/", {"change_status": "1", "status": "published"})
    assert response.status_code == 503
    why = "reported an error" if down == "another broker's own error" else "is not reachable"
    assert (
        f"The task could not be queued because the task queue {why}; nothing was saved. "
        "Try again later, or ask an administrator to check the workers."
    ) in response.content.decode()
    task = BulkTask.objects.get()
    assert (task.status, task.finished_at is not None) == (BulkTask.Status.FAILED, True)
    assert not BulkTask.objects.filter(status=BulkTask.Status.QUEUED).exists()
    assert not RowLock.objects.exists()
    assert not OrmQ.objects.exists()
    assert statuses() == {"draft"}


@pytest.mark.django_db(transaction=True)
@override_settings(POWERCRUD_SETTINGS={"BULK_MIN_ASYNC_RECORDS": 1})
@pytest.mark.parametrize("broker", ["down", "up"])
def test_with_atomic_requests_the_job_is_still_queued_at_the_launch_not_after_the_response(
    broker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ATOMIC_REQUESTS``: the launch must commit (and enqueue) inside the view, so a broker
    failure is still a readable 503 rather than an error after the response was built."""
    from django_q.models import OrmQ

    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    books = make_books(5)
    client: Client = HtmxClient(raise_request_exception=False)
    client.force_login(make_user("ops", superuser=True))
    assert select(client, "book", [b.pk for b in books]).status_code == 200
    if broker == "down":
        unreachable_redis(monkeypatch)
    response = client.post("/book/bulk/edit/", {"change_status": "1", "status": "published"})
    task = BulkTask.objects.get()
    if broker == "down":
        assert response.status_code == 503
        assert "the task queue is not reachable" in response.content.decode()
        assert task.status == BulkTask.Status.FAILED and not RowLock.objects.exists()
    else:
        assert response.status_code == 202
        assert task.status == BulkTask.Status.QUEUED and not RowLock.objects.exists()  # the worker locks
        assert [job.name() for job in OrmQ.objects.all()] == [task.task_name]
