"""Runs made from runs: which rows an undo or an apply of an earlier run works on, and why
one may not be made (in the user's words). The screens and the worker ask here; the ledger
itself is ``powercrud.jobs.ledger``.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import F, QuerySet
from django.db.models.functions import Cast

from powercrud.bulk import messages
from powercrud.conf import settings as pc_settings
from powercrud.jobs.ledger import CASCADED, changed_keys, ledger_alias
from powercrud.jobs.locks import KEY_COLUMN
from powercrud.models import BulkTask, RunRow

__all__ = [
    "NOT_PASSED",
    "apply_problem",
    "as_pks",
    "changed_rows",
    "deleted_keys",
    "rows_to_apply",
    "undo_problem",
    "undone_by",
]


def as_pks(model: type[models.Model], keys: QuerySet[Any], column: str) -> QuerySet[Any]:
    """``keys``' text ``column`` as ``model``'s primary keys: a subquery for ``pk__in``."""
    pk_field: Any = model._meta.pk
    while pk_field.is_relation:  # multi-table inheritance: the parent link
        pk_field = pk_field.target_field
    return keys.values(pc_pk=Cast(column, output_field=pk_field.clone()))


def changed_rows(run: BulkTask, model: type[models.Model]) -> QuerySet[Any]:
    """The primary keys of the rows ``run`` changed, as a subquery for ``pk__in``."""
    return as_pks(model, changed_keys(run), "object_pk")


def deleted_keys(run: BulkTask) -> QuerySet[Any]:
    """The keys of the rows a delete ``run`` removed, for ``acquire_locks(keys=...)``."""
    return changed_keys(run).values(**{KEY_COLUMN: F("object_pk")})


def undone_by(run: BulkTask) -> BulkTask | None:
    """The undo that succeeded for ``run``, if one did."""
    undos = BulkTask.objects.using(ledger_alias()).filter(
        payload__source_run=run.pk,
        payload__source_action="undo",
        dry_run=False,
        status=BulkTask.Status.SUCCEEDED,
    )
    return undos.order_by("pk").first()


def undo_problem(run: BulkTask) -> str | None:
    """Why ``run`` cannot be undone, in the user's words; None when it can."""
    if not run.is_finished:
        return messages.cannot_undo(run.pk, "running")
    if run.dry_run:
        return messages.cannot_undo(run.pk, "check")
    if not RunRow.objects.using(ledger_alias()).filter(run_id=run.pk).exists():
        why = "pruned" if run.row_counts else "no_ledger"
        return messages.cannot_undo(run.pk, why, days=pc_settings.BULK_RUN_ROWS_RETENTION_DAYS)
    if not (run.row_counts.get(RunRow.Outcome.CHANGED) or run.row_counts.get(RunRow.Outcome.CREATED)):
        return messages.cannot_undo(run.pk, "nothing_changed")
    stored = run.stored_request if run.kind == BulkTask.Kind.IMPORT else None
    if stored is not None and stored.source_action == "undo":
        return messages.cannot_undo(run.pk, "import_undo")
    if run.kind == BulkTask.Kind.DELETE:
        if run.row_counts.get(CASCADED):
            return messages.cannot_undo(run.pk, "cascaded", count=run.row_counts[CASCADED])
        if run.stored_request is not None and run.stored_request.source_action == "undo":
            return messages.cannot_undo(run.pk, "restore")
    undo = undone_by(run)
    if undo is not None:
        return messages.cannot_undo(run.pk, "undone", by=undo.pk)
    return None


def import_undo_permissions(run: BulkTask) -> list[str]:
    """The model permissions an undo of import ``run`` needs: ``delete`` when it created rows
    (the undo deletes them), ``change`` when it updated rows (the undo writes them back)."""
    app_label, _, model_name = run.model_label.partition(".")
    counts = run.row_counts or {}
    needed = []
    if counts.get(RunRow.Outcome.CREATED):
        needed.append(f"{app_label}.delete_{model_name}")
    if counts.get(RunRow.Outcome.CHANGED):
        needed.append(f"{app_label}.change_{model_name}")
    return needed


NOT_PASSED = (RunRow.Outcome.FAILED, RunRow.Outcome.SKIPPED, RunRow.Outcome.CONFLICT)
"""Outcomes of rows that did not pass a run's checks (or were left out of it)."""


def rows_to_apply(run: BulkTask, model: type[models.Model], *, passed_only: bool) -> QuerySet[Any]:
    """The rows an apply of ``run`` writes, as a subquery for ``pk__in``: every row of the
    check, or (``passed_only``) the rows that passed it."""
    rows = RunRow.objects.using(ledger_alias()).filter(run_id=run.pk)
    if passed_only:
        rows = rows.exclude(outcome__in=NOT_PASSED)
    else:
        rows = rows.exclude(outcome=RunRow.Outcome.SKIPPED)
    return as_pks(model, rows, "object_pk")


def apply_problem(run: BulkTask, *, passed_only: bool) -> str | None:
    """Why ``run``'s values cannot be applied to its rows (or to those that passed); None when they can."""
    if not run.is_finished:
        return messages.cannot_apply(run.pk, "running")
    if not RunRow.objects.using(ledger_alias()).filter(run_id=run.pk).exists():
        why = "pruned" if run.row_counts else "no_ledger"
        return messages.cannot_undo(run.pk, why, days=pc_settings.BULK_RUN_ROWS_RETENTION_DAYS)
    if passed_only:
        if not run.dry_run and not (run.status == BulkTask.Status.FAILED and run.read_request().atomic):
            return messages.cannot_apply(run.pk, "not_rolled_back")
        return None
    if not run.dry_run:
        return messages.cannot_apply(run.pk, "not_a_check")
    return None
