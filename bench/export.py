"""Export benchmark: powercrud's list export against plain ``csv`` from ``values_list()``, same run.

    python -m bench.export --rows 1000000 --db /tmp/books-1m.sqlite3   # reuses bench.list_page's file
    python -m bench.export --rows 100000                                 # a throw-away database
    python -m bench.export --rows 100000 --json --xlsx                   # the other formats too

Timed, per format, median of ``--repeats`` (the two CSV paths interleaved round by round): the
whole download of ``/book/export/?export=csv``
(``sample.views.BookCRUDView``, every row of the list, signed in as a superuser) through the
Django test client, every streamed block consumed; against it, plain Django writing the same
rows and columns (the key, the list's fields, the tags as their keys) with ``csv.writer`` from
``values_list().iterator()`` and one tag query per 2,000 rows, into a sink that keeps nothing.
Checked after each run: both files have N + 1 lines and the same keys in the same order.

Memory: ``tracemalloc``'s peak while the CSV download of N rows is consumed, against the same
download of 1,000 rows (a second, small database seeded by this command). Target (issue 14):
time within 2x of plain ``csv``; peak within 15 MB of the 1,000-row export.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.list_page import prepare_database, setup_django

TIME_TARGET = 2.0
MEMORY_TARGET_MB = 15.0
SMALL = 1_000
CHUNK = 2000


class Digest:
    """A sink for CSV text that keeps only the line count and a hash of the first column."""

    def __init__(self) -> None:
        self.lines = 0
        self.keys = hashlib.sha256()

    def feed_text(self, text: str) -> None:
        for line in csv.reader(text.splitlines()):
            self.lines += 1
            self.keys.update(line[0].encode() + b"\n")


class _Echo:
    def write(self, value: str) -> str:
        return value


def plain_csv(sink: Digest | None) -> None:
    """Plain Django: the same rows and columns, ``csv.writer`` over ``values_list().iterator()``."""
    from sample.models import Book

    through = Book.tags.through
    names = ["id", "title", "author_id", "genre_id", "status", "price", "published_date", "pages"]
    names += ["is_available"]
    writer = csv.writer(_Echo())
    feed = sink.feed_text if sink is not None else (lambda text: None)
    feed(writer.writerow([*names, "tags"]))
    rows = Book.objects.order_by("title", "pk").values_list(*names).iterator(chunk_size=CHUNK)
    while chunk := list(itertools.islice(rows, CHUNK)):
        links: dict[int, list[int]] = {}
        for book, tag in through.objects.filter(book_id__in=[r[0] for r in chunk]).values_list(
            "book_id", "tag_id"
        ):
            links.setdefault(book, []).append(tag)
        feed(
            "".join(
                writer.writerow([*row, ", ".join(str(t) for t in sorted(links.get(row[0], ())))])
                for row in chunk
            )
        )


def powercrud_export(client: Any, fmt: str, sink: Digest | None) -> int:
    """One whole download; returns its size in bytes."""
    response = client.get("/book/export/", {"export": fmt})
    assert response.status_code == 200, response.status_code
    size = 0
    for block in response.streaming_content:
        size += len(block)
        if sink is not None:
            sink.feed_text(block.decode())
    return size


def timed(runs: list[Callable[[], Any]], repeats: int) -> list[tuple[float, list[float]]]:
    """Each of ``runs`` timed ``repeats`` times, interleaved round by round, so a machine that
    gets busier or quieter meanwhile weighs on all of them alike; (median, times) of each."""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for index, run in enumerate(runs):
            started = time.perf_counter()
            run()
            times[index].append(time.perf_counter() - started)
    return [(statistics.median(t), t) for t in times]


def peak_mb(client: Any) -> float:
    """tracemalloc's peak above the start while the CSV download is consumed."""
    tracemalloc.start()
    start, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    powercrud_export(client, "csv", None)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (peak - start) / 2**20


def client_for_bench() -> Any:
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client()
    client.force_login(User.objects.get(username="bench"))
    return client


def memory_child(db: Path, rows: int) -> None:
    """In its own process: seed (or reuse) ``db`` with ``rows`` books, print the export's peak."""
    setup_django(db)
    prepare_database(rows)
    client = client_for_bench()
    powercrud_export(client, "csv", None)  # warm: imports, templates, URL resolving
    print(json.dumps({"peak_mb": peak_mb(client)}))


