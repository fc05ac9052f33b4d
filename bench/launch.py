"""Launch benchmark: the submit request of a background bulk edit, whatever the selection's size.

    python -m bench.launch                              # 1,000, 100,000 and 1,000,000 rows, SQLite
    python -m bench.launch --db all                     # also PostgreSQL when reachable
    python -m bench.launch --rows 1000 100000 --repeats 9

For each database (a SQLite file in WAL mode in a temp dir; a fresh PostgreSQL database
``bench_powercrud_launch`` on 127.0.0.1:5432, dropped afterwards), a worker process migrates and
seeds the largest N books once (one ``INSERT ... SELECT``; the ORM broker: each enqueue is one row in
django-q2's queue table, no worker runs). One view per N (``bulk_async = True``, the default
``BULK_MIN_ASYNC_RECORDS`` of 1,000) scopes ``get_queryset()`` to the first N books by key.
Then, round by round, each N in turn:

1. (not timed) a signed-in superuser "selects all matching" in that view (``selection/``);
2. **timed: the submit**, ``POST bulk/edit/`` through the Django test client (HTMX headers),
   changing ``status``, from the request to the 202 response (the view, the bounded count that
   picks the mode, the task record with the stored selection, the enqueue after commit), with
   every query it makes counted;
3. (not timed) checks: the answer is 202, the task is queued with no row lock, its stored
   selection restores to exactly N rows (first round); then the task and its queued job are
   deleted.

Baselines in the same run, interleaved with the submits (three rounds): plain Django's
``QuerySet.count()`` of the same N rows (what any submit that reads the selection pays at
least), and the previous releases' submit step, every row lock taken in the request
(``acquire_locks()``: one ``INSERT ... SELECT`` of N locks, in a transaction rolled back).

It prints, per database and N, the median submit time, its queries, the ratio to the 1,000-row
submit and the baselines. Target (issue 12): the 1,000,000-row submit within 1.2x of the
1,000-row submit, with the same number of queries. Exit status 1 when it is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import postgres_reachable, run_json_worker, say

PG_DATABASE = "bench_powercrud_launch"
SIZES = (1_000, 100_000, 1_000_000)
RATIO_TARGET = 1.2
HTMX = {"HX-Request": "true"}


# --- in the worker process ----------------------------------------------------------------------


class QueryCounter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        self.count += 1
        return execute(sql, params, many, context)


@contextmanager
def counting() -> Iterator[QueryCounter]:
    from django.db import connection

    counter = QueryCounter()
    with connection.execute_wrapper(counter):
        yield counter


def launch_views(sizes: list[int]) -> dict[int, Any]:
    """One async book view per N, scoped to the first N books; registered as this module's URLs."""
    from bench.bulk_views import BenchBookView

    views: dict[int, Any] = {}
    for size in sizes:
        views[size] = type(
            f"BenchLaunch{size}View",
            (BenchBookView,),
            {
                "__module__": __name__,
                "url_base": f"bench-launch-{size}",
                "namespace": "benchlaunch",
                "bulk_async": True,
                "last_pk": 0,
                "get_queryset": lambda self: BenchBookView.get_queryset(self).filter(pk__lte=self.last_pk),
            },
        )
    return views


urlpatterns: list[Any] = []


def seed(count: int) -> None:
    """``count`` draft books by one author, in one ``INSERT ... SELECT`` (the rows' values do not
    matter to a submit; ``seed_books`` takes minutes for a million)."""
    from django.db import connection

    from sample.models import Author, Book

    author = Author.objects.create(name="Launch bench")
    qn = connection.ops.quote_name
    columns = ", ".join(qn(c) for c in ("title", "author_id", "status", "price", "is_available"))
    table = qn(Book._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT 'Book ' || lpad(g::text, 7, '0'), %s, 'draft', 10, "
                "true FROM generate_series(1, %s) AS g",
                [author.pk, count],
            )
        else:
            cursor.execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %s) "
                f"INSERT INTO {table} ({columns}) "
                "SELECT 'Book ' || substr('000000' || i, -7), %s, 'draft', 10, 1 FROM n",
                [count, author.pk],
            )


