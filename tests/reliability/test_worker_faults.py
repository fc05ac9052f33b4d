"""Faults on a real ``qcluster``: a worker SIGKILLed mid-run, a worker that dies on every
attempt, the same job delivered twice, and a backend the worker cannot import.

The cluster and the test share a scratch database (SQLite in WAL mode by default, PostgreSQL
with ``POWERCRUD_TEST_DB=postgres``) and a broker (django-q2's ORM broker, or Redis with
``POWERCRUD_TEST_REDIS``), set up by tests/reliability/settings_worker.py: a 3 s heartbeat
timeout, redelivery of unacknowledged ORM jobs after 4 s, two workers. The test reads and
writes that database only through ``python -m tests.reliability.helpers`` processes, the way
a web server and a cron job would. Every test ends with no row lock left.
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

from tests.async_helpers import wait_for
from tests.test_worker_process import ROOT, Worker

pytestmark = pytest.mark.worker

CLI = "tests.reliability.helpers"
HEARTBEAT_TIMEOUT = 3  # tests/reliability/settings_worker.py
RETRY = 4
CLEANUP_EVERY = 0.5  # how often the test's "cron" runs fail_stale_tasks()
ORM_BROKER = not os.environ.get("POWERCRUD_TEST_REDIS")


class FaultWorker(Worker):
    """test_worker_process.Worker on the reliability settings, driven by this suite's CLI."""

    def __init__(self, work_dir: Path) -> None:
        super().__init__(work_dir)
        self.env["DJANGO_SETTINGS_MODULE"] = "tests.reliability.settings_worker"

    def cli(self, *args: str, timeout: float = 60, env: dict[str, str] | None = None) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", CLI, *args],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode:
            raise AssertionError(f"{args} failed:\n{done.stdout}\n{done.stderr}\n{self.cluster_log()}")
        lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        return lines if args[0] == "observe" else lines[-1]

    def observer(self, task_id: int, seconds: float, cleanup_every: float = 0) -> subprocess.Popen[str]:
        """Start watching ``task_id`` in another process (and running cleanup, like cron)."""
        return subprocess.Popen(
            [
                sys.executable, "-m", CLI, "observe", str(task_id),
                "--seconds", str(seconds), "--cleanup-every", str(cleanup_every),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip

    def observed(self, process: subprocess.Popen[str], timeout: float) -> list[dict[str, Any]]:
        out, err = process.communicate(timeout=timeout)
        assert process.returncode == 0, f"{out}\n{err}\n{self.cluster_log()}"
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def create_database(self, books: int) -> None:
        if self.postgres:
            self._postgres(f'CREATE DATABASE "{self.env["POWERCRUD_WORKER_DB"]}"')
        self.cli("setup", "--books", str(books), timeout=120)


@pytest.fixture(scope="module")
def faults() -> Iterator[FaultWorker]:
    work_dir = Path(tempfile.mkdtemp(prefix="powercrud-faults-"))
    runner = FaultWorker(work_dir)
    try:
        runner.create_database(books=500)  # "Book 00000" ... "Book 00499": 100 per test prefix
        runner.start()
        yield runner
    finally:
        runner.kill(signal.SIGKILL)  # a SIGTERM to the whole group stalls django-q2's stop for 15 s
        runner.drop_database()
        shutil.rmtree(work_dir, ignore_errors=True)


def statuses_seen(seen: list[dict[str, Any]]) -> list[str]:
    """The distinct statuses in the order they were observed."""
    order: list[str] = []
    for line in seen:
        if not order or order[-1] != line["status"]:
            order.append(line["status"])
    return order


def first_seen(seen: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return next(line for line in seen if line["status"] == status)


def assert_redelivery_skipped(faults: FaultWorker, task_id: int, prefix: str) -> None:
    """ORM broker: the dead worker never acknowledged its job, so django-q2 hands it out again
    after ``retry``; that delivery must change nothing and take the job off the queue."""
    if not ORM_BROKER:
        return  # Redis pops a job once: the dead worker's job is simply gone
    state = wait_for(
        lambda: (
            (s := faults.cli("state", "--prefix", prefix, "--task", str(task_id)))
            and not s["job_waiting"]
            and "skipped" in s["job_results"]
            and s
        ),
        timeout=RETRY + 15,
        interval=0.5,
    )
    assert state["job_results"] == ["skipped"]  # the killed delivery left no result


def test_worker_sigkilled_mid_run_changes_nothing_and_the_task_fails_within_the_heartbeat_timeout(
    faults: FaultWorker,
) -> None:
    """All-or-nothing, 100 rows in batches of 5; the worker process running it gets SIGKILL."""
    pidfile = faults.work_dir / "worker.pid"
    launched = faults.cli(
        "launch", "--prefix", "Book 000", "--backend", f"{CLI}.SlowBackend",
        "--config", json.dumps({"sleep": 0.25, "pidfile": str(pidfile)}),
    )  # fmt: skip
    observer = faults.observer(launched["id"], seconds=40, cleanup_every=CLEANUP_EVERY)
    pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text(), timeout=30))
    assert pid != faults.cluster.pid  # type: ignore[union-attr]
    wait_for(lambda: faults.cli("status", str(launched["id"]))["done"] >= 10, timeout=20, interval=0.1)
    os.kill(pid, signal.SIGKILL)  # that worker only; the cluster goes on and replaces it
    killed_at = time.time()

    seen = faults.observed(observer, timeout=60)
    assert statuses_seen(seen) == ["queued", "running", "failed"] or statuses_seen(seen) == [
        "running",
        "failed",
    ], statuses_seen(seen)  # never "succeeded" in between
    final = seen[-1]
    assert final["message"].startswith("The worker stopped responding (no heartbeat for ")
    assert final["message"].endswith("s), so the task was ended; nothing was saved.")
    failed_at = first_seen(seen, "failed")["wall"]
    assert failed_at - killed_at <= HEARTBEAT_TIMEOUT + 2 * CLEANUP_EVERY + 2, (failed_at - killed_at, seen)
    # The rows stayed locked while the task was writing (its worker's first step locked them),
    # and were freed when it failed.
    assert {line["locks"] for line in seen if line["status"] == "running" and line["done"]} == {100}
    assert {line["total"] for line in seen if line["status"] == "running" and line["done"]} == {100}
    assert final["locks"] == 0
    assert 0 < max(line["done"] for line in seen) < 100  # it really was killed mid-run

    state = faults.cli("state", "--prefix", "Book 000", "--task", str(launched["id"]))
    assert state["statuses"] == {"draft": 100}  # all-or-nothing: not one row changed
    assert state["locks"] == 0
    assert_redelivery_skipped(faults, launched["id"], "Book 000")
    final = faults.cli("status", str(launched["id"]))
    assert (final["status"], final["attempts"], final["locks"]) == ("failed", 1, 0)


def test_a_worker_that_dies_on_every_attempt_ends_failed_after_one_attempt(faults: FaultWorker) -> None:
    """Per-row mode; the backend SIGKILLs its own worker after its second batch, every time.

    The task is claimed once (queued -> running), so a redelivery can never run it again: no
    loop of deaths, one attempt, and cleanup ends it within the heartbeat timeout.
    """
    launched = faults.cli(
        "launch", "--prefix", "Book 001", "--per-row", "--backend", f"{CLI}.SlowBackend",
        "--config", json.dumps({"die_after": 2}),
    )  # fmt: skip
    started = time.time()
    seen = faults.observed(
        faults.observer(launched["id"], seconds=40, cleanup_every=CLEANUP_EVERY), timeout=60
    )
    assert "succeeded" not in statuses_seen(seen)
    final = seen[-1]
    assert final["status"] == "failed" and final["message"].startswith("The worker stopped responding")
    assert final["wall"] - started <= HEARTBEAT_TIMEOUT + 2 * CLEANUP_EVERY + 5
    assert final["locks"] == 0
    state = faults.cli("state", "--prefix", "Book 001", "--task", str(launched["id"]))
    # Per-row mode commits the rows that succeeded only when the run completes: a dead run
    # commits nothing (docs/async.md, Cancellation).
    assert state["statuses"] == {"draft": 100}
    assert_redelivery_skipped(faults, launched["id"], "Book 001")
    assert faults.cli("status", str(launched["id"]))["attempts"] == 1


def test_a_job_delivered_twice_at_once_and_again_later_runs_once(faults: FaultWorker) -> None:
    """Two workers get the same job at the same moment, and a third copy comes after the end.

    The test app's backend writes one ``BulkAudit`` row per applied run, and a many-to-many
    "add" would put back a link removed after the run: both show whether it ran again.
    """
    before = faults.cli("state", "--prefix", "Book 002")
    launched = faults.cli(
        "launch", "--prefix", "Book 002", "--data", json.dumps({"status": "published", "tags": "add"}),
        "--backend", f"{CLI}.SlowAuditedBackend", "--config", json.dumps({"sleep": 0.05}),
    )  # fmt: skip
    faults.cli("enqueue", str(launched["id"]))  # a second copy of the job, next to the first
    seen = faults.observed(faults.observer(launched["id"], seconds=30), timeout=45)
    assert seen[-1]["status"] == "succeeded", seen[-1]
    task_id = str(launched["id"])
    state = wait_for(
        lambda: (
            (s := faults.cli("state", "--prefix", "Book 002", "--task", task_id))
            and len(s["job_results"]) == 2
            and s
        ),
        timeout=15,
        interval=0.3,
    )
    assert state["job_results"] == ["skipped", "succeeded"]
    assert state["statuses"] == {"published": 100}
    assert state["links"] == 100
    assert state["audits"] == before["audits"] + 1  # one applied run
    assert state["tasks"] == before["tasks"] + 1  # one dashboard record

    faults.cli("unlink", "--prefix", "Book 002")
    faults.cli("enqueue", task_id)  # a late duplicate, after the task finished
    state = wait_for(
        lambda: (
            (s := faults.cli("state", "--prefix", "Book 002", "--task", task_id))
            and len(s["job_results"]) == 3
            and s
        ),
        timeout=15,
        interval=0.3,
    )
    assert state["job_results"] == ["skipped", "skipped", "succeeded"]
    assert state["links"] == 99  # the removed link was not added back
    assert state["audits"] == before["audits"] + 1
    assert state["locks"] == 0
    final = faults.cli("status", task_id)
    assert (final["attempts"], final["success_count"]) == (1, 100)


def test_a_backend_the_worker_cannot_import_fails_readably(faults: FaultWorker) -> None:
    """The web servers have new code the workers do not have yet (a deployment in progress)."""
    launched = faults.cli(
        "launch", "--prefix", "Book 003", "--backend", f"{CLI}.NewBackend",
        env={"POWERCRUD_RELIABILITY_NEW_CODE": "1"},
    )  # fmt: skip
    final = faults.observed(faults.observer(launched["id"], seconds=30), timeout=45)[-1]
    assert final["status"] == "failed"
    assert final["message"] == (
        "The task could not start, so nothing was saved: Bulk update backend path "
        f"'{CLI}.NewBackend': module '{CLI}' has no attribute 'NewBackend'."
    )
    assert final["locks"] == 0
    assert faults.cli("state", "--prefix", "Book 003")["statuses"] == {"draft": 100}
