"""The async path at 100,000 rows: memory stays flat and progress is written a few times a
second, not once per row.

The worker function runs in this process (``run_bulk_task``) under ``tracemalloc``, the
same code a ``qcluster`` worker runs; the live-store writes (the side connection on
PostgreSQL, the side file on SQLite) are counted as they happen.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from powercrud.jobs import progress
from powercrud.jobs.worker import run_bulk_task
from powercrud.models import BulkTask, RowLock
from tests.async_helpers import launch_request
from tests.testapp.models import Author, Book

pytestmark = pytest.mark.django_db(transaction=True)  # the side connection must see the task

MB = 1024 * 1024


def seed(count: int, prefix: str) -> None:
    """``count`` draft books titled ``<prefix>000001``..., in one INSERT ... SELECT."""
    author = Author.objects.create(name=f"Load {prefix}")
    qn = connection.ops.quote_name
    columns = ", ".join(qn(c) for c in ("title", "author_id", "status", "price", "is_available"))
    table = qn(Book._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT %s || lpad(g::text, 6, '0'), %s, 'draft', 10, true "
                "FROM generate_series(1, %s) AS g",
                [prefix, author.pk, count],
            )
        else:
            cursor.execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %s) "
                f"INSERT INTO {table} ({columns}) "
                "SELECT %s || substr('00000' || i, -6), %s, 'draft', 10, 1 FROM n",
                [count, prefix, author.pk],
            )


@pytest.fixture
def live_writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, int, float]]]:
    """Every (done, total, time) the progress writer hands to the live store, as it happens."""
    writes: list[tuple[int, int, float]] = []
    store_class = type(progress.live_store())
    real_write = store_class.write

    def counting_write(self: Any, task: BulkTask, done: int, total: int, phase: str = "") -> bool:
        writes.append((done, total, time.monotonic()))
        return real_write(self, task, done, total, phase)

    monkeypatch.setattr(store_class, "write", counting_write)
    yield writes


def run_measured(prefix: str) -> tuple[BulkTask, int, float]:
    """Launch an all-or-nothing edit of two fields over the ``prefix`` books and run it."""
    task = launch_request(
        Book.objects.filter(title__startswith=prefix),
        operation="update",
        user=None,
        fields_to_update=["status", "price"],
        field_data={"status": "published", "price": "12.50"},
        bulk_fields=["status", "price"],
    )
    tracemalloc.start()
    started = time.monotonic()
    try:
        assert run_bulk_task(task.pk) == "succeeded"
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    task.refresh_from_db()
    return task, peak, elapsed


def test_a_100000_row_task_runs_in_flat_memory_with_few_progress_writes(
    live_writes: list[tuple[int, int, float]],
) -> None:
    seed(1_000, "S")
    seed(100_000, "L")
    small, small_peak, _ = run_measured("S")
    live_writes.clear()

    big, big_peak, elapsed = run_measured("L")
    assert (big.status, big.total, big.done, big.success_count) == ("succeeded", 100_000, 100_000, 100_000)
    assert Book.objects.filter(title__startswith="L", status="published").count() == 100_000
    assert not RowLock.objects.exists()

    # Memory: what 99,000 more rows cost the worker (the design's bar: within 30 MB).
    extra = big_peak - small_peak
    assert extra < 30 * MB, f"100,000 rows peaked {big_peak / MB:.1f} MB, 1,000 rows {small_peak / MB:.1f} MB"

    # Progress: 100 batches of 1,000 rows, but at most one write per MIN_INTERVAL (plus the first
    # and the last), never one per row or per batch.
    assert live_writes[-1][:2] == (100_000, 100_000)
    assert len(live_writes) <= elapsed / progress.MIN_INTERVAL + 3, (len(live_writes), elapsed)
    assert len(live_writes) < 100_000 / 1000, len(live_writes)
    dones = [done for done, _, _ in live_writes]
    assert dones == sorted(dones)  # never backwards
    # ... and often enough to show movement and keep the heartbeat fresh (every HEARTBEAT_INTERVAL,
    # with half a second of slack for a loaded machine's scheduler).
    times = [at for _, _, at in live_writes]
    assert max(b - a for a, b in zip(times, times[1:], strict=False)) < progress.HEARTBEAT_INTERVAL + 0.5
    print(
        f"\n100,000 rows: {elapsed:.1f} s, peak {big_peak / MB:.1f} MB "
        f"(1,000 rows: {small_peak / MB:.1f} MB), {len(live_writes)} progress writes"
    )
