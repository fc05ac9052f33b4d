"""Peak memory of a sync bulk run with the run ledger on, and of its outcomes download.

    python -m bench.memory                               # N = 1,000 and 100,000, SQLite and PostgreSQL
    python -m bench.memory --rows 1000 --rows 20000 --db sqlite

For each database and N, a fresh process (``bench.sync_service``: a throw-away database,
migrated and seeded with N books by ``seed_books`` in another process, so that seeding does not
count) makes one warm-up run over 10 books, then, every run over every book from
``status="draft", is_available=True``, with the ledger on (the default):

1. one all-or-nothing sync bulk edit of ``status`` + ``is_available``, made as the view makes it
   (``hold_selection`` -> ``open_request_run`` -> ``run_recorded`` -> ``close_request_run``),
   untraced: the growth of the process's ``ru_maxrss`` (the high-water mark of its resident
   memory) across the run;
2. the same run again under ``tracemalloc``: the peak of Python allocations above the level at
   its start (the ledger is checked after each run: N ``changed`` rows);
3. the run's outcomes download from the task dashboard (``GET`` of ``powercrud:tasks-outcomes``
   with the Django test client as a signed-in superuser, its streamed body consumed chunk by
   chunk and thrown away) under ``tracemalloc``: the peak above the level at the start, with
   the bytes and lines downloaded.

4. for comparison, the same run with the ledger off (``override_settings``) under
   ``tracemalloc`` ("off peak").

Columns: ``run s`` the untraced run's seconds; ``run peak`` / ``off peak`` tracemalloc peaks
(MB); ``maxrss`` the process's high-water mark at the end and ``growth`` its growth across the
untraced run (MB); ``dl peak``, ``dl bytes``, ``dl lines`` the outcomes download.

Target: the run's tracemalloc peak at N = 100,000 within 15 MB of the peak at N = 1,000.
The ``ru_maxrss`` growth is 0 when the run stays below the process's earlier high-water mark
(Django's start-up); it is shown for what it is, a coarse check that no big buffer escapes
tracemalloc (C allocations in the database driver, for instance).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench import common, sync_service

MB = 2**20
TARGET_MB = 15.0  # tracemalloc peak of the run, N = 100,000 minus N = 1,000
RESET = {"status": "draft", "is_available": True}
TARGET = {"status": "out_of_print", "is_available": False}
WARM_ROWS = 10


def maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kilobytes


def worker(engine: str, db_name: str, rows: int, out: str) -> None:
    sync_service.setup_django(engine, db_name)
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db import connection
    from django.db.models import Count
    from django.test import Client, override_settings
    from django.urls import reverse

    from powercrud.models import RunRow
    from sample.models import Book

    user = User.objects.create_superuser("bench", password="bench")
    client = Client()
    client.force_login(user)

    def reset() -> None:
        RunRow.objects.all().delete()
        Book.objects.update(**RESET)
        sync_service.tidy([Book._meta.db_table, RunRow._meta.db_table])
        gc.collect()

    def check(run: Any) -> None:
        found = dict(
            RunRow.objects.filter(run_id=run.pk).values_list("outcome").annotate(n=Count("id")).order_by()
        )
        if found != {"changed": rows}:
            raise AssertionError(f"run #{run.pk}: ledger {found}, expected {{'changed': {rows}}}")
        if Book.objects.filter(**TARGET).count() != rows:
            raise AssertionError("not every book has the new values")

    def download(run: Any) -> tuple[int, int, int]:
        """The outcomes download of ``run``: status, bytes, lines."""
        response = client.get(reverse("powercrud:tasks-outcomes", kwargs={"pk": run.pk}))
        size = lines = 0
        chunks = response.streaming_content if response.streaming else [response.content]
        for chunk in chunks:
            size += len(chunk)
            lines += chunk.count(b"\n")
        return response.status_code, size, lines

    # warm-up: imports, the first queries, the dashboard's templates and URLs
    reset()
    warm = Book.objects.filter(pk__in=Book.objects.order_by("pk").values("pk")[:WARM_ROWS])
    warm_run, _, _ = sync_service.sync_run(TARGET, queryset=warm, user=user)
    download(warm_run)
    streaming = client.get(reverse("powercrud:tasks-outcomes", kwargs={"pk": warm_run.pk})).streaming

    reset()
    before = maxrss_bytes()
    started = time.perf_counter()
    run, _, _ = sync_service.sync_run(TARGET, user=user)
    seconds = time.perf_counter() - started
    rss_growth = maxrss_bytes() - before
    check(run)

    reset()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    run, _, _ = sync_service.sync_run(TARGET, user=user)
    run_peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    check(run)

    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    status, size, lines = download(run)
    download_peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()

    reset()
    settings_off = {**getattr(settings, "POWERCRUD_SETTINGS", {}), "BULK_RUN_LEDGER": False}
    with override_settings(POWERCRUD_SETTINGS=settings_off):
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        off_run, _, _ = sync_service.sync_run(TARGET, user=user)
        off_peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
    if RunRow.objects.filter(run_id=off_run.pk).exists() or Book.objects.filter(**TARGET).count() != rows:
        raise AssertionError("the ledger-off run left ledger rows or missed books")
    if status != 200:
        raise AssertionError(f"the outcomes download answered {status}")
    report = {
        "engine": engine,
        "rows": rows,
        "seconds": seconds,
        "rss_growth": rss_growth,
        "maxrss": maxrss_bytes(),
        "run_peak": run_peak,
        "off_peak": off_peak,
        "download_peak": download_peak,
        "download_bytes": size,
        "download_lines": lines,
        "streaming": streaming,
    }
    connection.close()
    Path(out).write_text(json.dumps(report))


def run_worker(engine: str, rows: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="powercrud-memory-bench-") as tmp:
        if engine == "postgres":
            sync_service.recreate_pg_database()
        db_name = sync_service.PG_DATABASE if engine == "postgres" else str(Path(tmp) / "bench.sqlite3")
        out = str(Path(tmp) / "report.json")
        try:
            sync_service.migrate_and_seed(engine, db_name, rows)
            cmd = [sys.executable, "-m", "bench.memory", "--worker", engine, "--db-name", db_name]
            subprocess.run([*cmd, "--rows", str(rows), "--out", out], check=True, cwd=common.ROOT)
            return json.loads(Path(out).read_text())  # type: ignore[no-any-return]
        finally:
            if engine == "postgres":
                sync_service.recreate_pg_database(drop_only=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, action="append", help="N; repeatable (default 1000 and 100000)")
    parser.add_argument("--db", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--db-name", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.db_name, args.rows[0], args.out)
        return 0
    sizes = sorted(args.rows or [1_000, 100_000])
    engines = ["sqlite"] if args.db in ("sqlite", "all") else []
    if args.db in ("postgres", "all"):
        if common.postgres_reachable():
            engines.append("postgres")
        else:
            print("PostgreSQL is not reachable on 127.0.0.1:5432; skipped.")
    print("peak memory of one sync bulk run (status + is_available, every row changed, ledger on)")
    print("and of consuming its outcomes download; MB = 2**20 bytes")
    header = (
        f"{'db':9}{'rows':>9}{'run s':>8}{'run peak':>10}{'off peak':>10}{'maxrss':>9}{'growth':>8}"
        f"{'dl peak':>9}{'dl bytes':>11}{'dl lines':>9}"
    )
    print(header)
    ok = True
    for engine in engines:
        found = {}
        for rows in sizes:
            print(f"{engine} N={rows:,}: seeding and measuring...", file=sys.stderr, flush=True)
            r = found[rows] = run_worker(engine, rows)
            print(
                f"{engine:9}{rows:>9,}{r['seconds']:>8.2f}{r['run_peak'] / MB:>10.1f}"
                f"{r['off_peak'] / MB:>10.1f}{r['maxrss'] / MB:>9.0f}"
                f"{r['rss_growth'] / MB:>8.1f}{r['download_peak'] / MB:>9.2f}{r['download_bytes']:>11,}"
                f"{r['download_lines']:>9,}",
                flush=True,
            )
        low, high = min(found), max(found)
        if low == high:
            continue
        diff = (found[high]["run_peak"] - found[low]["run_peak"]) / MB
        dl_diff = (found[high]["download_peak"] - found[low]["download_peak"]) / MB
        rss = (found[high]["rss_growth"] - found[low]["rss_growth"]) / MB
        line = f"  {engine}: run peak N={high:,} - N={low:,}: {diff:+.1f} MB"
        if (low, high) == (1_000, 100_000):
            good = diff <= TARGET_MB
            ok = ok and good
            line += f"  target <= {TARGET_MB:g} MB  {'PASS' if good else 'MISS'}"
        print(line)
        print(f"  {engine}: ru_maxrss growth N={high:,} - N={low:,}: {rss:+.1f} MB")
        kind = "streamed" if found[high]["streaming"] else "NOT streamed"
        print(f"  {engine}: outcomes download ({kind}) peak N={high:,} - N={low:,}: {dl_diff:+.2f} MB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
