"""Helpers for the async bulk tests: test backends, quick data, and a small CLI for a worker DB.

The backends are importable by dotted path (as a worker needs). Their behaviour is steered
by ``backend_config`` (plain JSON), and, within one process, by ``GATES`` (events a test
opens to let a paused run continue) and ``SEEN`` (the contexts backends were called with).

Run as ``python -m tests.async_helpers CMD`` with ``DJANGO_SETTINGS_MODULE=tests.settings_worker``
to drive a database shared with a real ``qcluster`` process (see test_worker_process.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar

from django.core.exceptions import ValidationError

from powercrud.bulk.runner import ProgressCallback
from powercrud.bulk.service import BulkUpdateService
from powercrud.bulk.types import BulkContext, BulkResult
from powercrud.bulk_persistence import DefaultBulkUpdatePersistenceBackend

SEEN: list[BulkContext] = []
GATES: dict[str, threading.Event] = {}
ARRIVED: dict[str, threading.Event] = {}


@contextlib.contextmanager
def held_elsewhere(opener: Callable[[], contextlib.AbstractContextManager[Any]]) -> Iterator[None]:
    """Enter ``opener()`` on another thread (and database connection) and keep it open until
    this block ends: a transaction that another request holds meanwhile."""
    ready, done = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def hold() -> None:
        from django.db import connections

        try:
            with opener():
                ready.set()
                done.wait(30)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            failures.append(exc)
            ready.set()
        finally:
            connections.close_all()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert ready.wait(30), "the other thread did not get going"
        assert not failures, failures
        yield
    finally:
        done.set()
        thread.join(30)
    assert not failures, failures


def gate(name: str) -> tuple[threading.Event, threading.Event]:
    """(arrived, release) events for a ``PausingBackend`` configured with ``{"gate": name}``."""
    ARRIVED[name] = threading.Event()
    GATES[name] = threading.Event()
    return ARRIVED[name], GATES[name]


class RecordingBackend(DefaultBulkUpdatePersistenceBackend):
    """The default backend, remembering the context it ran with."""

    def persist_bulk_update(self, **kwargs: Any) -> BulkResult:
        SEEN.append(kwargs["context"])
        return super().persist_bulk_update(**kwargs)


class RefusingBackend(DefaultBulkUpdatePersistenceBackend):
    """Writes nothing and answers ``success=False`` in the plain dict form, naming two rows."""

    def persist_bulk_update(self, *, queryset: Any, **kwargs: Any) -> dict[str, Any]:
        pks = list(queryset.order_by("pk").values_list("pk", flat=True)[:2])
        return {
            "success": False,
            "success_records": 0,
            "errors": [{"pk": pk, "field": "status", "messages": ["Not allowed <today>."]} for pk in pks],
        }


class ExplodingBackend(DefaultBulkUpdatePersistenceBackend):
    """Writes every row, then raises an error whose text must not reach the page."""

    def persist_bulk_update(self, **kwargs: Any) -> BulkResult:
        super().persist_bulk_update(**kwargs)
        raise RuntimeError("secret internals: password=hunter2")


class TimingOutBackend(DefaultBulkUpdatePersistenceBackend):
    """Writes every row, then gets django-q2's timeout signal (a SystemExit, not an Exception)."""

    def persist_bulk_update(self, **kwargs: Any) -> BulkResult:
        from django_q.exceptions import TimeoutException

        super().persist_bulk_update(**kwargs)
        raise TimeoutException("Task exceeded maximum timeout value (60 seconds)")


class PausingBackend(DefaultBulkUpdatePersistenceBackend):
    """The default backend whose progress callback can pause or slow the run.

    config: ``gate`` (name in GATES: after the first batch, signal ARRIVED and wait up to
    30 s for the gate), ``sleep`` (seconds to sleep after each batch).
    """

    def persist_bulk_update(self, *, progress_callback: ProgressCallback | None = None, **kwargs: Any) -> Any:
        name = self.config.get("gate")
        pause = float(self.config.get("sleep", 0))
        batches = 0

        def report(done: int, total: int) -> None:
            nonlocal batches
            if progress_callback is not None:
                progress_callback(done, total)
            if done == 0:
                return
            batches += 1
            if name and batches == 1:
                ARRIVED[name].set()
                GATES[name].wait(30)
                if progress_callback is not None:
                    progress_callback(done, total)
            if pause:
                time.sleep(pause)

        return super().persist_bulk_update(progress_callback=report, **kwargs)


class RecordingRunner:
    """A ``BULK_RUNNER`` for tests: keeps what it is asked to queue, ``(job, args, name)``, and
    runs nothing (a test runs the jobs it wants); ``still_waiting`` is what ``waiting()`` says."""

    jobs: ClassVar[list[tuple[str, tuple[Any, ...], str]]] = []
    still_waiting: ClassVar[set[str] | None] = None

    def enqueue(self, job: str, *args: Any, name: str) -> str:
        self.jobs.append((job, args, name))
        return f"job-{len(self.jobs)}"

    def waiting(self) -> set[str] | None:
        return self.still_waiting