def worker(args: argparse.Namespace) -> int:
    work_dir = Path(tempfile.mkdtemp(prefix="powercrud-launch-bench-"))
    os.environ["POWERCRUD_BENCH_BULK_ENGINE"] = args.engine
    os.environ["POWERCRUD_BENCH_BULK_DB"] = PG_DATABASE if args.engine == "postgres" else str(work_dir / "db")
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.bulk_settings"
    import django

    django.setup()
    import logging

    logging.getLogger("django-q").setLevel(logging.WARNING)  # one "Enqueued" line per submit otherwise
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test import Client
    from django.test.utils import override_settings
    from django.urls import include, path
    from django_q.models import OrmQ

    from bench.bulk_urls import urlpatterns as bench_urlpatterns
    from powercrud.jobs.freeze import stored_selection
    from powercrud.jobs.locks import acquire_locks
    from powercrud.models import BulkTask, RowLock
    from sample.models import Book

    sizes = sorted(args.rows)
    views = launch_views(sizes)
    patterns = [pattern for view in views.values() for pattern in view.get_urls()]
    urlpatterns[:] = [path("", include((patterns, "benchlaunch"))), *bench_urlpatterns]
    override_settings(ROOT_URLCONF=__name__).enable()

    call_command("migrate", verbosity=0)
    User.objects.create_superuser("bench", password="bench")
    started = time.perf_counter()
    seed(sizes[-1])
    seeded = time.perf_counter() - started
    keys = list(Book.objects.order_by("pk").values_list("pk", flat=True))
    for size, view in views.items():
        view.last_pk = keys[size - 1]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    say(f"{args.engine}: seeded {sizes[-1]:,} books in {seeded:.1f} s")

    client = Client()
    client.force_login(User.objects.get(username="bench"))
    submits: dict[int, list[float]] = {size: [] for size in sizes}
    queries: dict[int, set[int]] = {size: set() for size in sizes}
    counts: dict[int, list[float]] = {size: [] for size in sizes}
    old_locks: dict[int, list[float]] = {size: [] for size in sizes}

    def submit(size: int, check: bool) -> None:
        url = f"/bench-launch-{size}/"
        if client.post(f"{url}selection/", {"action": "all", "query": ""}, headers=HTMX).status_code != 200:
            raise AssertionError("select all failed")
        with counting() as counter:
            began = time.perf_counter()
            response = client.post(
                f"{url}bulk/edit/", {"change_status": "on", "status": "archived"}, headers=HTMX
            )
            submits[size].append(time.perf_counter() - began)
        queries[size].add(counter.count)
        if response.status_code != 202:
            raise AssertionError(f"{size}: the submit answered {response.status_code}")
        task = BulkTask.objects.get()
        if task.status != "queued" or RowLock.objects.exists():
            raise AssertionError(f"{size}: the task is {task.status} or rows were locked by the submit")
        if check:
            stored = stored_selection(task)
            found = stored.queryset.count() if stored is not None else -1
            if found != size:
                raise AssertionError(f"{size}: the stored selection holds {found} rows")
        task.delete()
        OrmQ.objects.all().delete()

    def baselines(size: int) -> None:
        rows = Book.objects.filter(pk__lte=views[size].last_pk)
        began = time.perf_counter()
        found = rows.count()
        counts[size].append(time.perf_counter() - began)
        if found != size:
            raise AssertionError(f"{size}: count() found {found}")
        holder = BulkTask.objects.create(kind="update", model_label="sample.book")
        with transaction.atomic():
            began = time.perf_counter()
            locked = acquire_locks(holder, rows)
            old_locks[size].append(time.perf_counter() - began)
            transaction.set_rollback(True)
        holder.delete()
        if locked != size:
            raise AssertionError(f"{size}: {locked} locks")

    for size in sizes:  # warm-up: templates, the view, the first connection
        submit(size, check=False)
    for round_ in range(args.repeats):
        order = sizes if round_ % 2 == 0 else list(reversed(sizes))
        for size in order:
            submit(size, check=round_ == 0)
            if round_ < 3:
                baselines(size)
    report = {
        "engine": args.engine,
        "database": connection.vendor,
        "seed_seconds": seeded,
        "sizes": {
            str(size): {
                "submit": statistics.median(submits[size]),
                "submit_min": min(submits[size]),
                "queries": sorted(queries[size]),
                "count": statistics.median(counts[size]),
                "old_locks": statistics.median(old_locks[size]),
            }
            for size in sizes
        },
        "repeats": args.repeats,
        "min_async": settings.POWERCRUD_SETTINGS.get("BULK_MIN_ASYNC_RECORDS", 1000),
    }
    Path(args.out).write_text(json.dumps(report))
    connection.close()
    shutil.rmtree(work_dir, ignore_errors=True)
    return 0


# --- the report ----------------------------------------------------------------------------------


def print_report(report: dict[str, Any]) -> bool:
    sizes = report["sizes"]
    smallest = min(sizes, key=int)
    largest = max(sizes, key=int)
    base = sizes[smallest]["submit"]
    print(f"\n== {report['engine']} ({report['repeats']} rounds, medians) ==")
    print(
        f"{'rows':>10}  {'submit s':>9}  {'queries':>8}  {'vs 1st':>6}  {'count() s':>9}  {'old locks s':>11}"
    )
    for size in sorted(sizes, key=int):
        m = sizes[size]
        print(
            f"{int(size):>10,}  {m['submit']:>9.4f}  {','.join(map(str, m['queries'])):>8}  "
            f"{m['submit'] / base:>5.2f}x  {m['count']:>9.4f}  {m['old_locks']:>11.3f}"
        )
    ratio = sizes[largest]["submit"] / base
    same = sizes[largest]["queries"] == sizes[smallest]["queries"] and len(sizes[largest]["queries"]) == 1
    ok = ratio <= RATIO_TARGET and same
    print(
        f"submit of {int(largest):,} rows / {int(smallest):,} rows: {ratio:.2f}x "
        f"(target <= {RATIO_TARGET}x), same queries: {same}  -> {'OK' if ok else 'MISSED'}"
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.launch", description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "all"], default="sqlite")
    parser.add_argument("--rows", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="sqlite", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    engines = ["sqlite", "postgres"] if args.db == "all" else [args.db]
    if "postgres" in engines and not postgres_reachable():
        say("PostgreSQL is not reachable; skipped.")
        engines.remove("postgres")
    ok = True
    options = ["--rows", *map(str, args.rows), "--repeats", str(args.repeats)]
    for engine in engines:
        report = run_json_worker("bench.launch", engine, options, label=engine, pg_database=PG_DATABASE)
        ok = print_report(report) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
