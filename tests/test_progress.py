"""``powercrud.jobs.progress``: live progress, heartbeat and cancel requests of a running bulk
task, written outside the worker's transaction and merged back into what the dashboard reads."""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from powercrud.jobs import progress
from powercrud.models import BulkTask
from tests.async_helpers import launch_books, make_books
from tests.testapp.models import Book

CREATED = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


class FakeStore(progress.LiveStore):
    """Records every write; answers "cancel requested" once ``cancel`` is set."""

    def __init__(self) -> None:
        self.writes: list[tuple[int, int]] = []
        self.phases: list[str] = []
        self.cancel = False
        self.closed = 0

    def write(self, task: BulkTask, done: int, total: int, phase: str = "") -> bool:
        self.writes.append((done, total))
        self.phases.append(phase)
        return self.cancel

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> FakeStore:
    """The live store every ``ProgressWriter`` of the test gets."""
    fake = FakeStore()
    monkeypatch.setattr(progress, "live_store", lambda using=None: fake)
    return fake


def unsaved_task(pk: int = 7, created_at: datetime.datetime = CREATED) -> BulkTask:
    return BulkTask(pk=pk, kind="update", model_label="testapp.book", total=10, created_at=created_at)


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[progress.SidecarLiveStore]:
    found = progress.SidecarLiveStore(tmp_path / "db.sqlite3-powercrud-live")
    yield found
    found.close()


# ----- ProgressWriter: throttled, heartbeat, cancel ------------------------------------------------


def test_the_callback_only_records_the_numbers(store: FakeStore) -> None:
    writer = progress.ProgressWriter(unsaved_task(), min_interval=10, heartbeat_interval=10)
    writer(3, 10)
    assert (writer.done, writer.total) == (3, 10)
    assert store.writes == []  # not started: nothing is written by the callback itself
    with writer:
        for done in range(4, 500):
            writer(done, 500)
        assert store.writes == []  # the thread waits min_interval before its first write
    assert store.writes == [(499, 500)]  # stopping writes the last numbers, once
    assert store.closed == 1
    assert len(writer.updates) == 1


def test_the_heartbeat_is_written_while_the_numbers_do_not_move(store: FakeStore) -> None:
    writer = progress.ProgressWriter(unsaved_task(), min_interval=0.02, heartbeat_interval=0.1)
    with writer:
        writer(2, 10)
        time.sleep(0.55)
    # One write for the change, then one heartbeat about every 0.1 s, then the final one.
    assert 4 <= len(store.writes) <= 9, store.writes
    assert set(store.writes) == {(2, 10)}
    gaps = [b - a for a, b in zip(writer.updates, writer.updates[1:], strict=False)]
    assert max(gaps[:-1]) < 0.3


def test_by_default_a_run_shows_progress_or_a_heartbeat_at_least_every_half_second(
    store: FakeStore,
) -> None:
    """Whoever watches a run sees a write at least every 0.5 s (issue 12's bar), whether the
    numbers move or not; and never more than five a second."""
    writer = progress.ProgressWriter(unsaved_task())
    with writer:
        for done in range(1, 8):
            writer(done, 10)
            time.sleep(0.15)  # moving
        time.sleep(1.0)  # a long batch: nothing moves
    gaps = [b - a for a, b in zip(writer.updates, writer.updates[1:], strict=False)]
    assert max(gaps[:-1]) <= 0.5, gaps
    assert min(gaps[:-1]) >= progress.MIN_INTERVAL * 0.9, gaps
    assert store.writes[-1] == (7, 10)


def test_a_cancel_flag_seen_by_the_writer_stops_the_next_callback(store: FakeStore) -> None:
    writer = progress.ProgressWriter(unsaved_task(), min_interval=10, heartbeat_interval=10)
    writer.start()
    writer(1, 10)
    store.cancel = True
    writer.stop()  # the last write brings the flag back
    assert writer.cancelled.is_set()
    with pytest.raises(progress.TaskCancelled, match=r"^Bulk task #7 was cancelled\.$"):
        writer(2, 10)
    writer.stop()  # idempotent
    assert store.writes == [(1, 10)]


