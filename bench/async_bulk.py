"""Async bulk benchmark: submit to "succeeded" through one real django-q2 worker.

    python -m bench.async_bulk                                  # 10,000 and 1,000,000 rows, SQLite
    python -m bench.async_bulk --rows 10000 --db all            # also PostgreSQL + Redis when reachable
    python -m bench.async_bulk --rows 100000 --db postgres --broker orm
    python -m bench.async_bulk --reuse /tmp/async-bench        # seed SQLite once, reuse after
    python -m bench.async_bulk --rows 10000 --ledger on         # only the run ledger on (or off)

For each database (a SQLite file in WAL mode in a temp dir with the ORM broker; the PostgreSQL
database ``bench_powercrud_async`` on 127.0.0.1:5432 as user ``postgres`` with the Redis
broker on 127.0.0.1:6379/14, or the ORM broker with ``--broker orm``) and each N, a fresh
process migrates, seeds N books (``seed_books --books N --quiet``), starts ``manage.py
qcluster`` with one worker, and then, once with the run ledger on (the default) and once
with it off (``POWERCRUD_SETTINGS["BULK_RUN_LEDGER"]``; the cluster is restarted between the
two, the database is the same):

0. sets every book to ``status="draft", is_available=True`` (not timed), so every row changes,
   then tidies the database (SQLite: WAL checkpoint; PostgreSQL: ``VACUUM`` of the books);
1. times plain Django's ``Book.objects.update(status=..., is_available=...)`` on the same rows
   (inside a transaction that is rolled back, so the real run still changes every row);
2. launches an all-or-nothing bulk edit of the same two fields over every book, as a view
   does (``launch_bulk_task``: task record with the stored selection + the enqueue after
   commit; the worker's first step takes the N row locks in one ``INSERT ... SELECT``), with
   the default service and ``BULK_BATCH_SIZE`` rows per batch;
3. polls the task every 20 ms from this (other) process, the way the dashboard reads it
   (``live_progress``), until it has finished;
4. checks (not timed) that every book has the new values and counts the run's ``RunRow``
   rows by outcome: N ``changed`` with the ledger on, none with it off.

It prints the submit time, submit-to-succeeded seconds, rows/s, the ratio to plain
``update()``, and the gaps between the progress updates this process saw (a new heartbeat or
a new ``done``): median and max; then, per database and N, the ratio of submit-to-succeeded
seconds with the ledger on to with it off. Targets (DESIGN): 1,000,000 rows in under 60 s,
progress at least every 2 s, ledger on / off at most 1.5x. Exit status 1 when a target is
missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PG_DATABASE = "bench_powercrud_async"
REDIS_URL = "redis://127.0.0.1:6379/14"
TOTAL_TARGET_S = 60.0  # at N = 1,000,000
GAP_TARGET_S = 0.5  # issue 12: progress at least every 0.5 s
LEDGER_RATIO_TARGET = 1.5  # submit-to-succeeded, ledger on / ledger off

SETTINGS = """
import os
from sample.settings import *  # noqa
from sample.settings import sqlite_database

DEBUG = False
SECRET_KEY = "bench-only"
LOGGING = {"version": 1, "disable_existing_loggers": False}
if os.environ["BENCH_ENGINE"] == "postgres":
    DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": os.environ["BENCH_DB"],
                             "USER": "postgres", "HOST": "127.0.0.1", "PORT": "5432"}}
else:
    DATABASES = {"default": sqlite_database(os.environ["BENCH_DB"])}
Q_CLUSTER = {"name": os.environ["BENCH_CLUSTER"], "workers": 1, "timeout": 1800, "retry": 2000,
             "max_attempts": 1, "catch_up": False, "poll": 0.1}
POWERCRUD_SETTINGS = {**POWERCRUD_SETTINGS, "BULK_RUN_LEDGER": os.environ["BENCH_LEDGER"] == "on"}
if os.environ["BENCH_BROKER"] == "redis":
    Q_CLUSTER["redis"] = os.environ["BENCH_REDIS"]
else:
    Q_CLUSTER["orm"] = "default"
