"""Live progress, heartbeat and cancel requests of running bulk tasks, visible mid-transaction.

An async bulk run is one database transaction (the guard in ``run_bulk_update`` wraps the
whole run, and the worker records the outcome in the same transaction). Anything the worker
writes through its own connection is therefore invisible until the end. So progress goes
around that transaction, to a *live store*:

* **PostgreSQL (and other server databases)**: ``DatabaseLiveStore`` updates the task's own
  ``done``, ``total`` and ``heartbeat_at`` columns through a second, autocommit connection
  to the same database. The dashboard reads the columns as usual. The big transaction never
  touches the task row until it finishes, so the two never wait on each other.
* **SQLite**: a write transaction holds the whole database file, so no other connection can
  write a byte to it until the run ends. ``SidecarLiveStore`` keeps progress in a separate
  small SQLite file next to the database (``<database>-powercrud-live``, WAL mode, one row
  per running task), which any process on the machine can write and read at any time. Readers
  merge it into the task with ``live_progress(tasks)``. Cancel requests for running tasks
  travel the same way, so cancelling never waits for the running transaction.

A run also reports its *phase*, a line for people ("Locking 1,000,000 rows…" while the worker
freezes the selection, empty while it writes): the task's ``message`` column on PostgreSQL
(blank while a run is running, its outcome once it ends), the sidecar's ``phase`` on SQLite,
merged into ``message`` by ``live_progress()``.

``ProgressWriter`` is the ``progress_callback(done, total)`` the worker hands the service.
The callback only records the numbers; a small thread writes them at most every
``MIN_INTERVAL`` seconds and at least every ``HEARTBEAT_INTERVAL`` seconds while the task
runs (also in the middle of a long batch, which is what keeps the heartbeat fresh), and
brings back the task's cancel flag. When the flag is set, the next callback raises
``TaskCancelled``, which stops the service at the next batch.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import logging
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import DatabaseError, connections, models, router
from django.utils import timezone

from powercrud.models import BulkTask

__all__ = [
    "HEARTBEAT_INTERVAL",
    "MIN_INTERVAL",
    "DatabaseLiveStore",
    "LiveProgress",
    "LiveStore",
    "ProgressWriter",
    "SidecarLiveStore",
    "TaskCancelled",
    "cancel_requested",
    "cancel_running",
    "forget",
    "live_progress",
    "live_store",
    "read_live",
    "sidecar_path",
]

logger = logging.getLogger("powercrud.jobs.progress")

MIN_INTERVAL = 0.2
"""Seconds between two progress writes, at least (so at most five writes per second)."""

HEARTBEAT_INTERVAL = 0.4
"""Seconds between two writes while a task runs, at most (even when ``done`` has not moved):
whoever watches a run sees it move, or at least live, twice a second or more."""


class TaskCancelled(Exception):
    """Raised by a ``ProgressWriter`` callback once the task's cancel flag is set."""


@dataclass(frozen=True)
class LiveProgress:
    """What the live store knows about one running task."""

    done: int
    total: int
    heartbeat_at: datetime.datetime | None
    cancel_requested: bool = False
    phase: str = ""


def _stamp(task: BulkTask) -> str:
    """Tells two tasks with the same id apart (ids are reused after a rollback on SQLite)."""
    return task.created_at.isoformat() if task.created_at else ""


class LiveStore:
    """Where running tasks report progress, outside the worker's transaction."""

    def write(self, task: BulkTask, done: int, total: int, phase: str = "") -> bool:
        """Record progress, the run's phase and a heartbeat; returns whether a cancel has been
        requested."""
        raise NotImplementedError

    def read(self, tasks: Iterable[BulkTask]) -> dict[int, LiveProgress]:
        """Progress of ``tasks`` held outside their rows (empty when the rows hold it)."""
        raise NotImplementedError

    def request_cancel(self, task: BulkTask) -> None:
        """Ask the running ``task`` to stop at its next batch."""
        raise NotImplementedError

    def forget(self, task: BulkTask) -> None:
        """Drop what is kept for a finished ``task``."""

    def close(self) -> None:
        """Release the store's connection."""


def _column(name: str) -> str:
    field = BulkTask._meta.get_field(name)
    assert isinstance(field, models.Field) and field.column
    return field.column


