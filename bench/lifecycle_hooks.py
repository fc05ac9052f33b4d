"""What a lifecycle hook costs a sync bulk edit (``powercrud.bulk.lifecycle``).

    python -m bench.lifecycle_hooks                   # N = 10,000, 5 rounds, SQLite
    python -m bench.lifecycle_hooks --rows 20000 --repeats 7

A throw-away SQLite database (``bench.sync_service``: migrated and seeded with N books by
``seed_books`` in another process). Each round times, interleaved, every book's ``status``
set to the value it does not hold (so every row changes):

* ``django update``: ``Book.objects.update(status=...)``, the plain-Django set-based write;
* ``django read+update``: ``list(Book.objects.all())`` then the same ``update()``, the least
  plain Django does when code must see each row's old and new instance;
* ``powercrud, no hooks``: one all-or-nothing sync bulk edit as the view runs it
  (``sync_service.sync_run``: row locks, the run record, the run ledger, the default service);
* ``powercrud, after_update hook``: the same with one no-op ``after_update`` hook on Book
  (it counts the pairs it gets): the batches are read as instances.

After every timed write the rows are checked (N rows hold the value); the hook's pair count is
checked to be N per run. Printed: the median seconds of each and the ratios of the powercrud
runs to the plain-Django ones.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import sync_service


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.lifecycle_hooks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    db_name = str(Path(tempfile.mkdtemp(prefix="pc-bench-hooks-")) / "books.sqlite3")
    sync_service.migrate_and_seed("sqlite", db_name, args.rows)
    sync_service.setup_django("sqlite", db_name)

    from powercrud.bulk import lifecycle
    from sample.models import Book

    rows = Book.objects.count()
    seen = [0]

    def count(pairs: list[Any]) -> None:
        seen[0] += len(pairs)

    flip = ["published", "draft"]
    state = {"i": 0}

    def target() -> str:
        state["i"] += 1
        return flip[state["i"] % 2]

    def django_update(value: str) -> None:
        Book.objects.update(status=value)

    def django_read_update(value: str) -> None:
        list(Book.objects.all())
        Book.objects.update(status=value)

    def powercrud(value: str) -> None:
        sync_service.sync_run({"status": value})

    def powercrud_hooked(value: str) -> None:
        lifecycle.register(lifecycle.Event.AFTER_UPDATE, Book, count)
        try:
            seen[0] = 0
            sync_service.sync_run({"status": value})
            assert seen[0] == rows, (seen[0], rows)
        finally:
            lifecycle.unregister(count)

    cases = {
        "django update": django_update,
        "django read+update": django_read_update,
        "powercrud, no hooks": powercrud,
        "powercrud, after_update hook": powercrud_hooked,
    }
    Book.objects.update(status="draft")
    powercrud(target())  # warm-up
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, run in cases.items():
            value = target()
            sync_service.tidy(["sample_book"])
            start = time.perf_counter()
            run(value)
            times[name].append(time.perf_counter() - start)
            assert Book.objects.filter(status=value).count() == rows, name
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"N = {rows:,} books, SQLite, {args.repeats} interleaved rounds (median seconds)")
    for name, value in median.items():
        print(f"  {name:32} {value:8.3f} s")
    base, read = median["django update"], median["django read+update"]
    for name in ("powercrud, no hooks", "powercrud, after_update hook"):
        print(
            f"  {name:32} {median[name] / base:6.2f}x django update, {median[name] / read:6.2f}x read+update"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