def powercrud_settings(**values: Any) -> Any:
    """``override_settings`` of ``POWERCRUD_SETTINGS`` with ``values`` over the test settings'."""
    from django.conf import settings
    from django.test import override_settings

    return override_settings(POWERCRUD_SETTINGS={**getattr(settings, "POWERCRUD_SETTINGS", {}), **values})


def on_workers() -> Any:
    """Every run of three rows or more goes to a worker, queued through ``RecordingRunner``."""
    return powercrud_settings(BULK_MIN_ASYNC_RECORDS=3, BULK_RUNNER=f"{__name__}.RecordingRunner")


def make_books(count: int, *, title: str = "Book", status: str = "draft") -> list[Any]:
    """``count`` books (and one author) in one INSERT per 1,000; returns them."""
    from tests.testapp.models import Author, Book

    author = Author.objects.create(name="Async Author")
    books = [
        Book(title=f"{title} {i:05d}", author=author, status=status, price=Decimal("10.00") + i % 7)
        for i in range(count)
    ]
    return Book.objects.bulk_create(books, batch_size=1000)


def status_data(value: str = "archived") -> dict[str, Any]:
    """``field_data`` for setting ``status`` of books."""
    return {"status": value}


def launch_request(queryset: Any, *, user: Any = None, operation: str = "update", **fields: Any) -> Any:
    """Launch a background run of ``BulkRequest(operation, **fields)`` over ``queryset``."""
    from powercrud.bulk.request import BulkRequest
    from powercrud.jobs.launch import launch_bulk_task

    for name in ("fields_to_update", "bulk_fields"):
        if name in fields:
            fields[name] = tuple(fields[name])
    if fields.get("backend_path") is None:
        fields.pop("backend_path", None)
    request = BulkRequest(operation=operation, model_label=queryset.model._meta.label_lower, **fields)
    return launch_bulk_task(request, queryset, user=user)


def launch_books(
    queryset: Any,
    *,
    user: Any = None,
    backend: str | None = None,
    config: Mapping[str, Any] | None = None,
    fields: Sequence[str] = ("status",),
    field_data: Mapping[str, Any] | None = None,
    atomic: bool = True,
    batch_size: int = 10,
    kind: str = "update",
) -> Any:
    """Launch a bulk task over ``queryset`` of books, the way a view would."""
    update = kind == "update"
    return launch_request(
        queryset,
        user=user,
        operation=kind,
        fields_to_update=list(fields) if update else (),
        field_data=dict(field_data if field_data is not None else status_data()) if update else {},
        bulk_fields=["status", "genre", "author", "price", "tags", "is_available"] if update else (),
        backend_path=backend or "",
        backend_config=config or {},
        atomic=atomic,
        batch_size=batch_size,
        view_name="books",
    )


def wait_for(predicate: Callable[[], Any], timeout: float = 30, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout} s waiting for {predicate}.")
        time.sleep(interval)


# --- CLI for a database shared with a real worker ------------------------------------------------