def run_memory(db: Path, rows: int) -> float:
    out = subprocess.run(
        [sys.executable, "-m", "bench.export", "--memory-child", "--db", str(db), "--rows", str(rows)],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout
    return float(json.loads(out.strip().splitlines()[-1])["peak_mb"])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.export", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="books (default 100,000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed downloads per path (default 3)")
    parser.add_argument("--db", type=Path, help="SQLite file to use and keep; reused if it has --rows books")
    parser.add_argument("--json", action="store_true", help="also time the JSON export (no target)")
    parser.add_argument("--xlsx", action="store_true", help="also time the XLSX export (no target)")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory_child:
        memory_child(args.db, args.rows)
        return 0
    with tempfile.TemporaryDirectory(prefix="powercrud-bench-export-") as tmp:
        db = args.db or Path(tmp) / "books.sqlite3"
        setup_django(db)
        seeded = prepare_database(args.rows)
        client = client_for_bench()
        import django

        print(f"powercrud export vs csv from values_list(): {args.rows:,} books, SQLite ({db})")
        print(f"Django {django.get_version()}, Python {sys.version.split()[0]}, median of {args.repeats}")
        print("seeding: skipped (reused database)" if seeded is None else f"seeding: {seeded:.1f} s")
        ok = True

        ours, plain = Digest(), Digest()
        powercrud_export(client, "csv", ours)  # warm-up, and the check
        plain_csv(plain)
        same = (ours.lines, ours.keys.digest()) == (plain.lines, plain.keys.digest())
        if not same or ours.lines != args.rows + 1:
            print(f"CHECK FAILED: powercrud {ours.lines:,} lines, plain {plain.lines:,}, same keys: {same}")
            return 1
        print(f"checked: both files have {ours.lines:,} lines and the same keys in the same order")

        size = powercrud_export(client, "csv", None)
        (plain_s, plain_all), (csv_s, csv_all) = timed(
            [lambda: plain_csv(None), lambda: powercrud_export(client, "csv", None)], args.repeats
        )
        ratio = csv_s / plain_s
        ok &= ratio <= TIME_TARGET
        print()
        print(f"{'path':44} {'median s':>9}  runs")
        runs = ", ".join(f"{t:.2f}" for t in plain_all)
        print(f"{'plain csv.writer over values_list()':44} {plain_s:9.2f}  {runs}")
        print(
            f"{'powercrud CSV export (' + format(size / 2**20, '.1f') + ' MB)':44} {csv_s:9.2f}  "
            f"{', '.join(f'{t:.2f}' for t in csv_all)}"
        )
        for fmt, wanted in (("json", args.json), ("xlsx", args.xlsx)):
            if wanted:
                fmt_size = powercrud_export(client, fmt, None)
                ((fmt_s, fmt_all),) = timed([lambda f=fmt: powercrud_export(client, f, None)], args.repeats)
                label = f"powercrud {fmt.upper()} export ({fmt_size / 2**20:.1f} MB)"
                print(
                    f"{label:44} {fmt_s:9.2f}  {', '.join(f'{t:.2f}' for t in fmt_all)}"
                    f"  ({fmt_s / plain_s:.2f}x plain csv, no target)"
                )
        verdict = "met" if ratio <= TIME_TARGET else "MISSED"
        print(f"CSV export / plain csv: {ratio:.2f}x (target <= {TIME_TARGET}x: {verdict})")

        small_db = Path(tmp) / "books-small.sqlite3"
        big_peak = run_memory(db, args.rows)
        small_peak = run_memory(small_db, SMALL)
        grew = big_peak - small_peak
        ok &= grew <= MEMORY_TARGET_MB
        print(
            f"peak memory of the CSV download: {big_peak:.2f} MB at {args.rows:,} rows, "
            f"{small_peak:.2f} MB at {SMALL:,}: +{grew:.2f} MB "
            f"(target <= {MEMORY_TARGET_MB:.0f} MB: {'met' if grew <= MEMORY_TARGET_MB else 'MISSED'})"
        )
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
