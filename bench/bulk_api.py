"""JSON bulk API benchmark: the same sync bulk edit through ``bulk/api/`` and through the modal.

    python -m bench.bulk_api                          # N = 10,000 on SQLite (and PostgreSQL
                                                      # when reachable), 5 rounds
    python -m bench.bulk_api --rows 1000 --rows 10000 --db sqlite --repeats 7

A fresh process per database and N migrates a throw-away database (a SQLite file in a temp
dir; the PostgreSQL database ``bench_powercrud_api`` on 127.0.0.1:5432, dropped afterwards),
seeds N books (``bench.bulk_edit.prepare``) and times, round by round on freshly reset rows
(``bench.bulk_edit.Bench.reset``), three ways of setting ``status`` and ``is_available`` on
every book:

* **api**: one ``POST bench-book/bulk/api/`` with ``{"operation": "update", "selection":
  {"query": ""}, "values": {...}}`` (Django's test client, a signed-in superuser), the whole
  request timed: reading the JSON, the form, the selection, the run, the answer;
* **modal**: the HTML path's timed ``POST bench-book/bulk/edit/`` (after an untimed "select all"
  ``POST selection/``, which the modal needs and the API does not);
* **plain**: ``QuerySet.update()`` of the same rows in ``transaction.atomic()``.

After every powercrud run the rows and the run's ledger are checked (``Bench.check``: N rows
with the new values, N ``changed`` ledger rows with old and new values). Seconds are medians
of the rounds (wall clock); the three run in turn within each round, so a busy machine slows
them alike. The ratios printed: api / modal (the API's own cost over the modal's path) and
api / plain.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.bulk_edit import BOOK_TARGET, setup_django
from bench.common import postgres_reachable, run_json_worker, say

PG_DATABASE = "bench_powercrud_api"
KEY = "pc_set"  # bench.bulk_edit's all-or-nothing Book view: its reset and its checks


def worker(args: argparse.Namespace) -> int:
    engine, rows = args.engine, args.rows[0]
    with tempfile.TemporaryDirectory(prefix="powercrud-api-bench-") as tmp:
        setup_django(engine, PG_DATABASE if engine == "postgres" else str(Path(tmp) / "bench.sqlite3"))
        from django.db import connection, transaction

        from bench.bulk_edit import Bench, prepare
        from sample.models import Book

        prepare(rows, 0)
        bench = Bench()
        url = f"/{bench.urls[KEY]}/bulk/api/"
        document = json.dumps({"operation": "update", "selection": {"query": ""}, "values": BOOK_TARGET})

        def api() -> None:
            response = bench.client.post(url, document, content_type="application/json")
            body = response.json()
            if response.status_code != 200 or body["counts"]["changed"] != rows:
                raise AssertionError(f"api answered {response.status_code}: {str(body)[:400]}")

        def plain() -> None:
            with transaction.atomic():
                Book.objects.update(**BOOK_TARGET)

        modal = bench.submit(KEY)
        runs: dict[str, Callable[[], None]] = {"api": api, "modal": modal, "plain": plain}
        times: dict[str, list[float]] = {name: [] for name in runs}
        bench.warm_view(KEY)
        bench.reset(KEY)
        api()  # warm the API's own path too
        for _ in range(args.repeats):
            for name, run in runs.items():
                bench.reset(KEY)
                if name == "modal":
                    bench.select_all(KEY)
                started = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - started)
                if name == "plain":
                    if Book.objects.filter(**BOOK_TARGET).count() != rows:
                        raise AssertionError("plain: not every row has the new values")
                else:
                    bench.check(KEY)
        report = {
            "engine": engine,
            "rows": rows,
            "repeats": args.repeats,
            "seconds": {name: statistics.median(found) for name, found in times.items()},
            "all": times,
        }
        connection.close()
    Path(args.out).write_text(json.dumps(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, action="append", help="N (repeatable); default 10,000")
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.rows = args.rows or [10_000]
    if args.worker:
        return worker(args)
    engines = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    if "postgres" in engines and not postgres_reachable():
        say("PostgreSQL is not reachable on 127.0.0.1:5432; SQLite only.")
        engines.remove("postgres")
    print("engine     rows      api s   modal s   plain s   api/modal   api/plain")
    for engine in engines:
        for rows in args.rows:
            options = ["--rows", str(rows), "--repeats", str(args.repeats)]
            report: dict[str, Any] = run_json_worker(
                "bench.bulk_api", engine, options, label=f"{engine} N={rows:,}", pg_database=PG_DATABASE
            )
            s = report["seconds"]
            print(
                f"{engine:<9} {rows:>7,}  {s['api']:>8.3f}  {s['modal']:>8.3f}  {s['plain']:>8.3f}"
                f"  {s['api'] / s['modal']:>9.2f}x  {s['api'] / s['plain']:>9.2f}x"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