class DatabaseLiveStore(LiveStore):
    """Writes the task row itself through a second autocommit connection (server databases).

    The connection belongs to the thread that first writes; create one store per thread.
    """

    def __init__(self, using: str) -> None:
        self.using = using
        self._connection: Any = None

    def _cursor(self) -> Any:
        if self._connection is None:
            self._connection = connections.create_connection(self.using)
        return self._connection.cursor()

    def write(self, task: BulkTask, done: int, total: int, phase: str = "") -> bool:
        connection = self._connection or connections[self.using]
        qn = connection.ops.quote_name
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        table = qn(BulkTask._meta.db_table)
        col = {
            name: qn(_column(name))
            for name in ("id", "done", "total", "heartbeat_at", "message", "status", "cancel_requested")
        }
        try:
            with self._cursor() as cursor:
                cursor.execute(
                    f"UPDATE {table} SET {col['done']} = %s, {col['total']} = %s, "
                    f"{col['heartbeat_at']} = %s, {col['message']} = %s "
                    f"WHERE {col['id']} = %s AND {col['status']} = %s",
                    [done, total, now, phase, task.pk, BulkTask.Status.RUNNING],
                )
                cursor.execute(
                    f"SELECT {col['cancel_requested']} FROM {table} WHERE {col['id']} = %s", [task.pk]
                )
                row = cursor.fetchone()
        except DatabaseError:
            logger.warning("Could not record progress of bulk task #%s.", task.pk, exc_info=True)
            self.close()
            return False
        return bool(row and row[0])

    def read(self, tasks: Iterable[BulkTask]) -> dict[int, LiveProgress]:
        return {}

    def request_cancel(self, task: BulkTask) -> None:
        BulkTask.objects.using(self.using).filter(pk=task.pk).update(cancel_requested=True)

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(DatabaseError):
                self._connection.close()
            self._connection = None


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS powercrud_live ("
    " task_id INTEGER PRIMARY KEY, stamp TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0,"
    " total INTEGER NOT NULL DEFAULT 0, heartbeat REAL, cancel INTEGER NOT NULL DEFAULT 0,"
    " phase TEXT NOT NULL DEFAULT '')"
)