def test_without_a_cancel_flag_the_callback_never_raises(store: FakeStore) -> None:
    with progress.ProgressWriter(unsaved_task(), min_interval=0.01, heartbeat_interval=0.02) as writer:
        for done in range(50):
            writer(done, 50)
            time.sleep(0.001)
    assert not writer.cancelled.is_set()
    assert store.writes[-1] == (49, 50)


@pytest.mark.django_db(transaction=True)
def test_progress_writer_throttles() -> None:
    make_books(1)
    task = launch_books(Book.objects.all())
    BulkTask.objects.filter(pk=task.pk).update(status="running")
    writer = progress.ProgressWriter(task, min_interval=0.05, heartbeat_interval=0.2)
    with writer:
        for done in range(2000):  # a callback storm: no write per call
            writer(done, 2000)
            time.sleep(0.0002)
        time.sleep(0.5)
    gaps = [b - a for a, b in zip(writer.updates, writer.updates[1:], strict=False)]
    assert len(writer.updates) < 40
    assert min(gaps) >= 0.04
    assert max(gaps) <= 0.3  # heartbeats while nothing moves
    live = progress.read_live(task)
    if connection.vendor == "sqlite":
        assert live is not None and live.done == 1999
    else:
        task.refresh_from_db()
        assert task.done == 1999


# ----- the SQLite sidecar ---------------------------------------------------------------------------


def test_the_sidecar_keeps_progress_and_a_heartbeat(sidecar: progress.SidecarLiveStore) -> None:
    task = unsaved_task()
    assert sidecar.read([task]) == {}
    before = timezone.now()
    assert sidecar.write(task, 4, 10) is False
    [(pk, live)] = sidecar.read([task, unsaved_task(pk=8)]).items()
    assert (pk, live.done, live.total, live.cancel_requested) == (7, 4, 10, False)
    assert live.heartbeat_at is not None and before - datetime.timedelta(seconds=1) <= live.heartbeat_at
    sidecar.write(task, 9, 10)
    assert sidecar.read([task])[7].done == 9
    assert sidecar.read([]) == {}


def test_a_cancel_request_reaches_the_next_write(sidecar: progress.SidecarLiveStore) -> None:
    task = unsaved_task()
    sidecar.write(task, 1, 10)
    sidecar.request_cancel(task)
    assert sidecar.read([task])[7].cancel_requested
    assert sidecar.write(task, 2, 10) is True
    assert sidecar.write(task, 3, 10) is True  # it stays requested


def test_a_reused_task_id_is_not_mistaken_for_the_old_task(sidecar: progress.SidecarLiveStore) -> None:
    old = unsaved_task(created_at=CREATED)
    sidecar.write(old, 5, 10)
    sidecar.request_cancel(old)
    new = unsaved_task(created_at=CREATED + datetime.timedelta(minutes=1))  # same id after a rollback
    assert sidecar.read([new]) == {}
    assert sidecar.write(new, 1, 3) is False  # the old task's cancel request does not carry over
    assert sidecar.read([new])[7].done == 1
    assert sidecar.read([old]) == {}


def test_forget_drops_a_finished_task(sidecar: progress.SidecarLiveStore) -> None:
    task = unsaved_task()
    sidecar.write(task, 10, 10)
    sidecar.forget(task)
    assert sidecar.read([task]) == {}


def test_a_sidecar_that_cannot_be_opened_fails_soft(tmp_path: Path) -> None:
    broken = progress.SidecarLiveStore(tmp_path / "missing-folder" / "live")
    assert broken.write(unsaved_task(), 1, 2) is False  # logged, never raised into the run
    assert broken.read([unsaved_task()]) == {}


# ----- what the dashboard reads -----------------------------------------------------------------------


@pytest.fixture
def tasks(transactional_db: None) -> dict[str, BulkTask]:
    """A running and a queued task (committed, so the live store's own connection sees them)."""
    running = BulkTask.objects.create(kind="update", model_label="testapp.book", status="running", total=10)
    queued = BulkTask.objects.create(kind="update", model_label="testapp.book", total=10)
    return {"running": running, "queued": queued}


