"""The worker entry point of background bulk runs: primitives in, the same guarded service call out.

django-q2 runs ``run_bulk_task(task_id)``. Everything else comes from the ``BulkTask`` row:
the request is the stored ``BulkRequest``, the backend is resolved from its dotted path here,
in the worker, and the rows to write are the task's ``RowLock`` rows. The first step after the
claim takes those locks from the selection the submit stored (``freeze.freeze_selection``, in
its own committed transaction, the phase "Locking N rows…"); a conflict found then ends the run
failed with the conflict message, leaving no lock. Then the run, the outcome and the release of
the locks commit in ONE transaction, so a task is never shown succeeded unless its writes
committed, and a worker that dies leaves nothing half-done (the database rolls the transaction
back; its locks are released when the run is ended as failed).

A task is claimed with one conditional ``UPDATE`` (queued -> running): a job delivered twice,
one after the other or at the same moment, runs once. The outcome is recorded in the task;
this function never raises to django-q2 and never signals failure by its return value.
"""

from __future__ import annotations

import logging
from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, models, router, transaction
from django.db.models import F
from django.utils import timezone
from django_q.exceptions import TimeoutException

from powercrud.bulk import messages
from powercrud.bulk.types import BulkInputError, BulkResult
from powercrud.jobs import progress
from powercrud.jobs.chunks import chunk_size_of, split_run
from powercrud.jobs.freeze import NothingToLock, freeze_selection
from powercrud.jobs.ledger import lock_keys, run_recorded
from powercrud.jobs.locks import LockConflict, release_locks
from powercrud.jobs.monitor import finish_task
from powercrud.jobs.progress import ProgressWriter, TaskCancelled
from powercrud.jobs.reruns import as_pks
from powercrud.models import BulkTask, RowLock

__all__ = ["describe_failure", "locked_queryset", "run_bulk_task"]

logger = logging.getLogger("powercrud.jobs")

Status = BulkTask.Status


def _alias() -> str:
    return router.db_for_write(BulkTask)


class _Superseded(Exception):
    """The task was finished by someone else (cleanup) while this worker ran: roll back."""


def describe_failure(task: BulkTask, exc: BaseException) -> str:
    """A message about ``exc`` that is safe to show to the task's owner."""
    operation = task.kind
    if isinstance(exc, BulkInputError):
        return messages.task_failed(operation, "bad_input", detail=exc.message)
    if isinstance(exc, ImproperlyConfigured):
        return messages.task_failed(operation, "misconfigured", detail=str(exc))
    if isinstance(exc, LookupError) and task.model_class is None:
        return messages.task_failed(operation, "model_gone", detail=task.model_label)
    if isinstance(exc, TimeoutException):
        return messages.task_failed(operation, "timeout")
    return messages.task_failed(operation, "unexpected", task_name=task.task_name)


# --- running ------------------------------------------------------------------------------------


def locked_queryset(task: BulkTask, model: type[models.Model]) -> models.QuerySet[Any]:
    """Exactly the rows ``task`` locked (its frozen selection), on the task's database."""
    keys = as_pks(model, RowLock.objects.filter(task_id=task.pk), "object_pk")
    return model._base_manager.using(_alias()).filter(pk__in=keys)


def _execute(task: BulkTask, writer: ProgressWriter) -> tuple[BulkResult, dict[str, int]]:
    """Run the task's stored ``BulkRequest`` through the guard the sync view uses, in ``"async"``
    mode; returns the result and the ledger's counts."""
    request = task.read_request()
    context = request.context(
        mode="async",
        user_id=task.owner_id,
        selection_size=task.total,
        task_name=task.task_name,
        extra={"task_id": task.pk},
    )
    queryset = locked_queryset(task, apps.get_model(task.model_label))
    return run_recorded(
        task, request, queryset=queryset, keys=lock_keys(task), context=context, progress_callback=writer
    )


ANALYZE_LOCKS_FROM = 10_000
"""PostgreSQL: refresh the lock table's statistics before reading a selection this large."""


def _prepare_selection(task: BulkTask) -> None:
    """Give PostgreSQL's planner fresh statistics for the locks just inserted.

    Without them it guesses the lock table is tiny and reads a large selection row by row
    (a million-row task spent 10 s there instead of 4 s).
    """
    connection = connections[_alias()]
    if connection.vendor == "postgresql" and task.total >= ANALYZE_LOCKS_FROM:
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(RowLock._meta.db_table)}")


