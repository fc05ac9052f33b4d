"""Import as a recorded bulk run: ``run_import()`` and ``undo_import_run()``.

An import is recorded like any bulk run: a ``BulkTask`` of kind ``import`` (on the task
dashboard), its ``RunRow`` ledger (created, changed with old values, unchanged, skipped,
failed with the file line), its counts from the ledger. The run's record keeps the import's
spec, file name and column mapping but not the rows (``BulkRequest.without_rows()``).
"""

from __future__ import annotations

from typing import Any

from django.db import models, transaction

from powercrud.bulk.request import BulkRequest
from powercrud.bulk.types import BulkResult
from powercrud.bulk_persistence import BulkUpdatePersistenceBackend
from powercrud.jobs.ledger import ledger_alias, run_recorded, selection_keys
from powercrud.jobs.locks import hold_selection
from powercrud.jobs.monitor import close_request_run, open_request_run
from powercrud.models import BulkTask

__all__ = ["run_import", "undo_import_run"]


def _user_id(user: Any) -> Any:
    return user.pk if getattr(user, "is_authenticated", False) else None


def run_import(
    bulk_request: BulkRequest,
    *,
    scope: models.QuerySet[Any],
    user: Any,
    backend: BulkUpdatePersistenceBackend | None = None,
) -> tuple[BulkTask, BulkResult]:
    """Run the import ``bulk_request`` now and record it; returns the run and its result.

    ``scope``: the rows an upsert may update (the view's ``get_queryset()``). The run, its
    ledger and the writes commit together; a check or a failed all-or-nothing run keeps only
    its record and its ledger.
    """
    total = len(bulk_request.import_rows)
    context = bulk_request.context(mode="sync", user_id=_user_id(user), selection_size=total)
    with transaction.atomic(using=ledger_alias()):
        run = open_request_run(bulk_request.without_rows(), user=user, total=total)
        result, counts = run_recorded(
            run,
            bulk_request,
            queryset=scope,
            keys=selection_keys(scope.none()),
            context=context,
            backend=backend,
        )
        run = close_request_run(run, result, counts)
    return run, result


def undo_import_run(
    bulk_request: BulkRequest,
    *,
    rows: models.QuerySet[Any],
    user: Any,
    backend: BulkUpdatePersistenceBackend | None = None,
) -> tuple[BulkTask, BulkResult]:
    """Undo an import now (``bulk_request.source_action == "undo"``) over ``rows``, the rows it
    created or updated that the user may change, held for the run; returns the undo's run."""
    total = rows.count()
    context = bulk_request.context(mode="sync", user_id=_user_id(user), selection_size=total)
    with hold_selection(rows):
        run = open_request_run(bulk_request, user=user, total=total)
        result, counts = run_recorded(
            run, bulk_request, queryset=rows, keys=selection_keys(rows), context=context, backend=backend
        )
        run = close_request_run(run, result, counts)
    return run, result
