"""Run ledger size: the bytes ``RunRow`` takes per 1,000,000 changed rows of a two-field edit.

    python -m bench.ledger_size                          # 1,000,000 rows, SQLite and PostgreSQL
    python -m bench.ledger_size --rows 100000 --db sqlite

For each database, a fresh process migrates an empty throw-away database (``bench.sync_service``),
seeds N books (``seed_books``, another process), sets every book to ``status="draft"`` and
``price=1.00`` (so that every row changes), then makes one all-or-nothing sync bulk edit of two
fields, ``status="archived"`` and ``price=12.34``, over every book, as the view makes it, with
the run ledger on. The ledger then holds N ``changed`` rows (checked, and the books' new values
too), each with ``old`` and ``new`` as JSON, e.g. ``{"price": "1.00", "status": "draft"}``.

It also times the run's statements by kind (``connection.execute_wrapper``): the ledger's
per-batch ``INSERT ... SELECT`` snapshots and its final settle against the books' ``UPDATE``.

It measures the ``RunRow`` table with its indexes (the unique ``(run, object_pk)`` and the
``(run, outcome)`` index):

* PostgreSQL: ``pg_total_relation_size`` (heap + TOAST + indexes + free-space and visibility
  maps) after ``VACUUM ANALYZE``, split into heap, indexes and the rest;
* SQLite: the ``dbstat`` virtual table (pages of the table and of each of its indexes, times
  the page size); where ``dbstat`` is missing, the growth of the database file across the run
  (after a WAL checkpoint), which also counts the books' own changes.

It prints the bytes per ledger row and MB (2**20 bytes) per 1,000,000 rows (the measured size
scaled linearly to a million when N is smaller), beside the size of the books table for scale.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench import common, sync_service

MB = 2**20
RESET = {"status": "draft", "price": Decimal("1.00")}
TARGET = {"status": "archived", "price": Decimal("12.34")}


def sqlite_sizes(table: str) -> tuple[dict[str, int], str]:
    """Bytes of ``table`` and of each of its indexes; how they were measured."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE tbl_name = %s", [table])
        names = [row[0] for row in cursor.fetchall()]
        try:
            cursor.execute(
                f"SELECT name, SUM(pgsize) FROM dbstat WHERE name IN ({', '.join(['%s'] * len(names))})"
                " GROUP BY name",
                names,
            )
        except Exception:  # dbstat not compiled in
            return {}, "file"
        return {name: int(size) for name, size in cursor.fetchall()}, "dbstat"


def postgres_sizes(table: str) -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_total_relation_size(%s), pg_relation_size(%s), pg_indexes_size(%s)",
            [table, table, table],
        )
        total, heap, indexes = cursor.fetchone()
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index"
            " WHERE indrelid = %s::regclass",
            [table],
        )
        each = {f"index {name}": int(size) for name, size in cursor.fetchall()}
    return {
        "total (pg_total_relation_size)": int(total),
        "heap": int(heap),
        "indexes": int(indexes),
        "toast + maps": int(total) - int(heap) - int(indexes),
        **each,
    }


