"""Undo benchmark: the undo of a bulk run against the run itself, through the view.

    python -m bench.undo                                 # N = 100,000, SQLite and PostgreSQL
    python -m bench.undo --rows 10000 --db sqlite --repeats 1

For each database, a fresh process builds a throw-away database (a SQLite file in a temp
dir; the PostgreSQL database ``bench_powercrud_undo`` on 127.0.0.1:5432, user ``postgres``,
dropped afterwards), migrates and seeds N books (``seed_books``: prices 2.99-89.98, about
8,700 distinct), then drives ``bench.bulk_views.BenchBookUndoView`` (the library's default
service, all-or-nothing, ``bulk_min_async_records`` = 10**9 so every run is in the request)
with the Django test client as a signed-in superuser, round by round:

* ``price``: the edit ``price = 12.34`` of every book (after ``selection/`` ``action=all``,
  not timed), timed: the ``bulk/edit/`` POST; then the undo, timed: the ``bulk/edit/`` POST
  with ``undo_run=<the edit's id>``. The old prices vary per row, so each batch of the undo
  has about 1,000 distinct old values: the worst case of its grouped write (more than 20
  distinct values per batch: one ``bulk_update()`` per batch instead of one ``UPDATE`` per
  value).
* ``status``: the edit ``status = archived`` over books whose status is draft, published or
  out of print by ``pk % 3`` (set once, not timed): three distinct old values, so three
  ``UPDATE`` statements per batch.
* ``delete``: the bulk delete of every book (``bulk/delete/``, timed) and its undo (the
  restore: ``bulk/delete/`` with ``undo_run``, timed), which re-creates every book with its
  key, every field and its tag links.

Before every timed POST the database is tidied (SQLite: WAL checkpoint; PostgreSQL:
``VACUUM`` of the books, their tag links and the ledger), and before every round the ledger
table is emptied. After every run (not timed) it checks: the edit's books have the new value
and its ``row_counts`` is ``{"changed": N}``; after the undo every book has its value from
the snapshot taken before the edit (price or status, compared row by row), the undo run
succeeded, says ``source_action="undo"`` and has ``row_counts == {"changed": N}``; after the
restore every book is back with every field (``values()`` compared row by row) and every tag
link. Query counts: every statement of the timed POST (``connection.execute_wrapper``).

It prints the median seconds of the run and of its undo, undo / run (target: at most 2x) and
each round's ratio. Exit status 1 when a ratio misses the target or a check fails.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench import async_bulk
from bench.bulk_edit import HTMX, counting, prepare, setup_django
from bench.common import postgres_reachable, run_json_worker, say

PG_DATABASE = "bench_powercrud_undo"
UNDO_RATIO_TARGET = 2.0  # undo / the run it undoes, seconds
CASES = ("price", "status", "delete")
NEW_PRICE = Decimal("12.34")
NEW_STATUS = "archived"
OLD_STATUSES = ("draft", "published", "out_of_print")
WARM_ROWS = 10


class UndoBench:
    def __init__(self, rows: int) -> None:
        from django.contrib.auth.models import User
        from django.test import Client

        from bench.bulk_views import BenchBookUndoView

        self.rows = rows
        self.client = Client()
        self.client.force_login(User.objects.get(username="bench"))
        self.url = "/" + BenchBookUndoView.get_url_base()

    # --- state ----------------------------------------------------------------------------------

    def tidy(self) -> None:
        from django.db import connection

        from powercrud.models import RunRow
        from sample.models import Book

        tables = [Book._meta.db_table, Book.tags.through._meta.db_table, RunRow._meta.db_table]
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            else:
                cursor.execute(f"VACUUM {', '.join(connection.ops.quote_name(t) for t in tables)}")

    def prepare_case(self, case: str) -> None:
        """Untimed: every book gets a value the edit changes."""
        from django.db.models.functions import Mod

        from sample.models import Book

        if case == "price":
            Book.objects.filter(price=NEW_PRICE).update(price=Decimal("12.35"))
        elif case == "status":
            for rest, status in enumerate(OLD_STATUSES):
                books = Book.objects.annotate(rest=Mod("pk", len(OLD_STATUSES)))
                books.filter(rest=rest).update(status=status)

    def snapshot(self, case: str) -> Any:
        from sample.models import Book

        if case == "delete":
            links = Book.tags.through.objects.order_by("book_id", "tag_id").values_list("book_id", "tag_id")
            return list(Book.objects.order_by("pk").values()), list(links)
        return dict(Book.objects.values_list("pk", case))

    # --- the view -------------------------------------------------------------------------------

    def post(self, path: str, data: dict[str, str], expected: int) -> tuple[float, int]:
        """One timed POST: seconds, statements."""
        self.tidy()
        with counting() as counter:
            started = time.perf_counter()
            response = self.client.post(f"{self.url}/{path}/", data, headers=HTMX)
            seconds = time.perf_counter() - started
        if response.status_code != expected:
            body = response.content.decode()[:600]
            raise AssertionError(f"{path} {data}: answered {response.status_code}: {body}")
        return seconds, counter.total

    def warm(self) -> None:
        """Untimed: each case and its undo once over the first few books (imports, forms,
        URLs, the first queries); the undos leave the books as they were."""
        from sample.models import Book

        pks = list(Book.objects.order_by("pk").values_list("pk", flat=True)[:WARM_ROWS])
        for case, data in (
            ("price", {"change_price": "on", "price": str(NEW_PRICE)}),
            ("status", {"change_status": "on", "status": "published"}),
            ("delete", {}),
        ):
            self.select_pks(pks)
            path = "bulk/delete" if case == "delete" else "bulk/edit"
            self.post(path, data, 204)
            self.run_undo(case, self.last_run(f"warm {case}", None, 0).pk)
            self.last_run(f"warm undo of {case}", "undo", 0)
        if Book.objects.count() != self.rows:
            raise AssertionError("the warm-up's restore did not bring back every book")

    def select(self, data: dict[str, Any]) -> None:
        response = self.client.post(f"{self.url}/selection/", data, headers=HTMX)
        if response.status_code != 200:
            raise AssertionError(f"selection {data.get('action')} answered {response.status_code}")

    def select_pks(self, pks: list[int]) -> None:
        self.select({"action": "clear"})
        self.select({"action": "set", "pk": [str(pk) for pk in pks], "checked": "1"})

    def run_original(self, case: str) -> tuple[float, int]:
        self.select({"action": "all", "query": ""})
        if case == "delete":
            return self.post("bulk/delete", {}, 204)
        value = str(NEW_PRICE) if case == "price" else NEW_STATUS
        return self.post("bulk/edit", {f"change_{case}": "on", case: value}, 204)

    def run_undo(self, case: str, run_id: int) -> tuple[float, int]:
        path = "bulk/delete" if case == "delete" else "bulk/edit"
        return self.post(path, {"undo_run": str(run_id)}, 200)  # htmx: HX-Redirect to the run page

    # --- checks ---------------------------------------------------------------------------------

    def counts_ok(self, counts: dict[str, int], rows: int | None) -> bool:
        """``{"changed": N}``; for the warm-up (``rows`` = 0) any run that changed rows."""
        return counts.get("changed", 0) > 0 if rows == 0 else counts == {"changed": rows or self.rows}

    def last_run(self, what: str, source_action: str | None, rows: int | None = None) -> Any:
        from powercrud.models import BulkTask

        run = BulkTask.objects.order_by("-pk").first()
        stored = run.stored_request if run is not None else None
        if run is None or stored is None or stored.source_action != source_action:
            raise AssertionError(f"{what}: the last run is {run and (run.pk, stored)}")
        if run.status != BulkTask.Status.SUCCEEDED or not self.counts_ok(run.row_counts, rows):
            counts = run.row_counts
            raise AssertionError(f"{what}: run #{run.pk} {run.status}, row_counts {counts}: {run.message}")
        return run

    def check_original(self, case: str) -> Any:
        from sample.models import Book

        run = self.last_run(case, None)
        if case == "delete":
            left = Book.objects.count()
        else:
            left = Book.objects.exclude(**{case: NEW_PRICE if case == "price" else NEW_STATUS}).count()
        if left:
            raise AssertionError(f"{case}: {left} books not changed by run #{run.pk}")
        return run

    def check_undo(self, case: str, before: Any, run: Any) -> Any:
        undo = self.last_run(f"undo of {case}", "undo")
        if undo.read_request().source_run != run.pk:
            raise AssertionError(f"undo #{undo.pk} undoes {undo.read_request().source_run}, not {run.pk}")
        after = self.snapshot(case)
        if case == "delete":
            rows, links = after
            if len(rows) != self.rows or rows != before[0]:
                wrong = sum(1 for a, b in zip(rows, before[0], strict=False) if a != b)
                raise AssertionError(f"restore: {len(rows)} books, {wrong} differ from before the delete")
            if links != before[1]:
                raise AssertionError(f"restore: {len(links)} tag links, {len(before[1])} before the delete")
        elif after != before:
            wrong = sum(1 for pk, value in before.items() if after.get(pk) != value)
            raise AssertionError(f"undo of {case}: {wrong} books do not have their old {case}")
        return undo

    # --- measuring ------------------------------------------------------------------------------

    def measure(self, case: str, repeats: int) -> dict[str, Any]:
        from powercrud.models import RunRow

        self.prepare_case(case)
        before = self.snapshot(case)
        distinct = len(set(before.values())) if isinstance(before, dict) else None
        out: dict[str, Any] = {"runs": [], "undos": [], "distinct_old": distinct}
        if case == "delete":
            out["links"] = len(before[1])
        for _ in range(repeats):
            RunRow.objects.all().delete()
            seconds, queries = self.run_original(case)
            run = self.check_original(case)
            undo_seconds, undo_queries = self.run_undo(case, run.pk)
            self.check_undo(case, before, run)
            out["runs"].append(seconds)
            out["undos"].append(undo_seconds)
            out["queries"], out["undo_queries"] = queries, undo_queries
            say(f"    {case}: run {seconds:.2f} s, undo {undo_seconds:.2f} s = {undo_seconds / seconds:.2f}x")
        out["seconds"] = statistics.median(out["runs"])
        out["undo_seconds"] = statistics.median(out["undos"])
        return out


def worker(args: argparse.Namespace) -> int:
    engine, rows = args.engine, args.rows
    with tempfile.TemporaryDirectory(prefix="powercrud-undo-bench-") as tmp:
        db_name = PG_DATABASE if engine == "postgres" else str(Path(tmp) / "bench.sqlite3")
        setup_django(engine, db_name)
        import django
        from django.db import connection

        from bench.bulk_edit import database_version

        seed_seconds = prepare(rows, 0)
        bench = UndoBench(rows)
        bench.warm()
        results = {}
        for case in CASES:
            if case in args.cases:
                say(f"  {engine} N={rows:,}: {case}")
                results[case] = bench.measure(case, args.repeats)
        report = {
            "engine": engine,
            "rows": rows,
            "repeats": args.repeats,
            "seed_seconds": seed_seconds,
            "database": f"{connection.vendor} {database_version()}",
            "django": django.get_version(),
            "python": sys.version.split()[0],
            "results": results,
        }
        connection.close()
    Path(args.out).write_text(json.dumps(report))
    return 0


# --------------------------------------------------------------------------------------------
# async: a real one-worker qcluster (bench.async_bulk's machinery)
# --------------------------------------------------------------------------------------------


def async_child(repeats: int) -> None:
    """Inside ``bench.async_bulk``'s project, a qcluster running beside: per round, the edit
    ``price = 12.34`` of every book launched as a view launches it (``launch_bulk_task``), and
    its undo launched as ``BulkMixin.process_undo`` launches it; each timed from the launch to
    ``succeeded`` as this (other) process sees it, polling every 20 ms."""
    import dataclasses

    import django

    django.setup()
    from django.db import connection

    from powercrud.bulk.request import BulkRequest
    from powercrud.bulk.values import to_field_data
    from powercrud.jobs.launch import launch_bulk_task
    from powercrud.jobs.reruns import changed_rows, undo_problem
    from powercrud.models import BulkTask, RunRow
    from sample.models import Book

    rows = Book.objects.count()
    Book.objects.filter(price=NEW_PRICE).update(price=Decimal("12.35"))
    before = dict(Book.objects.values_list("pk", "price"))

    def tidy() -> None:
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            else:
                tables = (Book._meta.db_table, RunRow._meta.db_table)
                cursor.execute(f"VACUUM {', '.join(connection.ops.quote_name(t) for t in tables)}")

    def wait(request: BulkRequest, queryset: Any) -> tuple[float, Any]:
        tidy()
        started = time.perf_counter()
        task = launch_bulk_task(request, queryset, user=None)
        while True:
            seen = BulkTask.objects.get(pk=task.pk)
            if seen.is_finished:
                break
            if time.perf_counter() - started > 1800:
                raise RuntimeError(f"task #{task.pk} did not finish in 30 minutes")
            connection.close()
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        if seen.status != BulkTask.Status.SUCCEEDED or seen.row_counts != {"changed": rows}:
            raise AssertionError(f"task #{task.pk}: {seen.status}, {seen.row_counts}: {seen.message}")
        return seconds, seen

    edit = BulkRequest(
        operation="update",
        model_label="sample.book",
        fields_to_update=("price",),
        field_data=to_field_data(Book, ("price",), {"price": NEW_PRICE}),
        bulk_fields=("status", "is_available", "price"),
        atomic=True,
        view_name="bench",
    )
    runs, undos = [], []
    for _ in range(repeats):
        RunRow.objects.all().delete()
        seconds, run = wait(edit, Book.objects.all())
        if Book.objects.exclude(price=NEW_PRICE).exists():
            raise AssertionError(f"run #{run.pk}: not every book has the new price")
        problem = undo_problem(run)
        if problem:
            raise AssertionError(problem)
        stored = run.read_request()
        undo = dataclasses.replace(
            dataclasses.replace(stored, reason=f"Undo of run #{run.pk}"),
            source_run=run.pk,
            source_action="undo",
        )
        undo_seconds, done = wait(undo, Book.objects.filter(pk__in=changed_rows(run, Book)))
        if (
            done.read_request().source_action != "undo"
            or dict(Book.objects.values_list("pk", "price")) != before
        ):
            raise AssertionError(f"undo #{done.pk}: not every book has its old price")
        runs.append(seconds)
        undos.append(undo_seconds)
    print(json.dumps({"rows": rows, "runs": runs, "undos": undos, "distinct_old": len(set(before.values()))}))


def run_async(engine: str, rows: int, repeats: int) -> dict[str, Any]:
    broker = "redis" if engine == "postgres" else "orm"
    child = ("-m", "bench.undo", "--async-child", "--repeats", str(repeats))
    (result,) = async_bulk.run_config(engine, broker, rows, ["on"], child_args=child)
    return result


def run_worker(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    options = ["--rows", str(args.rows), "--repeats", str(args.repeats)]
    for case in args.cases:
        options += ["--case", case]
    report: dict[str, Any] = run_json_worker(
        "bench.undo", engine, options, label=engine, pg_database=PG_DATABASE
    )
    return report


LABELS = {
    "price": "edit price (old values ~all distinct) / its undo",
    "status": "edit status (3 distinct old values) / its undo",
    "delete": "bulk delete / its undo (restore)",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.undo", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="N (default 100000)")
    parser.add_argument("--db", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--repeats", type=int, default=3, help="rounds per case (default 3)")
    parser.add_argument(
        "--case", dest="cases", action="append", choices=CASES, help="repeatable; default all"
    )
    parser.add_argument(
        "--mode",
        choices=["sync", "async", "all"],
        default="all",
        help="sync: through the view; async: the price edit and its undo on a one-worker qcluster"
        " (SQLite + ORM broker, PostgreSQL + Redis); all (default): both",
    )
    parser.add_argument("--async-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="sqlite", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.cases = args.cases or list(CASES)
    if args.worker:
        return worker(args)
    if args.async_child:
        async_child(args.repeats)
        return 0
    engines = ["sqlite"] if args.db in ("sqlite", "all") else []
    if args.db in ("postgres", "all"):
        if postgres_reachable():
            engines.append("postgres")
        else:
            say("PostgreSQL is not reachable on 127.0.0.1:5432; skipped.")
    reports, async_reports = [], []
    for engine in engines if args.mode in ("sync", "all") else []:
        say(f"{engine} N={args.rows:,}: seeding and measuring...")
        reports.append(run_worker(engine, args))
    for engine in engines if args.mode in ("async", "all") else []:
        if engine == "postgres" and not async_bulk.reachable(6379):
            say("Redis is not reachable on 127.0.0.1:6379; async PostgreSQL skipped.")
            continue
        say(f"async {engine} N={args.rows:,}: seeding, starting a qcluster and measuring...")
        async_reports.append(run_async(engine, args.rows, args.repeats))
    ok = True
    for report in reports:
        print()
        title = (
            f"{report['database']}, N = {report['rows']:,},"
            f" Django {report['django']}, Python {report['python']}"
        )
        print(title)
        print("=" * len(title))
        print(
            f"seeded in {report['seed_seconds']:.1f} s; seconds: median of {report['repeats']} rounds of"
            " the timed POST (the run, then its undo)"
        )
        header = f"{'case':50} {'run s':>8} {'undo s':>8} {'undo/run':>9} {'queries':>13}  per round"
        print(header)
        print("-" * len(header))
        for case, r in report["results"].items():
            ratio = r["undo_seconds"] / r["seconds"]
            good = ratio <= UNDO_RATIO_TARGET
            ok = ok and good
            rounds = ", ".join(f"{u / s:.2f}x" for s, u in zip(r["runs"], r["undos"], strict=True))
            print(
                f"{LABELS[case]:50} {r['seconds']:8.2f} {r['undo_seconds']:8.2f} {ratio:8.2f}x"
                f" {r['queries']:>6} / {r['undo_queries']:<6} {rounds}  {'PASS' if good else 'MISS'}"
            )
            if r["distinct_old"] is not None:
                distinct = r["distinct_old"]
                print(f"{'':50} ({distinct:,} distinct old values over the {report['rows']:,} books)")
            else:
                print(f"{'':50} ({report['rows']:,} books and {r['links']:,} tag links re-created)")
    if async_reports:
        print()
        print(
            "async, one qcluster worker: the price edit and its undo, each timed from the launch"
            " (launch_bulk_task) to 'succeeded' as another process sees it"
        )
        header = f"{'database, broker':20} {'rows':>9} {'run s':>8} {'undo s':>8} {'undo/run':>9}  per round"
        print(header)
        print("-" * len(header))
        for r in async_reports:
            seconds, undo_seconds = statistics.median(r["runs"]), statistics.median(r["undos"])
            ratio = undo_seconds / seconds
            good = ratio <= UNDO_RATIO_TARGET
            ok = ok and good
            rounds = ", ".join(f"{u / s:.2f}x" for s, u in zip(r["runs"], r["undos"], strict=True))
            print(
                f"{r['engine'] + ', ' + r['broker']:20} {r['rows']:>9,} {seconds:8.2f} {undo_seconds:8.2f}"
                f" {ratio:8.2f}x  {rounds}  {'PASS' if good else 'MISS'}"
            )
            print(f"{'':20} ({r['distinct_old']:,} distinct old prices)")
    print(
        f"\ntarget: undo within {UNDO_RATIO_TARGET:g}x of the run it undoes:"
        f" {'met' if ok else 'NOT met (see MISS)'}; every run and undo checked (see --help)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
