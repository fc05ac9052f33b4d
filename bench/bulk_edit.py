"""Bulk edit benchmark: powercrud's sync bulk edit through the view against plain Django.

    python -m bench.bulk_edit                       # N = 1,000, 10,000, 100,000 on SQLite,
                                                    # and 10,000 on PostgreSQL when reachable
    python -m bench.bulk_edit --rows 10000 --db sqlite --profile
    python -m bench.bulk_edit --rows 1000 --rows 10000 --db postgres --full

For every database and N, a fresh process builds a throw-away database (a SQLite file in a
temp dir; the PostgreSQL database ``bench_powercrud`` on 127.0.0.1:5432, user ``postgres``,
dropped afterwards), migrates, seeds N books (``seed_books``) and N shelves, then measures
on the same rows, every run on freshly reset data so that every run changes every row:

* Book (no ``save()`` override, no save signals; ``bench.bulk_views``, the default service):
  powercrud through the view with the Django test client as a signed-in superuser (POST
  ``selection/`` with ``action=all``, then the timed POST ``bulk/edit/`` changing ``status``
  and ``is_available``), in all-or-nothing and in per-row mode, and all-or-nothing again with
  the run ledger off (``POWERCRUD_SETTINGS["BULK_RUN_LEDGER"] = False`` via
  ``override_settings``, in the same process, round by round with the ledger-on run; before
  every run the ledger table is emptied); and plain Django on the same
  rows: ``QuerySet.update()``, ``bulk_update(batch_size=1000)`` over the loaded objects, and
  a ``full_clean()`` + ``save(update_fields=...)`` loop.
* Shelf (a ``post_save`` receiver and ``clean()``, so powercrud saves row by row): the view,
  against a ``full_clean()`` + ``save(update_fields=...)`` loop with the same receiver.

After every view run the benchmark checks the run's ledger: exactly N ``RunRow`` rows, all
``changed``, with the old and new values (none with the ledger off), and the rows' new values.
Targets at N = 10,000 (issue 12): the ledger-on submit (the ``bulk/edit/`` POST alone, not
the "select all" before it) within 3x (SQLite) / 2x (PostgreSQL) of ``QuerySet.update()`` of
the same rows with no ``WHERE`` (every book, in ``transaction.atomic()``), in at most
10 + N/5000 statements; the ledger-off submit is reported against both too.

Seconds: median of the timed runs (wall clock); paths compared with each other run in turn,
round by round, so a busy machine slows them alike. Queries: every statement sent, counted
with ``connection.execute_wrapper`` (BEGIN, SAVEPOINT, session and user reads included).
Peak MB: the ``tracemalloc`` peak above the level at the start, from one extra run, so that
tracing does not slow the timed runs. Plain baselines run in ``transaction.atomic()``, as
powercrud does. Row-by-row paths are skipped above ``--slow-cap``; ``--full`` drops the other
shortcuts that keep the default run near five minutes (see ``--help``).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import re
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common import ROOT, postgres_reachable, run_json_worker, say

PG_DATABASE = "bench_powercrud"

# Issue 12: the set-based view's submit / an unfiltered QuerySet.update() of the same rows, at
# N = 10,000, by engine; and its statements, at most 10 + N/5000 (``query_budget()``).
SET_RATIO_TARGET = {"sqlite": 3.0, "postgres": 2.0}
LEDGER_RATIO_TARGET = 1.5  # set-based view, run ledger on / off (BULK_RUN_LEDGER)
PER_OBJECT_RATIO_TARGET = 1.3  # per-object view / full_clean() + save() loop
MEMORY_TARGET_MB = 30.0  # set-based view peak at N = 100,000 minus at N = 1,000

# Every measured run starts from RESET and writes TARGET, so every row changes.
BOOK_RESET = {"status": "draft", "is_available": True}
BOOK_TARGET = {"status": "out_of_print", "is_available": False}
SHELF_RESET = {"location": "Aisle A", "is_full": False}
SHELF_TARGET = {"location": "Aisle Z", "is_full": True}
WARM_ROWS = 10

HTMX = {"HX-Request": "true", "HX-Target": "pc-modal-body"}


@dataclass(frozen=True)
class Path_:
    label: str
    table: str  # "book" or "shelf"
    row_by_row: bool  # cost grows with a Python loop over the rows: capped by --slow-cap
    target: bool  # some target depends on its timing


PATHS = {
    "pc_set": Path_("powercrud view, set-based (all-or-nothing)", "book", False, True),
    "pc_set_off": Path_("powercrud view, set-based, run ledger off", "book", False, True),
    "pc_set_per_row": Path_("powercrud view, set-based (per-row mode)", "book", False, False),
    "qs_update": Path_("QuerySet.update()", "book", False, True),
    "bulk_update": Path_("bulk_update(batch_size=1000)", "book", True, False),
    "book_loop": Path_("full_clean() + save(update_fields) loop", "book", True, False),
    "pc_obj": Path_("powercrud view, per-object (all-or-nothing)", "shelf", True, True),
    "pc_obj_per_row": Path_("powercrud view, per-object (per-row mode)", "shelf", True, False),
    "shelf_loop": Path_("full_clean() + save(update_fields) loop", "shelf", True, True),
}
# Measured together, run by run in turn, so a busy machine slows each member alike.
GROUPS = [
    ("pc_set", "pc_set_off", "pc_set_per_row", "qs_update"),
    ("bulk_update",),
    ("book_loop",),
    ("pc_obj", "shelf_loop", "pc_obj_per_row"),
]
OPTIONAL = {"pc_obj_per_row"}  # only with --full
LEDGER_OFF = {"pc_set_off"}  # run with POWERCRUD_SETTINGS["BULK_RUN_LEDGER"] = False


@dataclass
class Measurement:
    seconds: float = 0.0  # median
    runs: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0  # median of this process's CPU time (time.process_time) per run
    cpu_runs: list[float] = field(default_factory=list)
    queries: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    peak_mb: float | None = None  # None: not traced (see --full)
    select_seconds: float | None = None  # the view paths: the "select all" request
    select_queries: int | None = None


# --------------------------------------------------------------------------------------------
# the worker: one engine, one N, in its own process
# --------------------------------------------------------------------------------------------


class QueryCounter:
    """An ``execute_wrapper`` that counts statements by their first keyword."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        self.kinds[sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"] += 1
        return execute(sql, params, many, context)

    @property
    def total(self) -> int:
        return sum(self.kinds.values())


