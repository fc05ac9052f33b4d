"""Chunked per-row runs (``powercrud.jobs.chunks``) through a real ``qcluster`` of two workers.

The cluster and the test share a scratch database (SQLite in WAL mode with the ORM broker by
default; PostgreSQL with ``POWERCRUD_TEST_DB=postgres``, Redis with ``POWERCRUD_TEST_REDIS``),
set up by tests/reliability/settings_worker.py (two workers, a 3 s heartbeat timeout). The
test reads and writes it only through ``python -m tests.test_chunked_workers CMD`` processes
(this module's ``main()``), the way a web server and a cron job would.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.async_helpers import wait_for
from tests.reliability.test_worker_faults import FaultWorker

pytestmark = pytest.mark.worker

ME = "tests.test_chunked_workers"
SLOW = "tests.reliability.helpers.SlowBackend"


class ChunkWorker(FaultWorker):
    """The reliability suite's worker (two workers, short timeouts), driven by this module."""

    def cli(self, *args: str, timeout: float = 60, env: dict[str, str] | None = None) -> Any:
        import subprocess

        done = subprocess.run(
            [sys.executable, "-m", ME, *args],
            cwd=Path(__file__).resolve().parent.parent,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode:
            raise AssertionError(f"{args} failed:\n{done.stdout}\n{done.stderr}\n{self.cluster_log()}")
        return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")][-1]

    def wait_end(self, task_id: int, timeout: float = 60, cleanup: bool = False) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            if cleanup:
                self.cli("cleanup")
            seen = self.cli("status", str(task_id))
            return seen if seen["status"] in ("succeeded", "failed", "cancelled") else None

        return wait_for(ended, timeout=timeout, interval=0.3)


@pytest.fixture(scope="module")
def chunked() -> Iterator[ChunkWorker]:
    work_dir = Path(tempfile.mkdtemp(prefix="powercrud-chunked-"))
    runner = ChunkWorker(work_dir)
    try:
        runner.create_database(books=500)  # "Book 00000" ... "Book 00499": 100 per test prefix
        runner.start()
        yield runner
    finally:
        runner.kill(signal.SIGKILL)
        runner.drop_database()
        shutil.rmtree(work_dir, ignore_errors=True)


def launch(worker: ChunkWorker, prefix: str, *, chunk: int = 20, **config: Any) -> int:
    launched = worker.cli("launch", "--prefix", prefix, "--chunk", str(chunk), "--config", json.dumps(config))
    return int(launched["id"])


def test_a_chunked_per_row_run_on_two_workers_ends_with_exact_counts_and_ledger(chunked: ChunkWorker) -> None:
    task_id = launch(chunked, "Book 000", chunk=20, sleep=0.25)  # 5 chunks of 4 batches
    final = chunked.cli("watch", str(task_id), timeout=90)
    assert final["status"] == "succeeded", final
    assert (final["total"], final["done"], final["success_count"], final["failure_count"]) == (
        100,
        100,
        100,
        0,
    )
    assert final["message"] == "Updated 100 of 100 rows."
    assert final["locks"] == 0
    assert final["chunks"] == {"succeeded": 5}
    assert final["chunk_attempts"] == [1, 1, 1, 1, 1]
    # PostgreSQL: both workers ran chunks at the same time. SQLite has one writer: a chunk's
    # transaction holds the database, so the other worker mostly waits for it to commit.
    assert final["most_running"] >= (2 if chunked.postgres else 1), final
    assert chunked.cli("ledger", str(task_id)) == {"changed": 100, "rows": 100}
    assert chunked.cli("counts", "--prefix", "Book 000")["statuses"] == {"archived": 100}


def test_a_chunk_delivered_again_runs_once(chunked: ChunkWorker) -> None:
    task_id = launch(chunked, "Book 001", chunk=25, sleep=0.05)
    wait_for(lambda: chunked.cli("status", str(task_id))["chunks"], timeout=30, interval=0.1)
    chunked.cli("enqueue-chunks", str(task_id))  # every chunk's job a second time
    final = chunked.wait_end(task_id)
    assert final["status"] == "succeeded", final
    assert final["chunk_attempts"] == [1, 1, 1, 1]  # each chunk was claimed once
    time.sleep(1.5)  # the duplicates are taken and skipped meanwhile
    again = chunked.cli("status", str(task_id))
    assert again["chunk_attempts"] == [1, 1, 1, 1] and again["success_count"] == 100
    assert chunked.cli("ledger", str(task_id)) == {"changed": 100, "rows": 100}


def test_cancel_mid_run_stops_the_chunks_and_keeps_what_finished_chunks_wrote(chunked: ChunkWorker) -> None:
    task_id = launch(chunked, "Book 002", chunk=10, sleep=0.3)  # 10 chunks of 2 batches of 5
    wait_for(lambda: chunked.cli("status", str(task_id))["done"] >= 5, timeout=30, interval=0.1)
    chunked.cli("cancel", str(task_id))
    final = chunked.wait_end(task_id)
    assert final["status"] == "cancelled", final
    assert final["locks"] == 0
    assert "cancelled" in final["chunks"]
    written = chunked.cli("counts", "--prefix", "Book 002")["statuses"].get("archived", 0)
    assert written < 100  # the run stopped before the end
    ledger = chunked.cli("ledger", str(task_id))
    assert ledger.get("changed", 0) == written  # the ledger says exactly which rows were written
    assert ledger["rows"] == 100 and ledger.get("not_reached", 0) == 100 - written


def test_a_worker_killed_mid_chunk_has_its_chunk_run_again_and_the_run_succeeds(
    chunked: ChunkWorker,
) -> None:
    pidfile = chunked.work_dir / "chunk.pid"
    task_id = launch(chunked, "Book 003", chunk=50, sleep=0.4, pidfile=str(pidfile))  # 2 chunks of 10 batches
    pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text(), timeout=30))
    os.kill(pid, signal.SIGKILL)  # one worker, mid-chunk; the cluster replaces it
    final = chunked.wait_end(task_id, timeout=90, cleanup=True)
    assert final["status"] == "succeeded", (final, chunked.cluster_log())
    assert (final["total"], final["success_count"], final["locks"]) == (100, 100, 0)
    assert sorted(final["chunk_attempts"]) == [1, 2]  # the killed chunk ran again, once
    assert chunked.cli("ledger", str(task_id)) == {"changed": 100, "rows": 100}  # no row twice
    assert chunked.cli("counts", "--prefix", "Book 003")["statuses"] == {"archived": 100}