def _split(task: BulkTask) -> bool:
    """Split a per-row run launched with a chunk size into chunk jobs (``jobs.chunks``);
    returns whether it was. A check, an all-or-nothing run or one chunk's worth runs here."""
    size = chunk_size_of(task)
    if size is None or task.dry_run or task.total <= size or task.read_request().atomic:
        return False
    split_run(task, size)
    return True


def _claim(task_id: int) -> BulkTask | None:
    now = timezone.now()
    claimed = (
        BulkTask.objects.using(_alias())
        .filter(pk=task_id, status=Status.QUEUED)
        .update(status=Status.RUNNING, started_at=now, heartbeat_at=now, done=0, attempts=F("attempts") + 1)
    )
    if not claimed:
        return None
    return BulkTask.objects.using(_alias()).get(pk=task_id)


def run_bulk_task(task_id: int) -> str:
    """Run bulk task ``task_id`` once; returns its final status (or ``"skipped"``).

    The django-q2 job function. A task that is not queued (already running, finished or
    cancelled) is left alone, so a second delivery of the same job changes nothing.
    """
    task = _claim(task_id)
    if task is None:
        logger.info("Bulk task #%s is not queued (delivered twice, or cancelled); skipped.", task_id)
        return "skipped"
    live = progress.read_live(task)
    if task.cancel_requested or (live is not None and live.cancel_requested):
        finish_task(task, Status.CANCELLED, message=messages.cancelled(task.kind))
        progress.forget(task)
        return Status.CANCELLED
    writer = ProgressWriter(task)
    writer.start()
    using = _alias()
    chunked = False
    try:
        freeze_selection(task, writer)  # the locks, committed before any row is written
        _prepare_selection(task)
        if _split(task):  # the run goes on in its chunks' jobs, which end it
            chunked = True
            writer.stop()
            logger.info("Bulk task #%s was split into chunks.", task.pk)
            return "chunked"
        with transaction.atomic(using=using):
            result, row_counts = _execute(task, writer)
            release_locks(task)  # slow for big selections: the heartbeat goes on meanwhile
            writer.stop()  # before the task row is written (PostgreSQL: it is the writer's row)
            if writer.cancelled.is_set():
                raise TaskCancelled(task.task_name)
            status = Status.SUCCEEDED if result.success else Status.FAILED
            finished = finish_task(
                task,
                status,
                message=result.message,
                result=result,
                done=result.total,
                release=False,
                row_counts=row_counts,
            )
            if not finished:
                raise _Superseded(task.task_name)
        logger.info("Bulk task #%s %s: %s", task.pk, status, result.message)
        return status
    except (LockConflict, NothingToLock) as exc:  # found while freezing: nothing was locked or written
        writer.stop()
        if finish_task(task, Status.FAILED, message=exc.message, done=0):
            # Nothing was frozen (the live store may have reported the count it was locking).
            BulkTask.objects.using(using).filter(pk=task.pk).update(total=0)
        logger.info("Bulk task #%s could not lock its rows: %s", task.pk, exc.message)
        return Status.FAILED
    except TaskCancelled:
        writer.stop()
        finish_task(
            task,
            Status.CANCELLED,
            message=messages.cancelled(task.kind, done=writer.done, total=writer.total),
            done=writer.done,
        )
        logger.info("Bulk task #%s cancelled after %s rows.", task.pk, writer.done)
        return Status.CANCELLED
    except _Superseded:
        logger.warning(
            "Bulk task #%s was ended by cleanup while it ran; its writes were rolled back.", task.pk
        )
        return "superseded"
    except (Exception, TimeoutException) as exc:  # the worker boundary: log it, record it, never raise
        writer.stop()
        logger.exception("Bulk task #%s failed.", task.pk)
        if not connections[using].in_atomic_block:  # a broken connection: start afresh
            connections[using].close_if_unusable_or_obsolete()
        finish_task(task, Status.FAILED, message=describe_failure(task, exc), done=writer.done)
        return Status.FAILED
    finally:
        writer.stop()
        if not chunked:
            progress.forget(task)