@contextmanager
def counting() -> Iterator[QueryCounter]:
    from django.db import connection

    counter = QueryCounter()
    with connection.execute_wrapper(counter):
        yield counter


def setup_django(engine: str, db_name: str) -> None:
    os.environ["POWERCRUD_BENCH_BULK_ENGINE"] = engine
    os.environ["POWERCRUD_BENCH_BULK_DB"] = db_name
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.bulk_settings"
    import django

    django.setup()


def prepare(rows: int, shelves: int) -> float:
    """Migrate, add the superuser, seed ``rows`` books and ``shelves`` shelves; the seconds taken."""
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import transaction

    from sample.models import Shelf

    call_command("migrate", verbosity=0)
    User.objects.create_superuser("bench", password="bench")
    started = time.perf_counter()
    call_command("seed_books", books=rows, quiet=True, stdout=io.StringIO())
    rng = random.Random(7)
    with transaction.atomic():
        Shelf.objects.all().delete()  # the 20 demo shelves seed_books adds
        Shelf.objects.bulk_create(
            (
                Shelf(name=f"Shelf {i:07d}", capacity=rng.randrange(20, 80), **SHELF_RESET)
                for i in range(shelves)
            ),
            batch_size=5000,
        )
    return time.perf_counter() - started


class Bench:
    """The measured operations, each with its reset and its check."""

    def __init__(self) -> None:
        from django.contrib.auth.models import User
        from django.test import Client

        from bench.bulk_views import (
            BenchBookPerRowModeView,
            BenchBookView,
            BenchShelfPerRowModeView,
            BenchShelfView,
        )
        from sample.models import Book, Shelf

        self.client = Client()
        self.client.force_login(User.objects.get(username="bench"))
        self.urls = {
            "pc_set": BenchBookView.get_url_base(),
            "pc_set_off": BenchBookView.get_url_base(),
            "pc_set_per_row": BenchBookPerRowModeView.get_url_base(),
            "pc_obj": BenchShelfView.get_url_base(),
            "pc_obj_per_row": BenchShelfPerRowModeView.get_url_base(),
        }
        self.pks = {
            "book": list(Book.objects.order_by("pk").values_list("pk", flat=True)),
            "shelf": list(Shelf.objects.order_by("pk").values_list("pk", flat=True)),
        }

    def rows(self, key: str) -> int:
        return len(self.pks[PATHS[key].table])

    # --- resets and checks ----------------------------------------------------------------------

    def reset(self, key: str) -> None:
        """Every row back to the RESET values; then the database tidied, so no run pays for
        an earlier one (SQLite: the WAL checkpointed; PostgreSQL: dead row versions vacuumed)."""
        from django.db import connection

        from powercrud.models import RunRow
        from sample.models import Book, Shelf, ShelfEvent

        RunRow.objects.all().delete()  # every ledger-on run starts from an empty ledger
        if PATHS[key].table == "book":
            Book.objects.update(**BOOK_RESET)
            tables = [Book._meta.db_table, RunRow._meta.db_table]
        else:
            Shelf.objects.update(**SHELF_RESET)
            ShelfEvent.objects.all().delete()
            tables = [Shelf._meta.db_table, ShelfEvent._meta.db_table, RunRow._meta.db_table]
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            elif connection.vendor == "postgresql":
                cursor.execute(f"VACUUM {', '.join(connection.ops.quote_name(t) for t in tables)}")

    def check(self, key: str) -> None:
        rows = self.rows(key)
        from sample.models import Book, Shelf, ShelfEvent

        if PATHS[key].table == "book":
            done = Book.objects.filter(**BOOK_TARGET).count()
        else:
            done = Shelf.objects.filter(**SHELF_TARGET).count()
            events = ShelfEvent.objects.count()
            if events != rows:
                raise AssertionError(f"{key}: {events} post_save events for {rows} rows")
        if done != rows:
            raise AssertionError(f"{key}: {done} of {rows} rows have the new values")
        if key in self.urls:
            self.check_ledger(key)

    def check_ledger(self, key: str) -> None:
        """The run just made: its ledger has one ``changed`` row per row with the old and new
        values (ledger on), or no row at all (ledger off)."""
        from django.db.models import Count

        from powercrud.models import BulkTask, RunRow

        rows = self.rows(key)
        run = BulkTask.objects.order_by("-pk").first()
        if run is None or run.total != rows or run.status != BulkTask.Status.SUCCEEDED:
            raise AssertionError(f"{key}: the last bulk run is {run and (run.status, run.total)}")
        entries = RunRow.objects.filter(run_id=run.pk)
        found = dict(entries.values_list("outcome").annotate(n=Count("id")).order_by())
        expected = {} if key in LEDGER_OFF else {"changed": rows}
        if found != expected:
            raise AssertionError(f"{key}: run #{run.pk} ledger {found}, expected {expected}")
        if key in LEDGER_OFF:
            return
        reset, target = (
            (BOOK_RESET, BOOK_TARGET) if PATHS[key].table == "book" else (SHELF_RESET, SHELF_TARGET)
        )
        sample = entries.order_by("pk").first()
        assert sample is not None
        if (sample.old, sample.new) != (reset, target):
            raise AssertionError(f"{key}: ledger row old={sample.old} new={sample.new}")
        if not entries.filter(object_pk=str(self.pks[PATHS[key].table][0])).exists():
            raise AssertionError(f"{key}: the first row is not in the ledger")

    # --- the view ---------------------------------------------------------------------------------

    def select_all(self, key: str, query: str = "") -> None:
        response = self.client.post(
            f"/{self.urls[key]}/selection/", {"action": "all", "query": query}, headers=HTMX
        )
        if response.status_code != 200:
            raise AssertionError(f"{key}: selection answered {response.status_code}")

    def submit(self, key: str) -> Callable[[], None]:
        target = BOOK_TARGET if PATHS[key].table == "book" else SHELF_TARGET
        data: dict[str, str] = {}
        for name, value in target.items():
            data[f"change_{name}"] = "on"
            data[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
        url = f"/{self.urls[key]}/bulk/edit/"
        from django.conf import settings
        from django.test import override_settings

        settings_off = {**getattr(settings, "POWERCRUD_SETTINGS", {}), "BULK_RUN_LEDGER": False}

        def run() -> None:
            if key in LEDGER_OFF:
                with override_settings(POWERCRUD_SETTINGS=settings_off):
                    response = self.client.post(url, data, headers=HTMX)
            else:
                response = self.client.post(url, data, headers=HTMX)
            if response.status_code != 204:
                body = response.content.decode()[:600]
                raise AssertionError(f"{key}: bulk edit answered {response.status_code}: {body}")

        return run

    def warm_view(self, key: str) -> None:
        """One small edit first: imports, URL resolving, form classes, templates all warmed."""
        from sample.models import Book, Shelf

        self.reset(key)
        if PATHS[key].table == "book":
            Book.objects.filter(pk__in=self.pks["book"][:WARM_ROWS]).update(status="archived")
            self.select_all(key, "status=archived")
        else:
            Shelf.objects.filter(pk__in=self.pks["shelf"][:WARM_ROWS]).update(location="warm")
            self.select_all(key, "location=warm")
        self.submit(key)()

    # --- plain Django -----------------------------------------------------------------------------

    def plain(self, key: str, limit: int | None = None) -> Callable[[], None]:
        from django.db import transaction
        from django.db.models import Model

        from sample.models import Book, Shelf

        model: type[Model] = Book if PATHS[key].table == "book" else Shelf
        target = BOOK_TARGET if model is Book else SHELF_TARGET
        names = list(target)
        manager = model._default_manager
        queryset = manager.order_by("pk")
        if limit is not None:
            pks = self.pks[PATHS[key].table][:limit]
            queryset = queryset.filter(pk__in=pks)

        def qs_update() -> None:
            with transaction.atomic():
                queryset.update(**target)

        def bulk_update() -> None:
            with transaction.atomic():
                objs = list(queryset.all())  # .all(): a fresh read every run, no result cache
                for obj in objs:
                    for name, value in target.items():
                        setattr(obj, name, value)
                manager.bulk_update(objs, names, batch_size=1000)

        def loop() -> None:
            with transaction.atomic():
                for obj in queryset.all():
                    for name, value in target.items():
                        setattr(obj, name, value)
                    obj.full_clean()
                    obj.save(update_fields=names)

        return {"qs_update": qs_update, "bulk_update": bulk_update}.get(key, loop)

    # --- measuring --------------------------------------------------------------------------------

    def operation(self, key: str) -> Callable[[], None]:
        """The measured call for ``key``, after warming it up on a few rows."""
        if key in self.urls:
            self.warm_view(key)
            return self.submit(key)
        self.reset(key)
        self.plain(key, limit=WARM_ROWS)()
        return self.plain(key)

    def measure_group(self, keys: Sequence[str], repeats: int, traced: set[str]) -> dict[str, Measurement]:
        """Time ``keys`` in turn, ``repeats`` rounds; then one traced run each of ``traced``."""
        operations = {key: self.operation(key) for key in keys}
        results = {key: Measurement() for key in keys}
        selects: dict[str, list[float]] = {key: [] for key in keys}
        for _ in range(repeats):
            for key in keys:
                result = results[key]
                self.reset(key)
                if key in self.urls:
                    started = time.perf_counter()
                    with counting() as selecting:
                        self.select_all(key)
                    selects[key].append(time.perf_counter() - started)
                    result.select_queries = selecting.total
                with counting() as counter:
                    cpu = time.process_time()
                    started = time.perf_counter()
                    operations[key]()
                    result.runs.append(time.perf_counter() - started)
                    result.cpu_runs.append(time.process_time() - cpu)
                result.queries = counter.total
                result.kinds = dict(counter.kinds)
                self.check(key)
        for key in keys:
            result = results[key]
            result.seconds = statistics.median(result.runs)
            result.cpu_seconds = statistics.median(result.cpu_runs)
            if selects[key]:
                result.select_seconds = statistics.median(selects[key])
            if key not in traced:
                continue
            self.reset(key)
            if key in self.urls:
                self.select_all(key)
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            operations[key]()
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            self.check(key)
            result.peak_mb = (peak - base) / 2**20
        return results

    def profile(self, key: str) -> str:
        """A cProfile of one more view submit."""
        self.reset(key)
        self.select_all(key)
        profiler = cProfile.Profile()
        operation = self.submit(key)
        profiler.enable()
        operation()
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(r"powercrud/", 22)
        stats.sort_stats("tottime").print_stats(14)
        text = out.getvalue().replace(str(Path(sys.prefix)), "<venv>").replace(str(ROOT), ".")
        return re.sub(r"\n{3,}", "\n\n", text)


def active_paths(rows: int, args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The paths measured at ``rows``, and why each other one is not."""
    active, skipped = [], {}
    for key, path in PATHS.items():
        if key in args.skip:
            skipped[key] = "--skip"
        elif key in OPTIONAL and not args.full:
            skipped[key] = "add --full"
        elif key == "book_loop" and args.engine == "postgres" and not args.full:
            skipped[key] = "on PostgreSQL only with --full"
        elif path.row_by_row and rows > args.slow_cap:
            skipped[key] = f"row-by-row, N > --slow-cap {args.slow_cap:,}"
        else:
            active.append(key)
    return active, skipped


def repeats_for(keys: Sequence[str], rows: int, args: argparse.Namespace) -> int:
    """Timed runs for a group: ``--repeats``, fewer for row-by-row paths (see ``--help``)."""
    if args.full or not any(PATHS[key].row_by_row for key in keys):
        return int(args.repeats)
    if not any(PATHS[key].target for key in keys):
        return 1 if rows > 1_000 else min(args.repeats, 3)
    return min(args.repeats, 3 if rows <= 1_000 else 2)


def worker(args: argparse.Namespace) -> int:
    engine, rows = args.engine, args.rows[0]
    active, skipped = active_paths(rows, args)
    shelves = rows if any(PATHS[key].table == "shelf" for key in active) else 0
    with tempfile.TemporaryDirectory(prefix="powercrud-bulk-bench-") as tmp:
        db_name = PG_DATABASE if engine == "postgres" else str(Path(tmp) / "bench.sqlite3")
        setup_django(engine, db_name)
        import django
        from django.db import connection

        seed_seconds = prepare(rows, shelves)
        bench = Bench()
        results: dict[str, Any] = {}
        repeats: dict[str, int] = {}
        for group in GROUPS:
            keys = [key for key in group if key in active]
            if not keys:
                continue
            count = repeats_for(keys, rows, args)
            traced = {key for key in keys if args.full or not PATHS[key].row_by_row or rows <= 1_000}
            started = time.perf_counter()
            for key, measurement in bench.measure_group(keys, count, traced).items():
                results[key] = asdict(measurement)
                repeats[key] = count
            say(
                f"  {engine} N={rows:,}: "
                + ", ".join(f"{key} {results[key]['seconds']:.3f}s" for key in keys)
                + f"  ({time.perf_counter() - started:.0f}s with resets and traced runs)"
            )
        profiles = {}
        if args.profile:
            for key in ("pc_set", "pc_obj"):
                if key in active:
                    profiles[key] = bench.profile(key)
        report = {
            "engine": engine,
            "rows": rows,
            "repeats": repeats,
            "skipped": skipped,
            "seed_seconds": seed_seconds,
            "database": f"{connection.vendor} {database_version()}",
            "django": django.get_version(),
            "python": sys.version.split()[0],
            "results": results,
            "profiles": profiles,
        }
        connection.close()
    Path(args.out).write_text(json.dumps(report))
    return 0


def database_version() -> str:
    from django.db import connection

    if connection.vendor == "sqlite":
        import sqlite3

        return sqlite3.sqlite_version
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return str(cursor.fetchone()[0])


# --------------------------------------------------------------------------------------------
# the parent: one worker per (engine, N), then the tables
# --------------------------------------------------------------------------------------------


def run_worker(engine: str, rows: int, args: argparse.Namespace) -> dict[str, Any]:
    options = ["--rows", str(rows), "--repeats", str(args.repeats), "--slow-cap", str(args.slow_cap)]
    options += ["--profile"] if args.profile else []
    options += ["--full"] if args.full else []
    for key in args.skip:
        options += ["--skip", key]
    report: dict[str, Any] = run_json_worker(
        "bench.bulk_edit", engine, options, label=f"{engine} N={rows:,}", pg_database=PG_DATABASE
    )
    return report


def query_budget(rows: int) -> int:
    """Issue 12's statements for the submit of a sync run of ``rows`` rows: 10 + N/5000."""
    return 10 + rows // 5000


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_report(report: dict[str, Any]) -> dict[str, bool]:
    rows, res = report["rows"], report["results"]
    title = f"{report['database']}, N = {rows:,}"
    print(title)
    print("=" * len(title))
    print(f"seeded in {report['seed_seconds']:.1f} s; seconds = median of the runs counted in 'runs'")
    header = (
        f"{'table':6} {'path':46} {'runs':>4} {'seconds':>9} {'rows/s':>10} {'queries':>8} {'peak MB':>8}"
    )
    print(header)
    print("-" * len(header))
    for key, path in PATHS.items():
        if key not in res:
            if key in report["skipped"] and key not in OPTIONAL:
                print(f"{path.table:6} {path.label:46} skipped ({report['skipped'][key]})")
            continue
        m = res[key]
        count = m["queries"]
        peak = "-" if m["peak_mb"] is None else f"{m['peak_mb']:.1f}"
        print(
            f"{path.table:6} {path.label:46} {report['repeats'][key]:4} {m['seconds']:9.4f}"
            f" {rows / m['seconds']:10,.0f} {count:8,} {peak:>8}"
        )
    print(
        "(peak MB '-': not traced at this N, see --full)"
        if any(m["peak_mb"] is None for m in res.values())
        else "",
        end="",
    )
    print()
    for key in ("pc_set", "pc_set_off", "pc_set_per_row", "pc_obj"):
        if key in res:
            m = res[key]
            kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(m["kinds"].items(), key=lambda kv: -kv[1]))
            print(f"{PATHS[key].label}: {kinds}")
            print(f"  (before it, select all: {m['select_seconds']:.4f} s, {m['select_queries']} queries)")
    print()
    checks: dict[str, bool] = {}

    def ratio(name: str, num: str, den: str, target: float | None) -> None:
        if num not in res or den not in res:
            return
        value = res[num]["seconds"] / res[den]["seconds"]
        line = f"  {name:54} {value:8.2f}x"
        if target is not None:
            ok = value <= target
            checks[f"{num}/{den}"] = ok
            line += f"   target <= {target:g}x  {verdict(ok)}"
        print(line)

    print("ratios (seconds):")
    engine_target = SET_RATIO_TARGET[report["engine"]]
    set_target = engine_target if rows == 10_000 else None
    ratio("powercrud set-based / QuerySet.update()", "pc_set", "qs_update", set_target)
    if rows != 10_000 and "pc_set" in res and "qs_update" in res:
        print(f"  {'':54} {'':9}   (the {engine_target:g}x target is stated for N = 10,000)")
    ratio("run ledger on / off (set-based view)", "pc_set", "pc_set_off", LEDGER_RATIO_TARGET)
    ratio("powercrud set-based, ledger off / QuerySet.update()", "pc_set_off", "qs_update", None)
    if "qs_update" in res and res["qs_update"]["cpu_seconds"]:
        base = res["qs_update"]["cpu_seconds"]
        where = "with SQLite's own work" if report["engine"] == "sqlite" else "PostgreSQL's work not included"
        print(f"  CPU time of this process ({where}), / QuerySet.update():")
        for key in ("pc_set", "pc_set_off"):
            if key in res:
                cpu = res[key]["cpu_seconds"]
                ms = f"({cpu * 1000:.1f} / {base * 1000:.1f} ms)"
                print(f"    {PATHS[key].label:52} {cpu / base:8.2f}x   {ms}")
    ratio("powercrud set-based / bulk_update()", "pc_set", "bulk_update", None)
    ratio("powercrud set-based / Book full_clean()+save() loop", "pc_set", "book_loop", None)
    ratio("powercrud set-based, per-row mode / QuerySet.update()", "pc_set_per_row", "qs_update", None)
    ratio(
        "powercrud per-object / Shelf full_clean()+save() loop",
        "pc_obj",
        "shelf_loop",
        PER_OBJECT_RATIO_TARGET,
    )
    ratio(
        "powercrud per-object, per-row mode / the same loop",
        "pc_obj_per_row",
        "shelf_loop",
        PER_OBJECT_RATIO_TARGET,
    )
    budget = query_budget(rows)
    print(f"statements of the submit (issue 12: at most 10 + N/5000 = {budget}):")
    for key in ("pc_set", "pc_set_off", "pc_set_per_row"):
        if key in res:
            queries = res[key]["queries"]
            ok = queries <= budget
            note = "" if key == "pc_set" else "  (no target)"
            if key == "pc_set":
                checks["queries"] = ok
            print(f"  {PATHS[key].label:54} {queries:9,}   {verdict(ok)}{note}")
    if "pc_set" in res and "pc_set_off" in res:
        extra = res["pc_set"]["queries"] - res["pc_set_off"]["queries"]
        print(f"  {'statements the ledger adds (on - off)':54} {extra:9,}")
    print()
    return checks


def print_memory(reports: list[dict[str, Any]]) -> bool | None:
    """Peak memory of the view paths at the smallest and largest N; the set-based target."""
    ok: bool | None = None
    lines = []
    for engine in dict.fromkeys(r["engine"] for r in reports):
        for key in ("pc_set", "pc_set_off", "pc_set_per_row", "pc_obj"):
            peaks = {
                r["rows"]: r["results"][key]["peak_mb"]
                for r in reports
                if r["engine"] == engine and r["results"].get(key, {}).get("peak_mb") is not None
            }
            if len(peaks) < 2:
                continue
            low, high = min(peaks), max(peaks)
            diff = peaks[high] - peaks[low]
            line = (
                f"  {engine:8} {PATHS[key].label:46} N={low:,}: {peaks[low]:5.1f} MB"
                f"  N={high:,}: {peaks[high]:5.1f} MB  diff {diff:+5.1f} MB"
            )
            if key == "pc_set" and (low, high) == (1_000, 100_000):
                good = diff <= MEMORY_TARGET_MB
                ok = good if ok is None else ok and good
                line += f"  target <= {MEMORY_TARGET_MB:g} MB  {verdict(good)}"
            lines.append(line)
    if lines:
        print("memory: tracemalloc peak of the submit request, smallest vs largest N")
        print("\n".join(lines))
    return ok


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bulk_edit", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rows", type=int, action="append", help="N; repeatable (default: 1000, 10000 and 100000)"
    )
    parser.add_argument(
        "--db",
        choices=["sqlite", "postgres", "all"],
        default="all",
        help="all (default): SQLite, plus PostgreSQL when it is reachable",
    )
    parser.add_argument(
        "--pg-rows",
        type=int,
        action="append",
        help="N for PostgreSQL; repeatable (default: 10000 when --rows is not given, else --rows)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="timed runs per path (default 5); to keep a run short, without --full the row-by-row "
        "paths get fewer: per-object and its loop 3 (2 when N > 1,000), bulk_update and the Book "
        "loop 3 (1 when N > 1,000)",
    )
    parser.add_argument(
        "--slow-cap",
        type=int,
        default=10_000,
        help="row-by-row paths (bulk_update, loops, per-object) only up to this N (default 10000)",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="no shortcuts: --repeats for every path, memory traced for every path at every N "
        "(tracemalloc slows the row-by-row paths about 4x), the per-object path in per-row mode "
        "too, and the Book full_clean()+save() loop on PostgreSQL too",
    )
    parser.add_argument(
        "--profile", action="store_true", help="print a cProfile of one powercrud submit per path"
    )
    parser.add_argument("--skip", action="append", default=[], choices=list(PATHS), help="leave out a path")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="sqlite", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    rows = args.rows or [1_000, 10_000, 100_000]
    plan: list[tuple[str, int]] = []
    if args.db in ("sqlite", "all"):
        plan += [("sqlite", n) for n in rows]
    if args.db == "postgres" or (args.db == "all" and postgres_reachable()):
        default_pg = rows if args.db == "postgres" or args.rows else [10_000]
        plan += [("postgres", n) for n in (args.pg_rows or default_pg)]
    elif args.db == "all":
        say("PostgreSQL is not reachable on 127.0.0.1:5432; SQLite only.")
    started = time.perf_counter()
    reports = []
    for engine, n in plan:
        say(f"{engine} N={n:,}: seeding and measuring...")
        reports.append(run_worker(engine, n, args))
    print()
    first = reports[0]
    print(
        f"powercrud bulk edit benchmark: Django {first['django']}, Python {first['python']}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}. Every run changes two fields "
        "of every row: status + is_available (Book: no save() override, no save signals) or "
        "location + is_full (Shelf: a post_save receiver and clean())."
    )
    print()
    all_ok = True
    for report in reports:
        checks = print_report(report)
        all_ok = all_ok and all(checks.values())
    memory_ok = print_memory(reports)
    if memory_ok is not None:
        all_ok = all_ok and memory_ok
    for report in reports:
        for key, text in report["profiles"].items():
            print(f"\n=== cProfile: {PATHS[key].label}, {report['database']}, N={report['rows']:,} ===")
            print(text)
    print(
        f"\ntotal wall time {time.perf_counter() - started:.0f} s; targets: "
        f"{'all met' if all_ok else 'NOT all met (see MISS above)'}"
        " (per-row mode's query count is shown against the budget for information only)"
    )
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