# --- CLI for the database shared with the cluster -------------------------------------------------


def _status(task_id: int) -> dict[str, Any]:
    from django.db.models import Count

    from powercrud.jobs.progress import live_progress
    from powercrud.models import BulkTask, RowLock, RunChunk

    task = live_progress([BulkTask.objects.get(pk=task_id)])[0]
    chunks = RunChunk.objects.filter(run_id=task_id)
    return {
        "id": task.pk,
        "status": task.status,
        "done": task.done,
        "total": task.total,
        "success_count": task.success_count,
        "failure_count": task.failure_count,
        "message": task.message,
        "locks": RowLock.objects.filter(task_id=task_id).count(),
        "chunks": dict(chunks.values_list("status").annotate(n=Count("id")).order_by()),
        "chunk_attempts": list(chunks.order_by("index").values_list("attempts", flat=True)),
    }


def _watch(task_id: int, timeout: float) -> dict[str, Any]:
    """Poll the run until it ends; the most chunks seen running at once, and the last status."""
    from django.db import connection

    most = 0
    deadline = time.monotonic() + timeout
    while True:
        seen = _status(task_id)
        most = max(most, seen["chunks"].get("running", 0))
        if seen["status"] in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
            return {**seen, "most_running": most}
        connection.close()  # a fresh snapshot next time (SQLite WAL readers)
        time.sleep(0.05)


def main(argv: Sequence[str] | None = None) -> int:
    import django

    django.setup()
    from django.core.management import call_command

    from tests.testapp.models import Book

    parser = argparse.ArgumentParser(prog=f"python -m {ME}")
    sub = parser.add_subparsers(dest="cmd", required=True)
    setup = sub.add_parser("setup")
    setup.add_argument("--books", type=int, default=100)
    launch_cmd = sub.add_parser("launch")
    launch_cmd.add_argument("--prefix", default="Book")
    launch_cmd.add_argument("--chunk", type=int, default=20)
    launch_cmd.add_argument("--config", default="{}")
    sub.add_parser("watch").add_argument("task_id", type=int)
    for name in ("status", "ledger", "cancel", "enqueue-chunks"):
        sub.add_parser(name).add_argument("task_id", type=int)
    counts = sub.add_parser("counts")
    counts.add_argument("--prefix", default="Book")
    sub.add_parser("cleanup")
    args = parser.parse_args(argv)

    if args.cmd == "setup":
        from tests.async_helpers import make_books

        call_command("migrate", verbosity=0)
        make_books(args.books)
        print(json.dumps({"books": Book.objects.count()}))
    elif args.cmd == "launch":
        from powercrud.bulk.request import BulkRequest
        from powercrud.jobs.launch import launch_bulk_task

        request = BulkRequest(
            operation="update",
            model_label="testapp.book",
            fields_to_update=("status",),
            field_data={"status": "archived"},
            bulk_fields=("status",),
            backend_path=SLOW,
            backend_config=json.loads(args.config),
            atomic=False,
            batch_size=5,
            view_name="books",
        )
        queryset = Book.objects.filter(title__startswith=args.prefix)
        task = launch_bulk_task(request, queryset, user=None, chunk_size=args.chunk)
        print(json.dumps({"id": task.pk}))
    elif args.cmd == "status":
        print(json.dumps(_status(args.task_id)))
    elif args.cmd == "watch":
        print(json.dumps(_watch(args.task_id, 60)))
    elif args.cmd == "ledger":
        from django.db.models import Count

        from powercrud.models import RunRow

        rows = RunRow.objects.filter(run_id=args.task_id)
        found = dict(rows.values_list("outcome").annotate(n=Count("id")).order_by())
        found["rows"] = rows.values("object_pk").distinct().count()
        print(json.dumps(found))
    elif args.cmd == "cancel":
        from powercrud.jobs.monitor import request_cancel

        print(json.dumps({"cancel_requested": request_cancel(args.task_id).cancel_requested}))
    elif args.cmd == "enqueue-chunks":
        from powercrud.jobs.chunks import CHUNK_FUNCTION
        from powercrud.jobs.runners import runner
        from powercrud.models import RunChunk

        ids = list(RunChunk.objects.filter(run_id=args.task_id).values_list("pk", flat=True))
        for chunk_id in ids:
            runner().enqueue(CHUNK_FUNCTION, chunk_id, name=f"duplicate-{chunk_id}")
        print(json.dumps({"enqueued": len(ids)}))
    elif args.cmd == "counts":
        from django.db.models import Count

        books = Book.objects.filter(title__startswith=args.prefix)
        print(json.dumps({"statuses": dict(books.values_list("status").annotate(n=Count("pk")).order_by())}))
    elif args.cmd == "cleanup":
        from powercrud.jobs.monitor import fail_stale_tasks

        print(json.dumps({"failed": fail_stale_tasks()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
