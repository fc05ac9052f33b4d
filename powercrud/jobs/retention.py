"""How long the run ledger keeps its rows: ``prune_run_rows()``, run by ``powercrud_cleanup``.

A finished run keeps its ``RunRow`` entries for ``BULK_RUN_ROWS_RETENTION_DAYS`` days after it
ended (None keeps them for ever). Pruning deletes them run by run, ``DELETE_BATCH`` rows per
statement, so a run of a million rows is never one huge statement nor a million keys in memory.
The run itself stays, with its ``row_counts``; its page then says its row details were removed.
"""

from __future__ import annotations

import datetime

from django.db import router
from django.db.models import Exists, OuterRef
from django.utils import timezone

from powercrud.conf import settings as pc_settings
from powercrud.models import BulkTask, RunRow

__all__ = ["DELETE_BATCH", "prune_run_rows"]

DELETE_BATCH = 5000
"""Ledger rows deleted per statement."""


def prune_run_rows(days: float | None = None) -> int:
    """Delete the ledger rows of runs that finished more than ``days`` days ago (default:
    ``BULK_RUN_ROWS_RETENTION_DAYS``; None there keeps every row). Returns the rows deleted.

    Runs still queued or running are never touched, however old.
    """
    if days is None:
        days = pc_settings.BULK_RUN_ROWS_RETENTION_DAYS
    if days is None:
        return 0
    cutoff = timezone.now() - datetime.timedelta(days=float(days))
    using = router.db_for_write(RunRow)
    rows = RunRow.objects.using(using)
    runs = (
        BulkTask.objects.using(using)
        .filter(status__in=BulkTask.FINISHED, finished_at__lt=cutoff)
        .filter(Exists(rows.filter(run_id=OuterRef("pk"))))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    deleted = 0
    for run_id in list(runs):
        while True:
            batch = list(
                rows.filter(run_id=run_id).order_by("pk").values_list("pk", flat=True)[:DELETE_BATCH]
            )
            if not batch:
                break
            count, _ = rows.filter(pk__in=batch).delete()
            deleted += count
            if len(batch) < DELETE_BATCH:
                break
    return deleted
