"""Lifecycle hooks on a real ``qcluster`` worker: registered at start-up by the app's ``ready()``
(tests/lifecycle_hooks.py), called once per batch with each row once, (new, old) paired; a
refusal is that row's failure in a per-row run."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_worker_process import Worker

pytestmark = pytest.mark.worker


@pytest.fixture(scope="module")
def hooked_worker() -> Iterator[tuple[Worker, Path]]:
    work_dir = Path(tempfile.mkdtemp(prefix="powercrud-lifecycle-"))
    calls = work_dir / "calls.jsonl"
    runner = Worker(work_dir)
    runner.env["POWERCRUD_TEST_LIFECYCLE"] = str(calls)
    try:
        runner.create_database(books=300)
        runner.start()
        yield runner, calls
    finally:
        runner.kill()
        runner.drop_database()
        shutil.rmtree(work_dir, ignore_errors=True)


def read(calls: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


def test_hooks_run_on_the_worker_once_per_batch_and_row_and_refuse_a_row(
    hooked_worker: tuple[Worker, Path],
) -> None:
    worker, calls = hooked_worker
    launched = worker.helper("launch", "--prefix", "Book 000", "--per-row", "--batch-size", "4")
    final = worker.watch(launched["id"])[-1]
    assert (final["success_count"], final["failure_count"], final["locks"]) == (99, 1, 0), final
    assert final["errors"][0]["field"] == "status"
    assert final["errors"][0]["messages"] == ["Book 00007 is kept."]
    assert worker.helper("counts")["statuses"] == {"archived": 99, "draft": 201}
    seen = read(calls)
    assert {call["pid"] for call in seen} - {os.getpid()}  # another process called them
    before = [call for call in seen if call["event"] == "before_update"]
    after = [call for call in seen if call["event"] == "after_update"]
    assert len(before) == len(after) == 25  # 100 rows in batches of 4
    rows = [pair for call in after for pair in call["pairs"]]
    assert len(rows) == 99 and len({new[0] for new, _ in rows}) == 99  # each row once
    assert all(new[0] == old[0] and (new[2], old[2]) == ("archived", "draft") for new, old in rows)
    assert "Book 00007" not in {new[1] for new, _ in rows}


def test_a_bulk_delete_on_the_worker_calls_after_delete_once_per_row(
    hooked_worker: tuple[Worker, Path],
) -> None:
    worker, calls = hooked_worker
    start = len(read(calls))
    launched = worker.helper("launch", "--prefix", "Book 001", "--kind", "delete", "--batch-size", "30")
    final = worker.watch(launched["id"])[-1]
    assert final["status"] == "succeeded" and final["success_count"] == 100, final
    deleted = [call for call in read(calls)[start:] if call["event"] == "after_delete"]
    assert len(deleted) == 4  # batches of 30
    rows = [old for call in deleted for new, old in call["pairs"] if new is None]
    assert len(rows) == 100 and Counter(title[:8] for _, title, _ in rows) == {"Book 001": 100}
    assert len({pk for pk, _, _ in rows}) == 100