def _task_json(task_id: int) -> dict[str, Any]:
    from powercrud.jobs.progress import live_progress
    from powercrud.models import BulkTask, RowLock

    task = live_progress([BulkTask.objects.get(pk=task_id)])[0]
    return {
        "id": task.pk,
        "status": task.status,
        "done": task.done,
        "total": task.total,
        "success_count": task.success_count,
        "failure_count": task.failure_count,
        "message": task.message,
        "errors": task.errors,
        "attempts": task.attempts,
        "heartbeat_at": task.heartbeat_at.isoformat() if task.heartbeat_at else None,
        "locks": RowLock.objects.filter(task_id=task_id).count(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    import django

    django.setup()
    from django.core.management import call_command

    from tests.testapp.models import Book

    parser = argparse.ArgumentParser(prog="python -m tests.async_helpers")
    sub = parser.add_subparsers(dest="cmd", required=True)
    setup = sub.add_parser("setup", help="migrate and add N books")
    setup.add_argument("--books", type=int, default=100)
    launch = sub.add_parser("launch", help="launch a bulk task over books whose title starts with PREFIX")
    launch.add_argument("--prefix", default="Book")
    launch.add_argument("--status", default="archived")
    launch.add_argument("--backend", default=None)
    launch.add_argument("--config", default="{}")
    launch.add_argument("--batch-size", type=int, default=10)
    launch.add_argument("--per-row", action="store_true")
    launch.add_argument("--kind", default="update")
    status = sub.add_parser("status", help="print a task as JSON")
    status.add_argument("task_id", type=int)
    watch = sub.add_parser("watch", help="print the task every 0.05 s (JSON lines) until it finishes")
    watch.add_argument("task_id", type=int)
    watch.add_argument("--timeout", type=float, default=60)
    sub.add_parser("counts", help="print how many books have each status, and the lock count")
    hold = sub.add_parser("hold", help="lock the books of PREFIX for a running run of no worker's")
    hold.add_argument("--prefix", default="Book")
    release = sub.add_parser("release", help="end a run made by hold, freeing its rows")
    release.add_argument("task_id", type=int)
    ledger = sub.add_parser("ledger", help="print a run's ledger rows by outcome")
    ledger.add_argument("task_id", type=int)
    cleanup = sub.add_parser("cleanup", help="powercrud_cleanup")
    cleanup.add_argument("--older-than", type=float, default=None)
    args = parser.parse_args(argv)

    if args.cmd == "setup":
        call_command("migrate", verbosity=0)
        make_books(args.books)
        print(json.dumps({"books": Book.objects.count()}))
    elif args.cmd == "launch":
        queryset = Book.objects.filter(title__startswith=args.prefix)
        task = launch_books(
            queryset,
            backend=args.backend,
            config=json.loads(args.config),
            field_data=status_data(args.status),
            atomic=not args.per_row,
            batch_size=args.batch_size,
            kind=args.kind,
        )
        print(json.dumps({"id": task.pk, "total": task.total}))
    elif args.cmd == "status":
        print(json.dumps(_task_json(args.task_id)))
    elif args.cmd == "watch":
        from django.db import connection

        start = time.monotonic()
        while time.monotonic() - start < args.timeout:
            seen = _task_json(args.task_id)
            seen["t"] = round(time.monotonic() - start, 3)
            print(json.dumps(seen), flush=True)
            if seen["status"] in ("succeeded", "failed", "cancelled"):
                break
            connection.close()  # a fresh snapshot next time (SQLite WAL readers)
            time.sleep(0.05)
    elif args.cmd == "counts":
        from django.db.models import Count

        from powercrud.models import RowLock

        counts = dict(Book.objects.values_list("status").annotate(n=Count("pk")).order_by())
        print(
            json.dumps({"statuses": counts, "books": sum(counts.values()), "locks": RowLock.objects.count()})
        )
    elif args.cmd == "hold":
        from powercrud.jobs.locks import acquire_locks
        from powercrud.models import BulkTask

        holder = BulkTask.objects.create(kind="update", model_label="testapp.book", status="running")
        locked = acquire_locks(holder, Book.objects.filter(title__startswith=args.prefix))
        print(json.dumps({"id": holder.pk, "locked": locked}))
    elif args.cmd == "release":
        from powercrud.jobs.monitor import finish_task
        from powercrud.models import BulkTask

        holder = BulkTask.objects.get(pk=args.task_id)
        print(json.dumps({"released": finish_task(holder, "cancelled", message="Released.")}))
    elif args.cmd == "ledger":
        from django.db.models import Count

        from powercrud.models import RunRow

        rows = RunRow.objects.filter(run_id=args.task_id).values_list("outcome").annotate(n=Count("id"))
        print(json.dumps(dict(rows.order_by())))
    elif args.cmd == "cleanup":
        from powercrud.jobs.monitor import fail_stale_tasks

        print(json.dumps({"failed": fail_stale_tasks(args.older_than)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())


class _RefuseTitlesService(BulkUpdateService):
    """Refuses every row whose title is in ``refuse`` (set per backend)."""

    refuse: frozenset[str] = frozenset()
    prefix: str = ""

    def validate_row(self, instance: Any, new_values: Mapping[str, Any], context: BulkContext) -> None:
        if instance.title in self.refuse or (self.prefix and instance.title.startswith(self.prefix)):
            raise ValidationError({"status": f"“{instance.title}” may not change."})


class RefuseTitlesBackend(DefaultBulkUpdatePersistenceBackend):
    """The default backend, refusing rows whose title is in ``config["refuse"]`` or starts with
    ``config["prefix"]`` (row errors)."""

    def persist_bulk_update(self, **kwargs: Any) -> BulkResult:
        rules = {"refuse": frozenset(self.config.get("refuse", ())), "prefix": self.config.get("prefix", "")}
        service = type("Refusing", (_RefuseTitlesService,), rules)()
        return service.apply(**kwargs)


def freeze_now(task: Any) -> Any:
    """The worker's first step alone: lock ``task``'s stored selection now, as its worker's
    ``run_bulk_task`` does first (which then finds it done); returns the task."""
    from powercrud.jobs.freeze import freeze_selection
    from powercrud.jobs.progress import ProgressWriter

    freeze_selection(task, ProgressWriter(task))
    return task
