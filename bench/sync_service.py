"""What ``bench.ledger_size`` and ``bench.memory`` share: a throw-away database in a process of
its own, seeded by ``seed_books`` in a separate process, and one sync bulk run made exactly as
the view makes it (``BulkMixin.run_in_request``: ``hold_selection`` -> ``open_request_run`` ->
``run_recorded`` -> ``close_request_run``, the default service, all-or-nothing), without the
HTTP request around it.

The databases: a SQLite file in a temp dir, or ``bench_powercrud_ledger`` on 127.0.0.1:5432
(user ``postgres``), created and dropped by the parent. Settings: ``bench.bulk_settings``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from bench import common
from bench.common import ROOT

PG_DATABASE = "bench_powercrud_ledger"


def environment(engine: str, db_name: str) -> dict[str, str]:
    return {
        **os.environ,
        "POWERCRUD_BENCH_BULK_ENGINE": engine,
        "POWERCRUD_BENCH_BULK_DB": db_name,
        "DJANGO_SETTINGS_MODULE": "bench.bulk_settings",
    }


def setup_django(engine: str, db_name: str) -> None:
    os.environ.update(environment(engine, db_name))
    import django

    django.setup()


def migrate_and_seed(engine: str, db_name: str, rows: int) -> None:
    """``migrate`` and ``seed_books --books rows`` in a child process (so that the seeding's
    memory does not count in this process's ``ru_maxrss``)."""
    env = environment(engine, db_name)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True, cwd=ROOT)
    subprocess.run(
        [*manage, "seed_books", "--books", str(rows), "--quiet"],
        env=env,
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )


def recreate_pg_database(drop_only: bool = False) -> None:
    common.recreate_pg_database(PG_DATABASE, drop_only=drop_only)


def tidy(tables: list[str]) -> None:
    """SQLite: checkpoint the WAL; PostgreSQL: vacuum ``tables`` (no run pays for an earlier one)."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            cursor.execute(f"VACUUM ANALYZE {', '.join(connection.ops.quote_name(t) for t in tables)}")


def sync_run(
    field_data: Mapping[str, Any], queryset: Any = None, user: Any = None
) -> tuple[Any, Any, dict[str, int]]:
    """One all-or-nothing sync bulk edit of ``field_data`` over ``queryset`` (default: every
    book), as the view runs it; returns the run (``BulkTask``), the result and the ledger's
    counts by outcome."""
    from powercrud.bulk.request import BulkRequest
    from powercrud.bulk.values import to_field_data
    from powercrud.bulk_persistence import backend_for
    from powercrud.jobs.ledger import run_recorded, selection_keys
    from powercrud.jobs.locks import hold_selection
    from powercrud.jobs.monitor import close_request_run, open_request_run
    from sample.models import Book

    queryset = Book.objects.all() if queryset is None else queryset
    request = BulkRequest(
        operation="update",
        model_label="sample.book",
        fields_to_update=tuple(field_data),
        field_data=to_field_data(Book, tuple(field_data), field_data),  # as the view's form has it
        bulk_fields=tuple(field_data),
        atomic=True,
        view_name="bench",
    )
    size = queryset.count()
    context = request.context(mode="sync", user_id=getattr(user, "pk", None), selection_size=size)
    with hold_selection(queryset):
        run = open_request_run(request, user=user, total=size)
        result, counts = run_recorded(
            run,
            request,
            queryset=queryset,
            keys=selection_keys(queryset),
            context=context,
            backend=backend_for(request),
        )
        close_request_run(run, result)
    if not result.success:
        raise AssertionError(f"the bulk run failed: {result.message}")
    return run, result, counts