def dashboard_view(*pks: int) -> list[BulkTask]:
    """What a dashboard page shows: the rows, brought up to date from the live store."""
    return progress.live_progress(BulkTask.objects.filter(pk__in=pks).order_by("pk"))


def test_a_dashboard_sees_the_live_progress_of_a_running_task(tasks: dict[str, BulkTask]) -> None:
    running, queued = tasks["running"], tasks["queued"]
    store = progress.live_store()
    try:
        assert store.write(running, 6, 12) is False
        assert store.write(queued, 3, 10) is False
    finally:
        store.close()
    seen_running, seen_queued = dashboard_view(running.pk, queued.pk)
    assert (seen_running.done, seen_running.total, seen_running.percent) == (6, 12, 50)
    assert seen_running.heartbeat_at is not None
    assert (seen_queued.done, seen_queued.heartbeat_at) == (0, None)  # only running tasks move


def test_a_dashboard_sees_the_phase_of_a_running_task_then_its_progress(tasks: dict[str, BulkTask]) -> None:
    running = tasks["running"]
    store = progress.live_store()
    try:
        store.write(running, 0, 12, phase="Locking 12 rows…")
        [seen] = dashboard_view(running.pk)
        assert (seen.message, seen.done, seen.total) == ("Locking 12 rows…", 0, 12)
        store.write(running, 3, 12)  # writing rows: no phase
    finally:
        store.close()
    [seen] = dashboard_view(running.pk)
    assert (seen.message, seen.done) == ("", 3)


def test_the_writer_writes_the_phase_with_the_numbers(store: FakeStore) -> None:
    writer = progress.ProgressWriter(unsaved_task(), min_interval=10, heartbeat_interval=10)
    with writer:
        writer.phase = "Locking 10 rows…"
        writer(0, 10)
    assert (store.writes, store.phases) == ([(0, 10)], ["Locking 10 rows…"])


def test_a_sidecar_of_an_earlier_release_gains_the_phase_column(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old-powercrud-live"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE powercrud_live (task_id INTEGER PRIMARY KEY, stamp TEXT NOT NULL, done INTEGER NOT "
        "NULL DEFAULT 0, total INTEGER NOT NULL DEFAULT 0, heartbeat REAL, cancel INTEGER NOT NULL DEFAULT 0)"
    )
    old.commit()
    old.close()
    store = progress.SidecarLiveStore(path)
    try:
        task = unsaved_task()
        assert store.write(task, 0, 10, phase="Locking 10 rows…") is False
        assert store.read([task])[task.pk].phase == "Locking 10 rows…"
    finally:
        store.close()


def test_a_cancel_request_travels_to_the_running_task(tasks: dict[str, BulkTask]) -> None:
    running = tasks["running"]
    store = progress.live_store()
    try:
        store.write(running, 1, 10)
        progress.cancel_running(running)
        assert store.write(running, 2, 10) is True
    finally:
        store.close()
    [seen] = dashboard_view(running.pk)
    assert seen.cancel_requested


def test_an_older_live_heartbeat_does_not_move_the_rows_back(tasks: dict[str, BulkTask]) -> None:
    running = tasks["running"]
    later = timezone.now() + datetime.timedelta(hours=1)
    BulkTask.objects.filter(pk=running.pk).update(heartbeat_at=later)
    store = progress.live_store()
    try:
        store.write(running, 2, 10)
    finally:
        store.close()
    [seen] = dashboard_view(running.pk)
    if connection.vendor == "sqlite":
        assert seen.heartbeat_at == later  # the sidecar's older beat is not taken
        assert seen.done == 2
    else:
        assert seen.heartbeat_at < later  # the row itself was written, now


def test_the_store_matches_the_database() -> None:
    store = progress.live_store()
    try:
        if connection.vendor == "sqlite":
            assert isinstance(store, progress.SidecarLiveStore)
            assert store.path == progress.sidecar_path("default")
            assert progress.sidecar_path("default").endswith(f"powercrud-live-{os.getpid()}-default.sqlite3")
        else:
            assert isinstance(store, progress.DatabaseLiveStore)
    finally:
        store.close()