class SidecarLiveStore(LiveStore):
    """A small SQLite file beside an SQLite database, writable while the database is busy."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._connection: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(self.path, timeout=5, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(_SCHEMA)
            columns = {row[1] for row in connection.execute("PRAGMA table_info(powercrud_live)")}
            if "phase" not in columns:  # a sidecar made by an earlier release
                with contextlib.suppress(sqlite3.OperationalError):  # another process added it
                    connection.execute("ALTER TABLE powercrud_live ADD COLUMN phase TEXT NOT NULL DEFAULT ''")
            self._connection = connection
        return self._connection

    def write(self, task: BulkTask, done: int, total: int, phase: str = "") -> bool:
        try:
            db = self._db()
            db.execute(
                "INSERT INTO powercrud_live (task_id, stamp, done, total, heartbeat, phase) "
                "VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (task_id) DO UPDATE SET done = excluded.done, total = excluded.total, "
                "heartbeat = excluded.heartbeat, phase = excluded.phase, "
                "cancel = CASE WHEN stamp = excluded.stamp THEN cancel ELSE 0 END, stamp = excluded.stamp",
                (task.pk, _stamp(task), done, total, time.time(), phase),
            )
            row = db.execute("SELECT cancel FROM powercrud_live WHERE task_id = ?", (task.pk,)).fetchone()
        except sqlite3.Error:
            logger.warning(
                "Could not record progress of bulk task #%s in %s.", task.pk, self.path, exc_info=True
            )
            self.close()
            return False
        return bool(row and row[0])

    def read(self, tasks: Iterable[BulkTask]) -> dict[int, LiveProgress]:
        wanted = {task.pk: _stamp(task) for task in tasks}
        if not wanted:
            return {}
        found: dict[int, LiveProgress] = {}
        ids = list(wanted)
        try:
            db = self._db()
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                rows = db.execute(
                    "SELECT task_id, stamp, done, total, heartbeat, cancel, phase FROM powercrud_live "
                    f"WHERE task_id IN ({', '.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                for task_id, stamp, done, total, heartbeat, cancel, phase in rows:
                    if wanted.get(task_id) != stamp:
                        continue
                    at = (
                        None
                        if heartbeat is None
                        else datetime.datetime.fromtimestamp(heartbeat, tz=datetime.UTC)
                    )
                    found[task_id] = LiveProgress(done, total, at, bool(cancel), phase or "")
        except sqlite3.Error:
            logger.warning("Could not read live progress from %s.", self.path, exc_info=True)
            self.close()
        return found

    def request_cancel(self, task: BulkTask) -> None:
        self._db().execute(
            "INSERT INTO powercrud_live (task_id, stamp, cancel) VALUES (?, ?, 1) "
            "ON CONFLICT (task_id) DO UPDATE SET cancel = 1 WHERE stamp = excluded.stamp",
            (task.pk, _stamp(task)),
        )

    def forget(self, task: BulkTask) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db().execute("DELETE FROM powercrud_live WHERE task_id = ?", (task.pk,))

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(sqlite3.Error):
                self._connection.close()
            self._connection = None


_temp_files: dict[str, str] = {}


def _remove_temp_files() -> None:
    for path in _temp_files.values():
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.unlink(path + suffix)


atexit.register(_remove_temp_files)


def sidecar_path(using: str) -> str:
    """The sidecar file of SQLite database ``using``: ``<database file>-powercrud-live``.

    An in-memory database (tests) gets a file in the temp directory, private to this process.
    """
    connection = connections[using]
    if connection.is_in_memory_db():  # type: ignore[attr-defined]
        if using not in _temp_files:
            name = f"powercrud-live-{os.getpid()}-{using}.sqlite3"
            path = str(Path(tempfile.gettempdir()) / name)
            for suffix in ("", "-wal", "-shm"):  # left by an earlier process with this pid
                with contextlib.suppress(OSError):
                    os.unlink(path + suffix)
            _temp_files[using] = path
        return _temp_files[using]
    return f"{connection.settings_dict['NAME']}-powercrud-live"


def live_store(using: str | None = None) -> LiveStore:
    """A new live store for the database that holds bulk tasks (one per thread; close it)."""
    using = using or router.db_for_write(BulkTask)
    if connections[using].vendor == "sqlite":
        return SidecarLiveStore(sidecar_path(using))
    return DatabaseLiveStore(using)


def live_progress(tasks: Iterable[BulkTask]) -> list[BulkTask]:
    """Bring running ``tasks`` up to date with the live store, in place; returns them.

    Call it on whatever the dashboard shows (a list page, a detail page, a progress poll):
    on SQLite it fills ``done``, ``total``, ``heartbeat_at``, ``cancel_requested`` and the phase
    (``message``) from the sidecar; on PostgreSQL the rows are already current and it costs
    nothing.
    """
    tasks = list(tasks)
    running = [task for task in tasks if task.status == BulkTask.Status.RUNNING]
    if not running:
        return tasks
    store = live_store()
    try:
        found = store.read(running)
    finally:
        store.close()
    for task in running:
        live = found.get(task.pk)
        if live is None:
            continue
        if live.heartbeat_at is not None:
            task.done, task.total = live.done, live.total or task.total
            if task.heartbeat_at is None or live.heartbeat_at > task.heartbeat_at:
                task.heartbeat_at = live.heartbeat_at
            task.message = live.phase
        task.cancel_requested = task.cancel_requested or live.cancel_requested
    return tasks


class ProgressWriter:
    """``progress_callback(done, total)`` for a running task, throttled and thread-backed.

    Use as a context manager around the run. The callback raises ``TaskCancelled`` once the
    task's cancel flag has been seen. ``phase``: the line people see while the run is not
    writing rows yet (``bulk.messages.locking_rows()``), written with the numbers. ``updates``
    holds the monotonic time of every write.
    """

    def __init__(
        self,
        task: BulkTask,
        *,
        min_interval: float = MIN_INTERVAL,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        using: str | None = None,
    ) -> None:
        self.task = task
        self.min_interval = min_interval
        self.heartbeat_interval = heartbeat_interval
        self.using = using or router.db_for_write(BulkTask)
        self.done = 0
        self.total = task.total
        self.phase = ""
        self.updates: list[float] = []
        self.cancelled = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        if self.cancelled.is_set():
            raise TaskCancelled(f"Bulk task #{self.task.pk} was cancelled.")

    def __enter__(self) -> ProgressWriter:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"powercrud-progress-{self.task.pk}", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Write the last numbers and stop the thread (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        store = live_store(self.using)
        written: tuple[int, int, str] | None = None
        last = float("-inf")
        try:
            while True:
                stopping = self._stop.wait(self.min_interval)
                now = time.monotonic()
                current = (self.done, self.total, self.phase)
                due = now - last >= self.heartbeat_interval
                if stopping or due or (current != written and now - last >= self.min_interval):
                    if store.write(self.task, current[0], current[1], phase=current[2]):
                        self.cancelled.set()
                    written, last = current, now
                    self.updates.append(now)
                if stopping:
                    return
        finally:
            store.close()


def cancel_requested(task: BulkTask) -> bool:
    """Whether someone asked ``task`` to stop: its record's flag, or the live store's (one
    query on PostgreSQL, one query and a sidecar read on SQLite)."""
    flagged = BulkTask.objects.using(router.db_for_write(BulkTask)).filter(pk=task.pk, cancel_requested=True)
    if flagged.exists():
        return True
    live = read_live(task)
    return live is not None and live.cancel_requested


def read_live(task: BulkTask) -> LiveProgress | None:
    """The live store's view of one task (None when it holds nothing for it)."""
    store = live_store()
    try:
        return store.read([task]).get(task.pk)
    finally:
        store.close()


def forget(task: BulkTask) -> None:
    """Drop the live store's data for a finished ``task``."""
    store = live_store()
    try:
        store.forget(task)
    finally:
        store.close()


def cancel_running(task: BulkTask) -> None:
    """Ask a running ``task`` to stop, through the live store (never waits for the worker)."""
    store = live_store()
    try:
        store.request_cancel(task)
    finally:
        store.close()