"""


def reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def postgres(sql: str) -> None:
    import psycopg

    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(sql)


def run_config(
    engine: str,
    broker: str,
    rows: int,
    ledgers: list[str],
    reuse: Path | None = None,
    child_args: tuple[str, ...] = ("-m", "bench.async_bulk", "--child"),
) -> list[dict[str, Any]]:
    """Build a database, seed it and measure in a child process, with a real qcluster beside it,
    once per ledger setting in ``ledgers`` ("on", "off"), the cluster restarted for each.

    ``reuse`` (SQLite only) keeps the database in that directory and seeds it only once per N.
    ``child_args``: the child's command after the Python executable (``bench.undo`` runs its
    own); it prints its result as JSON on its last line.
    """
    work = Path(tempfile.mkdtemp(prefix="powercrud-async-bench-"))
    db_file = (reuse / f"bench-{rows}.sqlite3") if reuse else work / "bench.sqlite3"
    seeded = db_file.exists()
    (work / "async_bench_settings.py").write_text(SETTINGS)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(work), str(ROOT)]),
        "DJANGO_SETTINGS_MODULE": "async_bench_settings",
        "BENCH_ENGINE": engine,
        "BENCH_DB": PG_DATABASE if engine == "postgres" else str(db_file),
        "BENCH_BROKER": broker,
        "BENCH_REDIS": REDIS_URL,
        "BENCH_CLUSTER": f"powercrud-async-bench-{os.getpid()}",
        "BENCH_LEDGER": "on",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    cluster = None
    results = []
    try:
        if engine == "postgres":
            postgres(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
            postgres(f'CREATE DATABASE "{PG_DATABASE}"')
        if broker == "redis":
            import redis

            redis.Redis.from_url(REDIS_URL).flushdb()
        subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True, cwd=ROOT)
        started = time.perf_counter()
        if not seeded or engine == "postgres":
            subprocess.run(
                [*manage, "seed_books", "--books", str(rows), "--quiet"],
                env=env,
                check=True,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
            )
        seed_s = time.perf_counter() - started
        for ledger in ledgers:
            env["BENCH_LEDGER"] = ledger
            log = (work / f"qcluster-{ledger}.log").open("wb")
            cluster = subprocess.Popen(
                [*manage, "qcluster"],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            time.sleep(2)  # let the cluster start its worker
            child = subprocess.run(
                [sys.executable, *child_args],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            stop(cluster)
            cluster = None
            if child.returncode:
                raise RuntimeError(f"bench child failed:\n{child.stdout}\n{child.stderr}")
            result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
            result.update(engine=engine, broker=broker, seed_s=seed_s, ledger=ledger)
            results.append(result)
        return results
    finally:
        if cluster is not None:
            stop(cluster)
        if engine == "postgres":
            postgres(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)


def stop(cluster: subprocess.Popen[bytes]) -> None:
    os.killpg(cluster.pid, signal.SIGTERM)
    try:
        cluster.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(cluster.pid, signal.SIGKILL)
        cluster.wait()


def child() -> None:
    """Runs inside the benchmark's Django project: baseline, launch, watch."""
    import django

    django.setup()
    from django.db import connection, transaction
    from django.db.models import Count

    from powercrud.bulk.request import BulkRequest
    from powercrud.conf import settings as pc_settings
    from powercrud.jobs.launch import launch_bulk_task
    from powercrud.jobs.progress import live_progress
    from powercrud.models import BulkTask, RunRow
    from sample.models import Book

    rows = Book.objects.count()
    # Every row starts from the same values (untimed), so every row changes in every run;
    # then the database is tidied, so that no run pays for an earlier one's dead rows.
    Book.objects.update(status="draft", is_available=True)
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(Book._meta.db_table)}")
    values = {"status": "archived", "is_available": False}
    started = time.perf_counter()
    with transaction.atomic():
        Book.objects.update(**values)
        plain_s = time.perf_counter() - started
        transaction.set_rollback(True)

    started = time.perf_counter()
    request = BulkRequest(
        operation="update",
        model_label="sample.book",
        fields_to_update=("status", "is_available"),
        field_data=values,
        bulk_fields=("status", "is_available"),
        atomic=True,
        view_name="bench",
    )
    task = launch_bulk_task(request, Book.objects.all(), user=None)
    submit_s = time.perf_counter() - started
    updates: list[float] = []  # when this process saw a new heartbeat or a new done
    last: tuple[Any, int] | None = None
    first_running: float | None = None
    while True:
        seen = live_progress([BulkTask.objects.get(pk=task.pk)])[0]
        now = time.perf_counter()
        if seen.status == BulkTask.Status.RUNNING:
            first_running = first_running or now
            mark = (seen.heartbeat_at, seen.done)
            if mark != last:
                updates.append(now)
                last = mark
        if seen.is_finished:
            break
        if now - started > 1800:
            raise RuntimeError(f"Task #{task.pk} did not finish in 30 minutes: {seen.status}")
        connection.close()
        time.sleep(0.02)
    total_s = time.perf_counter() - started
    if first_running is not None:
        updates.append(now)  # the finish is the last update
    gaps = [b - a for a, b in zip(updates, updates[1:], strict=False)]
    changed = Book.objects.filter(**values).count()
    ledger = dict(
        RunRow.objects.filter(run_id=task.pk).values_list("outcome").annotate(n=Count("id")).order_by()
    )
    print(
        json.dumps(
            {
                "rows": rows,
                "status": seen.status,
                "message": seen.message,
                "batch_size": pc_settings.BULK_BATCH_SIZE,
                "plain_update_s": plain_s,
                "submit_s": submit_s,
                "total_s": total_s,
                "rows_per_s": rows / total_s,
                "updates": len(updates),
                "median_gap_s": statistics.median(gaps) if gaps else None,
                "max_gap_s": max(gaps) if gaps else None,
                "queued_s": (first_running - started) if first_running else None,
                "ledger_setting": bool(pc_settings.BULK_RUN_LEDGER),
                "changed_rows": changed,
                "ledger_rows": ledger,
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, action="append", help="N (repeatable); default 10000 and 1000000")
    parser.add_argument("--db", choices=["sqlite", "postgres", "all"], default="sqlite")
    parser.add_argument("--broker", choices=["redis", "orm"], default="redis", help="PostgreSQL's broker")
    parser.add_argument("--reuse", type=Path, help="SQLite: keep the seeded databases in this directory")
    parser.add_argument(
        "--ledger", choices=["both", "on", "off"], default="both", help="the run ledger: both (default)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child()
        return 0
    configs = []
    if args.db in ("sqlite", "all"):
        configs.append(("sqlite", "orm"))
    if args.db in ("postgres", "all"):
        if not reachable(5432):
            print("PostgreSQL is not reachable on 127.0.0.1:5432; skipped.")
        elif args.broker == "redis" and not reachable(6379):
            print("Redis is not reachable on 127.0.0.1:6379; skipped PostgreSQL + Redis.")
        else:
            configs.append(("postgres", args.broker))
    missed = False
    ledgers = ["on", "off"] if args.ledger == "both" else [args.ledger]
    header = (
        f"{'db':<9}{'broker':<7}{'ledger':<7}{'rows':>10}{'seed s':>9}{'plain s':>9}{'submit s':>10}"
        f"{'total s':>9}{'rows/s':>10}{'x plain':>9}{'gap med':>9}{'gap max':>9}  status, RunRow rows"
    )
    print(header)
    pairs = []
    for engine, broker in configs:
        for rows in args.rows or [10_000, 1_000_000]:
            found = run_config(engine, broker, rows, ledgers, args.reuse if engine == "sqlite" else None)
            for r in found:
                ratio = r["total_s"] / r["plain_update_s"] if r["plain_update_s"] else float("nan")
                print(
                    f"{engine:<9}{broker:<7}{r['ledger']:<7}{r['rows']:>10,}{r['seed_s']:>9.1f}"
                    f"{r['plain_update_s']:>9.2f}{r['submit_s']:>10.2f}{r['total_s']:>9.2f}"
                    f"{r['rows_per_s']:>10,.0f}{ratio:>9.1f}{(r['median_gap_s'] or 0):>9.2f}"
                    f"{(r['max_gap_s'] or 0):>9.2f}  {r['status']}, {r['ledger_rows'] or 'none'}",
                    flush=True,
                )
                if r["status"] != "succeeded":
                    print(f"    {r['message']}")
                    missed = True
                expected = {"changed": r["rows"]} if r["ledger"] == "on" else {}
                if r["ledger_rows"] != expected or r["changed_rows"] != r["rows"]:
                    print(
                        f"    CHECK FAILED: {r['changed_rows']:,} of {r['rows']:,} books have the new values;"
                        f" ledger {r['ledger_rows']}, expected {expected}"
                    )
                    missed = True
                if r["ledger_setting"] != (r["ledger"] == "on"):
                    print(f"    CHECK FAILED: BULK_RUN_LEDGER was {r['ledger_setting']} in the child")
                    missed = True
                if (r["max_gap_s"] or 0) > GAP_TARGET_S:
                    missed = True
                if r["rows"] >= 1_000_000 and r["total_s"] > TOTAL_TARGET_S:
                    missed = True
            by = {r["ledger"]: r for r in found}
            if "on" in by and "off" in by:
                pairs.append((engine, broker, rows, by["on"]["total_s"], by["off"]["total_s"]))
    if pairs:
        print("\nrun ledger on / off, submit-to-succeeded seconds:")
        for engine, broker, rows, on_s, off_s in pairs:
            ok = on_s / off_s <= LEDGER_RATIO_TARGET
            missed = missed or not ok
            print(
                f"  {engine:<9}{broker:<7}{rows:>10,}  {on_s:7.2f} s / {off_s:7.2f} s = {on_s / off_s:5.2f}x"
                f"  target <= {LEDGER_RATIO_TARGET:g}x  {'PASS' if ok else 'MISS'}"
            )
    print(
        f"\nTargets: 1,000,000 rows submit-to-succeeded under {TOTAL_TARGET_S:.0f} s; "
        f"a progress update at least every {GAP_TARGET_S:g} s; ledger on / off at most "
        f"{LEDGER_RATIO_TARGET:g}x. {'MISSED' if missed else 'Met.'}"
    )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
