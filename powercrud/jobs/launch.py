"""Submitting an async bulk task: record it with its selection, enqueue it after commit.

``launch_bulk_task`` is what a view calls (instead of running the service in the request)
when a selection is large enough to go to a worker. It reads no row of the selection: it
creates the ``BulkTask`` with the stored ``BulkRequest`` and the already scoped queryset's
query (``freeze.store_selection``) and registers the enqueue for after the commit. The
submit's cost does not grow with the selection: one insert, then the enqueue. The worker's
first step locks the rows (``freeze.freeze_selection``); a conflict found then ends the run
failed with the conflict message. The job's only argument is the task id.

A query that cannot be stored (it does not pickle) is locked here instead, as earlier
releases did: every row locked in one ``INSERT ... SELECT`` in the launch's transaction, a
conflict raised as ``LockConflict`` before anything is enqueued.

Failures leave nothing behind: a broker that is down (or raises anything else) marks the
task failed, releases any locks and raises ``LaunchError``.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from django.db import DatabaseError, models, router, transaction

from powercrud.bulk.messages import job_not_queued
from powercrud.bulk.request import BulkRequest
from powercrud.bulk_persistence import check_backend_path
from powercrud.jobs.freeze import SelectionNotStorable, store_selection
from powercrud.jobs.locks import LockConflict, acquire_locks, fence_request_runs
from powercrud.jobs.monitor import finish_task
from powercrud.jobs.runners import runner
from powercrud.models import CHUNK_SIZE_KEY, SELECTION_KEY, BulkTask, RowLock

__all__ = ["JOB_FUNCTION", "LaunchError", "LockConflict", "enqueue_task", "launch_bulk_task"]

logger = logging.getLogger("powercrud.jobs")

JOB_FUNCTION = "powercrud.jobs.worker.run_bulk_task"


class LaunchError(Exception):
    """The task could not be started; ``message`` is safe to show and says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _broker_errors() -> tuple[type[BaseException], ...]:
    """What a broker raises when it cannot take a job (connection refused, database down...)."""
    errors: tuple[type[BaseException], ...] = (OSError, DatabaseError)
    try:
        from redis.exceptions import RedisError
    except ImportError:  # the redis client is optional
        return errors
    return (*errors, RedisError)


def launch_bulk_task(
    request: BulkRequest,
    queryset: models.QuerySet[Any],
    *,
    user: Any,
    keys: models.QuerySet[Any] | None = None,
    chunk_size: int | None = None,
) -> BulkTask:
    """Record and enqueue a background run of ``request`` over ``queryset`` (already scoped);
    returns its task (queued; ``total`` is 0 until the worker has locked the rows).

    Raises ``LaunchError`` when the selection is empty by construction (``.none()``), the
    backend path does not resolve or the job cannot be queued; no task is left queued and no
    lock is left behind. ``keys``: lock these keys (``locks.acquire_locks``) instead of the
    queryset's rows. Only when the query cannot be stored are the rows locked here, and then
    ``LockConflict`` (another run holds some) and an empty selection are raised here too.
    ``chunk_size``: split a per-row run into jobs of that many rows once its rows are locked
    (``jobs.chunks``); ignored for an all-or-nothing run or a check.
    """
    model = queryset.model
    if model._meta.label_lower != request.model_label:
        raise ValueError(
            f"launch_bulk_task(): the queryset is of {model._meta.label}, but the request is for "
            f"{request.model_label!r}."
        )
    if request.backend_path:  # a delete uses the backend's scope_queryset() too
        problem = check_backend_path(request.backend_path)
        if problem:
            raise LaunchError(f"The bulk task could not be started: {problem}")
    if queryset.db != router.db_for_write(RowLock):
        raise ValueError(
            f"The selection is read from database {queryset.db!r} but row locks live in "
            f"{router.db_for_write(RowLock)!r}; bulk tasks need both in the same database."
        )
    if keys is None and queryset.query.is_empty():
        raise LaunchError(_nothing_selected(model))
    payload = request.to_dict()
    if chunk_size and not request.atomic and not request.dry_run:
        payload[CHUNK_SIZE_KEY] = int(chunk_size)
    try:
        payload[SELECTION_KEY] = store_selection(queryset, keys)
    except SelectionNotStorable:
        logger.info("The selection of a %s bulk run cannot be stored; locking it now.", request.model_label)
    owner = user if getattr(user, "is_authenticated", False) else None
    using = router.db_for_write(BulkTask)
    with transaction.atomic(using=using):
        task = BulkTask.objects.using(using).create(
            kind=request.operation,
            model_label=request.model_label,
            owner=owner,
            dry_run=request.dry_run,
            reason=request.reason,
            payload=payload,
        )
        if SELECTION_KEY not in payload:
            _lock_now(task, queryset, keys)
        transaction.on_commit(functools.partial(enqueue_task, task), using=using, robust=False)
    return task


def _nothing_selected(model: type[models.Model]) -> str:
    return (
        f"No {model._meta.verbose_name_plural} are selected (or you may not change them), "
        "so nothing was started."
    )


def _lock_now(task: BulkTask, queryset: models.QuerySet[Any], keys: models.QuerySet[Any] | None) -> None:
    """Lock the selection in the launch's transaction (a query that could not be stored)."""
    total = acquire_locks(task, queryset, keys)
    if total == 0:
        raise LaunchError(_nothing_selected(queryset.model))
    fence_request_runs(queryset)  # a bulk run in the request on any of the rows: LockConflict
    BulkTask.objects.using(router.db_for_write(BulkTask)).filter(pk=task.pk).update(total=total)
    task.total = total


def enqueue_task(task: BulkTask) -> None:
    """Hand the job to the runner (``BULK_RUNNER``, django-q2 by default); on a broker failure,
    fail the task and free its rows."""
    try:
        job_id = runner().enqueue(JOB_FUNCTION, task.pk, name=task.task_name)
    except Exception as exc:  # the broker boundary: whatever a broker raises, the job is not queued
        logger.error("Bulk task #%s could not be queued.", task.pk, exc_info=True)
        message = job_not_queued(task.kind, reachable=not isinstance(exc, _broker_errors()))
        finish_task(task, BulkTask.Status.FAILED, message=message, expect=(BulkTask.Status.QUEUED,))
        raise LaunchError(
            f"{message} Try again later, or ask an administrator to check the workers."
        ) from exc
    BulkTask.objects.filter(pk=task.pk).update(q_task_id=job_id)
