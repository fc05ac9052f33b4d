"""Chunked per-row runs: the same background run on 1, 2, 3 and 4 django-q2 workers.

    python -m bench.chunked                          # 100,000 shelves, chunks of 5,000
    python -m bench.chunked --rows 20000 --chunk 2000 --workers 1 2 --repeats 2

PostgreSQL (database ``bench_powercrud_chunked`` on 127.0.0.1:5432, user ``postgres``) and
the Redis broker (127.0.0.1:6379/13; the cluster has a name of its own). The rows are the
demo's ``Shelf``, which has a ``post_save`` receiver (it writes a ``ShelfEvent`` per save),
so a bulk edit takes the per-object path: every row is loaded, validated, saved and signalled.

One process migrates and seeds N shelves. Then, for each worker count W (in the order given,
``--repeats`` times, interleaved: 1 2 3 4 1 2 3 4 ...): a ``qcluster`` with ``workers = W``
is started, and a child process

0. sets every shelf's ``location`` to ``""`` (not timed);
1. launches a per-row bulk edit of ``location`` over every shelf with ``chunk_size = C``, as a
   view with ``bulk_atomic = False`` and ``bulk_chunk_size = C`` does (``launch_bulk_task``);
2. polls the run every 50 ms until it has finished: **timed, submit to succeeded** (this
   includes the freeze of the N row locks by the first worker and the split into chunks);
3. checks (not timed) that every shelf has the new location, that the ledger has N
   ``changed`` rows, that N ``ShelfEvent`` rows were written (the receiver ran for each row),
   that no row lock is left, and records each chunk's own time (``finished_at - started_at``).

It prints, per W, the median seconds, the speed-up against the 1-worker median of the same
run, the mean chunk time and the one-minute load average seen at the start of each run (the
machine has two cores, which other work shares: a load above 2 means it was not quiet). The
bar (issue 12): 2 workers at least 1.7x faster than 1. Exit status 1 when it is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.async_bulk import postgres, reachable, stop

ROOT = Path(__file__).resolve().parent.parent
PG_DATABASE = "bench_powercrud_chunked"
REDIS_URL = "redis://127.0.0.1:6379/13"
SPEEDUP_TARGET = 1.7  # two workers against one

SETTINGS = """
import os
from sample.settings import *  # noqa

DEBUG = False
SECRET_KEY = "bench-only"
LOGGING = {"version": 1, "disable_existing_loggers": False}
DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": os.environ["BENCH_DB"],
                         "USER": "postgres", "HOST": "127.0.0.1", "PORT": "5432"}}
Q_CLUSTER = {"name": os.environ["BENCH_CLUSTER"], "workers": int(os.environ["BENCH_WORKERS"]),
             "timeout": 1800, "retry": 2000, "max_attempts": 1, "catch_up": False, "poll": 0.05,
             "redis": os.environ["BENCH_REDIS"]}
"""


def child(rows: int, chunk: int) -> dict[str, Any]:
    """Inside the benchmark's project: reset, launch, watch, verify."""
    import django

    django.setup()
    from django.db import connection

    from powercrud.bulk.request import BulkRequest
    from powercrud.jobs.launch import launch_bulk_task
    from powercrud.models import BulkTask, RowLock, RunChunk, RunRow
    from sample.models import Shelf, ShelfEvent

    Shelf.objects.update(location="")
    events_before = ShelfEvent.objects.count()
    value = f"Aisle {time.time_ns() % 10**6}"
    request = BulkRequest(
        operation="update",
        model_label="sample.shelf",
        fields_to_update=("location",),
        field_data={"location": value},
        bulk_fields=("location",),
        atomic=False,
        view_name="shelves",
    )
    load = os.getloadavg()[0]
    started = time.perf_counter()
    task = launch_bulk_task(request, Shelf.objects.all(), user=None, chunk_size=chunk)
    while True:
        status = BulkTask.objects.filter(pk=task.pk).values_list("status", flat=True).get()
        if status in BulkTask.FINISHED:
            break
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    connection.close()
    task.refresh_from_db()
    chunks = list(RunChunk.objects.filter(run=task))
    chunk_s = [
        (c.finished_at - c.started_at).total_seconds() for c in chunks if c.finished_at and c.started_at
    ]
    return {
        "seconds": seconds,
        "load": load,
        "status": task.status,
        "rows_ok": Shelf.objects.filter(location=value).count() == rows,
        "ledger_ok": RunRow.objects.filter(run=task, outcome="changed").count() == rows,
        "events_ok": ShelfEvent.objects.count() - events_before == rows,
        "locks_left": RowLock.objects.count(),
        "chunks": len(chunks),
        "chunk_attempts": sorted({c.attempts for c in chunks}),
        "chunk_s": statistics.mean(chunk_s) if chunk_s else 0.0,
    }


