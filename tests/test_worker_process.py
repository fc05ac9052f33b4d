"""Async bulk tasks through a real ``manage.py qcluster`` process.

The test and the worker share a database (tests/settings_worker.py): a file-based SQLite
database in WAL mode with the ORM broker by default; PostgreSQL with
``POWERCRUD_TEST_DB=postgres``; the Redis broker with ``POWERCRUD_TEST_REDIS=redis://...``.
The test drives that database through ``python -m tests.async_helpers`` subprocesses, so it
sees exactly what another process (a web server, the dashboard) would see.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.worker

ROOT = Path(__file__).resolve().parent.parent
H = "tests.async_helpers"
FINISHED = ("succeeded", "failed", "cancelled")


class Worker:
    """A scratch database, a ``qcluster`` on it, and helpers run as separate processes."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        tag = f"{os.getpid()}_{int(time.time() * 1000) % 10**8}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings_worker",
            "POWERCRUD_WORKER_DIR": str(work_dir),
            "POWERCRUD_WORKER_DB": f"powercrud_worker_{tag}",
            "POWERCRUD_WORKER_CLUSTER": f"powercrud-test-{tag}",
            "PYTHONUNBUFFERED": "1",
        }
        self.postgres = os.environ.get("POWERCRUD_TEST_DB") == "postgres"
        self.cluster: subprocess.Popen[bytes] | None = None
        self.log = work_dir / "qcluster.log"

    def helper(self, *args: str, timeout: float = 60) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", H, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode:
            raise AssertionError(f"{args} failed:\n{done.stdout}\n{done.stderr}\n{self.cluster_log()}")
        lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        return lines if args[0] == "watch" else lines[-1]

    def _postgres(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            host=os.environ.get("PGHOST", "127.0.0.1"),
            port=os.environ.get("PGPORT", "5432"),
            user=os.environ.get("PGUSER", "postgres"),
            dbname="postgres",
            autocommit=True,
        ) as conn:
            conn.execute(sql)

    def create_database(self, books: int) -> None:
        if self.postgres:
            self._postgres(f'CREATE DATABASE "{self.env["POWERCRUD_WORKER_DB"]}"')
        self.helper("setup", "--books", str(books), timeout=120)

    def drop_database(self) -> None:
        if self.postgres:
            self._postgres(f'DROP DATABASE IF EXISTS "{self.env["POWERCRUD_WORKER_DB"]}" WITH (FORCE)')

    def start(self) -> None:
        log = self.log.open("ab")
        self.cluster = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the cluster and its workers
        )

    def kill(self, sig: int = signal.SIGTERM) -> None:
        if self.cluster is None:
            return
        try:
            os.killpg(self.cluster.pid, sig)
            self.cluster.wait(15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.cluster.pid, signal.SIGKILL)
            self.cluster.wait(5)
        self.cluster = None

    def cluster_log(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def watch(self, task_id: int, timeout: float = 60) -> list[dict[str, Any]]:
        seen = self.helper("watch", str(task_id), "--timeout", str(timeout), timeout=timeout + 30)
        assert seen[-1]["status"] in FINISHED, (
            f"not finished in {timeout} s: {seen[-1]}\n{self.cluster_log()}"
        )
        return seen


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    work_dir = Path(tempfile.mkdtemp(prefix="powercrud-worker-"))
    runner = Worker(work_dir)
    try:
        runner.create_database(books=300)
        runner.start()
        yield runner
    finally:
        runner.kill()
        runner.drop_database()
        shutil.rmtree(work_dir, ignore_errors=True)


def test_a_task_runs_on_the_worker_with_progress_visible_outside(worker: Worker) -> None:
    launched = worker.helper(
        "launch", "--prefix", "Book 000", "--batch-size", "5", "--backend", f"{H}.PausingBackend",
        "--config", json.dumps({"sleep": 0.2}),
    )  # fmt: skip
    assert launched["total"] == 0  # counted by the worker as it locks the rows, not by the submit
    seen = worker.watch(launched["id"])
    final = seen[-1]
    assert final["status"] == "succeeded", final
    assert (final["done"], final["total"], final["success_count"], final["locks"]) == (100, 100, 100, 0)
    # Another process saw the all-or-nothing run move while its transaction was open.
    moving = [s["done"] for s in seen if s["status"] == "running" and 0 < s["done"] < 100]
    assert len(set(moving)) >= 3, seen
    beats = [s["t"] for s in seen if s["status"] == "running" and s["heartbeat_at"]]
    assert beats
    counts = worker.helper("counts")
    assert counts["statuses"] == {"archived": 100, "draft": 200}


def test_refused_and_exploding_runs_end_failed_on_the_worker(worker: Worker) -> None:
    refused = worker.helper("launch", "--prefix", "Book 001", "--backend", f"{H}.RefusingBackend")
    final = worker.watch(refused["id"])[-1]
    assert final["status"] == "failed"
    assert final["failure_count"] == 2 and final["locks"] == 0
    assert final["errors"][0]["messages"] == ["Not allowed <today>."]
    exploding = worker.helper("launch", "--prefix", "Book 001", "--backend", f"{H}.ExplodingBackend")
    final = worker.watch(exploding["id"])[-1]
    assert final["status"] == "failed"
    assert "unexpected error; nothing was saved" in final["message"]
    assert "hunter2" not in final["message"]
    assert "hunter2" in worker.cluster_log()  # the traceback is in the worker's log
    assert worker.helper("counts")["statuses"]["draft"] == 200


def test_the_worker_locks_the_submitted_selection_then_runs_it_with_exact_counts_and_ledger(
    worker: Worker,
) -> None:
    """The submit stores the selection; the real worker locks it ("Locking 100 rows…"), runs it
    and releases it: exact counts, one ledger row per row, no lock left."""
    launched = worker.helper("launch", "--prefix", "Book 001", "--status", "published", "--batch-size", "7")
    assert launched["total"] == 0  # nothing was counted or locked by the submit
    seen = worker.watch(launched["id"])
    final = seen[-1]
    assert final["status"] == "succeeded", final
    assert (final["total"], final["done"], final["success_count"], final["locks"]) == (100, 100, 100, 0)
    assert final["message"] == "Updated 100 of 100 rows (100 changed)."
    assert worker.helper("ledger", str(launched["id"])) == {"changed": 100}
    assert worker.helper("counts")["statuses"]["published"] == 100
    # Whatever another process saw while it ran: never rows written without their locks.
    assert all(s["locks"] == 100 for s in seen if s["status"] == "running" and s["done"]), seen


def test_a_conflict_found_by_the_worker_ends_the_run_failed_with_no_lock(worker: Worker) -> None:
    holder = worker.helper("hold", "--prefix", "Book 0015")  # a run elsewhere holds 10 of the rows
    assert holder["locked"] == 10
    launched = worker.helper("launch", "--prefix", "Book 001", "--status", "archived")
    final = worker.watch(launched["id"])[-1]
    assert final["status"] == "failed", final
    assert final["message"] == (
        f"10 of the selected books are being changed by bulk task #{holder['id']} (running). "
        "Try again when it finishes."
    )
    assert (final["total"], final["done"], final["locks"]) == (0, 0, 0)
    assert worker.helper("ledger", str(launched["id"])) == {}
    assert worker.helper("counts")["locks"] == 10  # the holder's, untouched
    assert worker.helper("release", str(holder["id"]))["released"] is True
    assert worker.helper("counts")["statuses"].get("archived", 0) == 100  # only the first test's rows


def test_worker_killed_mid_run_writes_nothing_and_cleanup_frees_the_rows(worker: Worker) -> None:
    """SIGKILL the whole cluster during an all-or-nothing run (runs last: it stops the worker)."""
    launched = worker.helper(
        "launch", "--prefix", "Book 002", "--batch-size", "5", "--backend", f"{H}.PausingBackend",
        "--config", json.dumps({"sleep": 0.5}),
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        status = worker.helper("status", str(launched["id"]))
        if status["status"] == "running" and status["done"] >= 10:
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    worker.kill(signal.SIGKILL)
    after = worker.helper("status", str(launched["id"]))
    assert after["status"] == "running" and after["locks"] == 100  # held until cleanup decides
    assert worker.helper("counts")["statuses"].get("archived", 0) == 100  # only the first task's rows
    time.sleep(1.5)
    assert worker.helper("cleanup", "--older-than", "1")["failed"] == [launched["id"]]
    final = worker.helper("status", str(launched["id"]))
    assert final["status"] == "failed" and final["locks"] == 0
    assert final["message"].startswith("The worker stopped responding")
    assert worker.helper("counts")["locks"] == 0
