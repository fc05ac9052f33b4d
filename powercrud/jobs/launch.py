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
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from django.db import DatabaseError, models, router, transaction

from powercrud.bulk_persistence import check_backend_path
from powercrud.conf import settings as pc_settings
from powercrud.jobs.locks import LockConflict, acquire_locks, fence_request_runs
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


def _jsonable(name: str, value: Any) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"launch_bulk_task(): {name} must be plain JSON-able data (it is stored for the worker); "
            f"{exc}. Convert values with powercrud.bulk.values.to_field_data()."
        ) from None


def launch_bulk_task(
    *,
    kind: str,
    queryset: models.QuerySet[Any],
    user: Any,
    model: type[models.Model] | None = None,
    fields_to_update: Sequence[str] = (),
    field_data: Mapping[str, Any] | None = None,
    bulk_fields: Sequence[str] = (),
    backend_path: str | None = None,
    backend_config: Mapping[str, Any] | None = None,
    atomic: bool = True,
    batch_size: int | None = None,
    view_name: str = "",
    dry_run: bool = False,
) -> BulkTask:
    """Create, lock and enqueue a bulk task over ``queryset`` (already scoped); returns it.

    ``kind`` is ``"update"`` or ``"delete"``. Raises ``LockConflict`` when another task holds
    any of the rows and ``LaunchError`` when the selection is empty or the job cannot be
    queued; in both cases no task is left queued and no lock is left behind.
    """
    model = model or queryset.model
    if queryset.model is not model:
        raise ValueError(
            f"launch_bulk_task(): the queryset is of {queryset.model._meta.label}, not {model._meta.label}."
        )
    if kind not in BulkTask.Kind.values:
        raise ValueError(f"launch_bulk_task(): kind must be 'update' or 'delete', not {kind!r}.")
    if kind == BulkTask.Kind.UPDATE:
        if not fields_to_update:
            raise ValueError("launch_bulk_task(): fields_to_update is empty; choose a field to change.")
        outside = [name for name in fields_to_update if name not in set(bulk_fields)]
        if outside:
            raise ValueError(
                f"launch_bulk_task(): {', '.join(outside)} not in bulk_fields ({', '.join(bulk_fields)})."
            )
    if backend_path:  # a delete uses the backend's scope_queryset()
        problem = check_backend_path(backend_path)
        if problem:
            raise LaunchError(f"The bulk task could not be started: {problem}")
    payload = {
        "fields_to_update": list(fields_to_update),
        "field_data": _jsonable("field_data", dict(field_data or {})),
        "bulk_fields": list(bulk_fields),
        "backend_path": backend_path or "",
        "backend_config": _jsonable("backend_config", dict(backend_config or {})),
        "atomic": bool(atomic),
        "batch_size": int(batch_size or pc_settings.BULK_BATCH_SIZE),
        "view_name": view_name,
        "dry_run": bool(dry_run),
    }
    owner = user if getattr(user, "is_authenticated", False) else None
    using = router.db_for_write(BulkTask)
    with transaction.atomic(using=using):
        task = BulkTask.objects.using(using).create(
            kind=kind, model_label=model._meta.label_lower, owner=owner, payload=payload
        )
        total = acquire_locks(task, queryset)
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
    """Hand the job to django-q2; on a broker failure, fail the task and free its rows."""
    from django_q.signals import pre_enqueue
    from django_q.tasks import async_task

    name, task_pk = task.task_name, task.pk

    def remember(sender: Any, **kwargs: Any) -> None:
        # Record django-q2's id for the job before the job can reach a worker.
        job: Mapping[str, Any] = kwargs.get("task") or {}
        if job.get("name") == name:
            BulkTask.objects.filter(pk=task_pk).update(q_task_id=str(job.get("id", "")))

    pre_enqueue.connect(remember, dispatch_uid=f"powercrud-enqueue-{task_pk}", weak=False)
    try:
        async_task(JOB_FUNCTION, task_pk, task_name=name)
    except Exception as exc:  # the broker boundary: whatever a broker raises, the job is not queued
        logger.error("Bulk task #%s could not be queued.", task_pk, exc_info=True)
        from powercrud.jobs.monitor import finish_task

        nothing = "nothing was deleted" if task.kind == BulkTask.Kind.DELETE else "nothing was changed"
        why = "is not reachable" if isinstance(exc, _broker_errors()) else "reported an error"
        message = f"The task could not be queued because the task queue {why}; {nothing}."
        finish_task(task, BulkTask.Status.FAILED, message=message, expect=(BulkTask.Status.QUEUED,))
        raise LaunchError(
            f"{message} Try again later, or ask an administrator to check the workers."
        ) from exc
    finally:
        pre_enqueue.disconnect(dispatch_uid=f"powercrud-enqueue-{task_pk}")