def seed(rows: int) -> None:
    import django

    django.setup()
    from sample.models import Shelf

    Shelf.objects.bulk_create(
        (Shelf(name=f"Shelf {i:07d}", capacity=50) for i in range(rows)), batch_size=5000
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chunked")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=5_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--seed", action="store_true")
    args = parser.parse_args()
    if args.seed:
        seed(args.rows)
        return 0
    if args.child:
        print(json.dumps(child(args.rows, args.chunk)))
        return 0
    if not (reachable(5432) and reachable(6379)):
        print("PostgreSQL on 5432 and Redis on 6379 are needed.", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="powercrud-chunked-bench-"))
    (work / "chunked_bench_settings.py").write_text(SETTINGS)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(work), str(ROOT)]),
        "DJANGO_SETTINGS_MODULE": "chunked_bench_settings",
        "BENCH_DB": PG_DATABASE,
        "BENCH_REDIS": REDIS_URL,
        "BENCH_CLUSTER": f"powercrud-chunked-bench-{os.getpid()}",
        "BENCH_WORKERS": "1",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    me = [sys.executable, "-m", "bench.chunked", "--rows", str(args.rows), "--chunk", str(args.chunk)]
    results: dict[int, list[dict[str, Any]]] = {w: [] for w in args.workers}
    ok = True
    try:
        postgres(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        postgres(f'CREATE DATABASE "{PG_DATABASE}"')
        subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True, cwd=ROOT)
        subprocess.run([*me, "--seed"], env=env, check=True, cwd=ROOT)
        for _ in range(args.repeats):
            for workers in args.workers:
                env["BENCH_WORKERS"] = str(workers)
                log = (work / f"qcluster-{workers}.log").open("wb")
                cluster = subprocess.Popen(
                    [*manage, "qcluster"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
                try:
                    time.sleep(3)  # let the cluster start its workers
                    done = subprocess.run([*me, "--child"], env=env, cwd=ROOT, capture_output=True, text=True)
                finally:
                    stop(cluster)
                if done.returncode:
                    raise RuntimeError(f"bench child failed:\n{done.stdout}\n{done.stderr}")
                result = json.loads(done.stdout.strip().splitlines()[-1])
                results[workers].append(result)
                verified = (
                    result["status"] == "succeeded"
                    and result["rows_ok"]
                    and result["ledger_ok"]
                    and result["events_ok"]
                    and result["locks_left"] == 0
                )
                ok = ok and verified
                print(
                    f"  {workers} worker(s): {result['seconds']:.1f} s, {result['chunks']} chunks of "
                    f"{args.chunk:,} (mean chunk {result['chunk_s']:.2f} s), load {result['load']:.1f}, "
                    f"verified {'yes' if verified else 'NO: ' + json.dumps(result)}",
                    flush=True,
                )
    finally:
        postgres(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)
    base = statistics.median(r["seconds"] for r in results[args.workers[0]])
    print(f"\nPer-object path (sample.Shelf, post_save receiver), {args.rows:,} rows, per-row mode,")
    print(f"PostgreSQL + Redis, chunks of {args.chunk:,}: submit -> succeeded, median of {args.repeats}")
    print(f"{'workers':>8} {'seconds':>9} {'speed-up':>9} {'rows/s':>9} {'chunk s':>8} {'load':>6}")
    for workers, runs in results.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        speedup = base / seconds
        chunk_s = statistics.mean(r["chunk_s"] for r in runs)
        load = max(r["load"] for r in runs)
        print(
            f"{workers:>8} {seconds:>9.1f} {speedup:>8.2f}x {args.rows / seconds:>9,.0f} "
            f"{chunk_s:>8.2f} {load:>6.1f}"
        )
    if 1 in results and 2 in results:
        two = statistics.median(r["seconds"] for r in results[1]) / statistics.median(
            r["seconds"] for r in results[2]
        )
        met = two >= SPEEDUP_TARGET
        print(f"\n2 workers vs 1: {two:.2f}x (bar {SPEEDUP_TARGET}x): {'met' if met else 'NOT met'}")
        ok = ok and met
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
