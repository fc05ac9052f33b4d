"""Submitting an async bulk task: record it, lock its rows, enqueue it after commit.

``launch_bulk_task`` is what a view calls (instead of running the service in the request)
when a selection is large enough to go to a worker. In one transaction it creates the
``BulkTask``, locks every row of the already scoped queryset (those locks are the frozen
selection the worker will write) and registers the enqueue for after the commit, so a
worker can never see a task whose rows are not locked yet. The job's only argument is the
task id.

Failures leave nothing behind: a lock conflict raises ``LockConflict`` before anything is
enqueued and rolls the task back; a broker that is down (or raises anything else) marks the
task failed, releases its locks and raises ``LaunchError``.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from django.db import DatabaseError, models, router, transaction

from powercrud.bulk.messages import job_not_queued
from powercrud.bulk.request import BulkRequest
from powercrud.bulk_persistence import check_backend_path
from powercrud.jobs.locks import LockConflict, acquire_locks, fence_request_runs
from powercrud.jobs.monitor import finish_task
from powercrud.jobs.runners import runner
from powercrud.models import BulkTask

__all__ = ["JOB_FUNCTION", "LaunchError", "LockConflict", "launch_bulk_task"]

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
) -> BulkTask:
    """Create, lock and enqueue a background run of ``request`` over ``queryset`` (already
    scoped); returns its task.

    Raises ``LockConflict`` when another run holds any of the rows and ``LaunchError`` when
    the selection is empty, the backend path does not resolve or the job cannot be queued;
    in each case no task is left queued and no lock is left behind. ``keys``: lock these
    keys (``locks.acquire_locks``) instead of the queryset's rows.
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
    owner = user if getattr(user, "is_authenticated", False) else None
    using = router.db_for_write(BulkTask)
    with transaction.atomic(using=using):
        task = BulkTask.objects.using(using).create(
            kind=request.operation,
            model_label=request.model_label,
            owner=owner,
            dry_run=request.dry_run,
            reason=request.reason,
            payload=request.to_dict(),
        )
        total = acquire_locks(task, queryset, keys)
        if total == 0:
            raise LaunchError(
                f"No {model._meta.verbose_name_plural} are selected (or you may not change them), "
                "so nothing was started."
            )
        fence_request_runs(queryset)  # a bulk run in the request on any of the rows: LockConflict
        BulkTask.objects.using(using).filter(pk=task.pk).update(total=total)
        task.total = total
        transaction.on_commit(functools.partial(_enqueue, task), using=using, robust=False)
    return task


def _enqueue(task: BulkTask) -> None:
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