class StatementTimer:
    """An ``execute_wrapper`` that adds up the seconds of each kind of statement."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.count: dict[str, int] = {}

    @staticmethod
    def kind(sql: str) -> str:
        words = sql.split()
        head = " ".join(words[:3]).replace('"', "")
        if head.startswith("INSERT INTO powercrud_runrow"):
            # the per-batch snapshot reads the books; the settle reads the selection's keys
            return head + (
                " ... (settle)" if "NOT" in sql.upper().split("FROM", 1)[-1] else " ... (snapshot)"
            )
        if words and words[0].upper() == "UPDATE":
            return " ".join(words[:2]).replace('"', "")
        if words and words[0].upper() == "SELECT":
            table = sql.split(" FROM ", 1)[-1].split()[0].replace('"', "") if " FROM " in sql else ""
            return f"SELECT ... FROM {table}"
        return head

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            key = self.kind(sql)
            self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - started
            self.count[key] = self.count.get(key, 0) + 1

    def table(self) -> list[tuple[str, int, float]]:
        return sorted(((k, self.count[k], s) for k, s in self.seconds.items()), key=lambda row: -row[2])


def database_bytes(db_name: str) -> int:
    return sum(os.path.getsize(p) for p in (db_name, f"{db_name}-wal") if os.path.exists(p))


def worker(engine: str, db_name: str, rows: int, out: str) -> None:
    sync_service.setup_django(engine, db_name)
    from django.db import connection
    from django.db.models import Count

    from powercrud.models import RunRow
    from sample.models import Book

    table, books = RunRow._meta.db_table, Book._meta.db_table
    Book.objects.update(**RESET)
    sync_service.tidy([books])
    file_before = database_bytes(db_name) if engine == "sqlite" else 0
    timer = StatementTimer()
    started = time.perf_counter()
    with connection.execute_wrapper(timer):
        run, result, counts = sync_service.sync_run(TARGET)
    seconds = time.perf_counter() - started
    found = dict(
        RunRow.objects.filter(run_id=run.pk).values_list("outcome").annotate(n=Count("id")).order_by()
    )
    if found != {"changed": rows} or counts != found:
        raise AssertionError(f"ledger {found} (counts {counts}), expected {{'changed': {rows}}}")
    if Book.objects.filter(**TARGET).count() != rows:
        raise AssertionError("not every book has the new values")
    sample = RunRow.objects.filter(run_id=run.pk).order_by("pk").first()
    assert sample is not None
    sync_service.tidy([table, books])
    report: dict[str, Any] = {
        "engine": engine,
        "rows": rows,
        "run_seconds": seconds,
        "statements": timer.table(),
        "sample": {"object_pk": sample.object_pk, "old": sample.old, "new": sample.new},
        "version": connection.Database.sqlite_version if engine == "sqlite" else connection.pg_version,
    }
    if engine == "sqlite":
        sizes, how = sqlite_sizes(table)
        book_sizes, _ = sqlite_sizes(books)
        if how == "dbstat":
            report["parts"] = sizes
            report["ledger_bytes"] = sum(sizes.values())
            report["books_bytes"] = sum(book_sizes.values())
        else:
            report["parts"] = {}
            report["ledger_bytes"] = database_bytes(db_name) - file_before
            report["books_bytes"] = None
        report["method"] = how
    else:
        sizes = postgres_sizes(table)
        report["parts"] = sizes
        report["ledger_bytes"] = sizes["total (pg_total_relation_size)"]
        report["books_bytes"] = postgres_sizes(books)["total (pg_total_relation_size)"]
        report["method"] = "pg_total_relation_size"
    connection.close()
    Path(out).write_text(json.dumps(report))


def run_engine(engine: str, rows: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="powercrud-ledger-size-") as tmp:
        if engine == "postgres":
            sync_service.recreate_pg_database()
        db_name = sync_service.PG_DATABASE if engine == "postgres" else str(Path(tmp) / "bench.sqlite3")
        out = str(Path(tmp) / "report.json")
        try:
            started = time.perf_counter()
            sync_service.migrate_and_seed(engine, db_name, rows)
            seed_s = time.perf_counter() - started
            cmd = [sys.executable, "-m", "bench.ledger_size", "--worker", engine, "--db-name", db_name]
            subprocess.run([*cmd, "--rows", str(rows), "--out", out], check=True, cwd=common.ROOT)
            report: dict[str, Any] = json.loads(Path(out).read_text())
            report["seed_seconds"] = seed_s
            return report
        finally:
            if engine == "postgres":
                sync_service.recreate_pg_database(drop_only=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger_size", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="N changed rows (default 1000000)")
    parser.add_argument("--db", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--db-name", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.db_name, args.rows, args.out)
        return 0
    engines = ["sqlite"] if args.db in ("sqlite", "all") else []
    if args.db in ("postgres", "all"):
        if common.postgres_reachable():
            engines.append("postgres")
        else:
            print("PostgreSQL is not reachable on 127.0.0.1:5432; skipped.")
    print(
        f"run ledger size: one sync bulk edit of two fields (status + price) over N = {args.rows:,} "
        "books, every row changed; MB = 2**20 bytes"
    )
    for engine in engines:
        print(f"{engine}: seeding {args.rows:,} books and running...", file=sys.stderr, flush=True)
        r = run_engine(engine, args.rows)
        per_row = r["ledger_bytes"] / r["rows"]
        print()
        print(
            f"{engine} {r['version']}, N = {r['rows']:,} (seeded in {r['seed_seconds']:.0f} s,"
            f" the run took {r['run_seconds']:.1f} s); measured with {r['method']}"
        )
        for name, size in r["parts"].items():
            print(f"  {name:50} {size / MB:10.1f} MB")
        print(
            f"  {'RunRow table with its indexes':50} {r['ledger_bytes'] / MB:10.1f} MB"
            f"  = {per_row:.0f} bytes per row"
        )
        print(f"  {'MB per 1,000,000 changed rows':50} {per_row * 1_000_000 / MB:10.1f} MB")
        if r["books_bytes"]:
            print(f"  {'(for scale: the books table with its indexes)':50} {r['books_bytes'] / MB:10.1f} MB")
        print(f"  a ledger row: {r['sample']}")
        print(f"  the run's statements by kind (seconds, of the {r['run_seconds']:.1f} s run):")
        for kind, count, secs in r["statements"][:8]:
            print(f"    {secs:8.2f} s {count:6,} x  {kind[:80]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
