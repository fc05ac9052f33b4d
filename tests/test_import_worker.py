"""An import on a real ``manage.py qcluster`` worker: queued by ``launch_import()``, run by the
worker's job with progress another process sees, recorded in the ledger; an upsert holds the
rows it updates until it ends.

The database and the cluster are tests/test_worker_process.py's ``Worker``; this module is
also the helper the test runs as a separate process (``python -m tests.test_import_worker``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.worker

ME = "tests.test_import_worker"


def _launch(rows: int, batch_size: int, mode: str, existing: int) -> dict[str, Any]:
    from powercrud.bulk.importing import ImportSpec
    from powercrud.bulk.request import BulkRequest
    from powercrud.mixins.importing import launch_import
    from powercrud.models import RowLock
    from tests.testapp.models import Edition

    Edition.objects.bulk_create(
        [Edition(code=f"E{i:05d}", language="en", title="Old", copies=1) for i in range(existing)]
    )
    spec = ImportSpec(
        fields=("code", "language", "title", "copies"),
        mode=mode,  # type: ignore[arg-type]
        key=("code", "language") if mode != "create" else (),
    )
    request = BulkRequest(
        operation="import",
        model_label="testapp.edition",
        batch_size=batch_size,
        import_data={
            "spec": spec.to_data(),
            "rows": [[i + 2, [f"E{i:05d}", "en", f"Title {i}", str(i % 9)]] for i in range(rows)],
        },
    )
    task = launch_import(request, scope=Edition.objects.all(), user=None)
    return {"id": task.pk, "total": task.total, "locks": RowLock.objects.filter(task_id=task.pk).count()}


def _editions() -> dict[str, Any]:
    from tests.testapp.models import Edition

    return {
        "count": Edition.objects.count(),
        "old": Edition.objects.filter(title="Old").count(),
        "titled": Edition.objects.filter(title__startswith="Title ").count(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    import django

    django.setup()
    parser = argparse.ArgumentParser(prog=f"python -m {ME}")
    sub = parser.add_subparsers(dest="cmd", required=True)
    launch = sub.add_parser("launch")
    launch.add_argument("--rows", type=int, default=100)
    launch.add_argument("--batch-size", type=int, default=50)
    launch.add_argument("--mode", default="create")
    launch.add_argument("--existing", type=int, default=0)
    sub.add_parser("editions")
    sub.add_parser("clear")
    cancel = sub.add_parser("cancel")
    cancel.add_argument("task_id", type=int)
    args = parser.parse_args(argv)
    if args.cmd == "launch":
        print(json.dumps(_launch(args.rows, args.batch_size, args.mode, args.existing)))
    elif args.cmd == "editions":
        print(json.dumps(_editions()))
    elif args.cmd == "cancel":
        from powercrud.jobs.monitor import request_cancel

        print(json.dumps({"status": request_cancel(args.task_id).status}))
    elif args.cmd == "clear":
        from tests.testapp.models import Edition

        Edition.objects.all().delete()
        print(json.dumps({}))
    return 0


# ----- the tests ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def worker() -> Iterator[Any]:
    from tests.test_worker_process import Worker

    work_dir = Path(tempfile.mkdtemp(prefix="powercrud-import-worker-"))
    runner = Worker(work_dir)
    try:
        runner.create_database(books=0)
        runner.start()
        yield runner
    finally:
        runner.kill()
        runner.drop_database()
        shutil.rmtree(work_dir, ignore_errors=True)


def run_helper(worker: Any, *args: str) -> Any:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", ME, *args],
        cwd=Path(__file__).resolve().parent.parent,
        env=worker.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{args}:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.splitlines()[-1])


def test_a_100000_row_import_runs_on_the_worker_with_progress_and_its_ledger(worker: Any) -> None:
    run_helper(worker, "clear")
    launched = run_helper(worker, "launch", "--rows", "100000", "--batch-size", "1000")
    assert (launched["total"], launched["locks"]) == (100_000, 0)  # a create holds no row
    seen = worker.watch(launched["id"], timeout=300)
    final = seen[-1]
    assert final["status"] == "succeeded", final
    assert (final["done"], final["total"], final["success_count"], final["locks"]) == (100_000,) * 3 + (0,)
    assert final["message"] == "Imported 100,000 rows: 100,000 new, 0 updated, 0 unchanged, 0 skipped."
    moving = {s["done"] for s in seen if s["status"] == "running" and 0 < s["done"] < 100_000}
    assert len(moving) >= 3, seen[:5]  # another process saw the run move
    assert worker.helper("ledger", str(launched["id"])) == {"created": 100_000}
    assert run_helper(worker, "editions") == {"count": 100_000, "old": 0, "titled": 100_000}


def test_an_upsert_on_the_worker_holds_the_rows_it_updates(worker: Any) -> None:
    run_helper(worker, "clear")
    launched = run_helper(worker, "launch", "--rows", "400", "--mode", "upsert", "--existing", "150")
    assert launched["locks"] == 150  # the rows it will update, held from the submit
    final = worker.watch(launched["id"], timeout=120)[-1]
    assert final["status"] == "succeeded", final
    assert final["locks"] == 0
    assert worker.helper("ledger", str(launched["id"])) == {"created": 250, "changed": 150}
    assert run_helper(worker, "editions") == {"count": 400, "old": 0, "titled": 400}


def test_a_cancelled_import_writes_nothing(worker: Any) -> None:
    import time

    run_helper(worker, "clear")
    launched = run_helper(worker, "launch", "--rows", "100000", "--batch-size", "500")
    deadline = time.monotonic() + 60
    while worker.helper("status", str(launched["id"]))["done"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    run_helper(worker, "cancel", str(launched["id"]))
    final = worker.watch(launched["id"], timeout=120)[-1]
    assert final["status"] == "cancelled", final
    assert 0 < final["done"] < 100_000
    assert run_helper(worker, "editions")["count"] == 0  # the run's transaction was rolled back


if __name__ == "__main__":
    raise SystemExit(main())
