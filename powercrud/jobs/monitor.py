"""The monitor side of bulk runs: finishing a run, recording one made in the request,
cancelling it, and ending runs whose worker died.

``finish_task()`` records an outcome and releases the run's row locks in one transaction;
the worker, the launch (a broker that refused the job) and the cleanup all end runs through
it. ``request_cancel()`` stops a queued run at once or asks a running one to stop at its next
batch. ``fail_stale_tasks()`` (``manage.py powercrud_cleanup``, or ``cleanup_stale_tasks``
scheduled with django-q2) fails runs whose heartbeat stopped or whose job never reached a worker.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable
from typing import Any

from django.db import router, transaction
from django.utils import timezone

from powercrud.bulk import messages
from powercrud.bulk.request import BulkRequest
from powercrud.bulk.types import BulkResult
from powercrud.conf import settings as pc_settings
from powercrud.jobs import progress
from powercrud.jobs.ledger import counts, settle_unreached
from powercrud.jobs.locks import release_locks
from powercrud.jobs.runners import runner
from powercrud.models import MAX_STORED_ERRORS, BulkTask
from powercrud.signals import bulk_run_finished

__all__ = [
    "cleanup_stale_tasks",
    "fail_stale_tasks",
    "finish_task",
    "close_request_run",
    "open_request_run",
    "request_cancel",
]

logger = logging.getLogger("powercrud.jobs")

Status = BulkTask.Status


def _alias() -> str:
    return router.db_for_write(BulkTask)


# --- finishing ----------------------------------------------------------------------------------


def _outcome(result: BulkResult) -> dict[str, Any]:
    """The run record's fields for ``result``: exact counts, the first errors, the summary."""
    stored = [error.to_dict() for error in result.errors[:MAX_STORED_ERRORS]]
    listed_rows = len({error["pk"] for error in stored if error["pk"] is not None})
    summary = result.to_dict()
    summary["errors"] = stored
    return {
        "success_count": result.success_records,
        "failure_count": result.failed_records,
        "errors": stored,
        "errors_omitted": max(0, result.failed_records - listed_rows),
        "result": summary,
    }


def open_request_run(request: BulkRequest, *, user: Any, total: int) -> BulkTask:
    """The record of a bulk run about to be made in the request (running); returns it.

    Made inside the run's transaction, before the run, so its ledger rows can refer to it.
    """
    return BulkTask.objects.using(_alias()).create(
        kind=request.operation,
        model_label=request.model_label,
        owner=user if getattr(user, "is_authenticated", False) else None,
        mode=BulkTask.Mode.SYNC,
        status=Status.RUNNING,
        dry_run=request.dry_run,
        reason=request.reason,
        payload=request.to_dict(),
        total=total,
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
        attempts=1,
    )


def close_request_run(
    run: BulkTask, result: BulkResult, row_counts: dict[str, int] | None = None
) -> BulkTask:
    """Record ``result`` on ``run`` (from ``open_request_run()``), in the run's transaction;
    ``row_counts``: the ledger's counts from ``run_recorded()``.

    One ``UPDATE``: the record was made in this transaction, so no other one can have seen
    it, let alone changed its status (``finish_task()``'s check and lock are not needed), and
    a run in the request holds no ``RowLock`` to release.
    """
    values: dict[str, Any] = {
        "status": Status.SUCCEEDED if result.success else Status.FAILED,
        "message": result.message,
        "finished_at": timezone.now(),
        "done": result.total,
        "total": result.total,
        **_outcome(result),
        "row_counts": counts(run) if row_counts is None else row_counts,
    }
    BulkTask.objects.using(_alias()).filter(pk=run.pk).update(**values)
    for name, value in values.items():
        setattr(run, name, value)
    _announce(run)
    return run


def _announce(run: BulkTask) -> None:
    """Send ``bulk_run_finished`` for ``run`` once its outcome is committed."""
    transaction.on_commit(
        lambda: bulk_run_finished.send(sender=BulkTask, run=run), using=_alias(), robust=True
    )


def finish_task(
    task: BulkTask,
    status: str,
    *,
    message: str,
    result: BulkResult | None = None,
    done: int | None = None,
    expect: Iterable[str] = (Status.RUNNING,),
    release: bool = True,
    row_counts: dict[str, int] | None = None,
) -> bool:
    """Record ``task``'s outcome and release its locks, in one transaction.

    Only a task whose status is in ``expect`` is changed; returns whether it was.
    ``release=False`` when the caller has already released the locks in its transaction.
    ``row_counts``: the ledger's counts when the caller settled the run (else counted here).
    """
    values: dict[str, Any] = {
        "status": status,
        "message": message,
        "finished_at": timezone.now(),
    }
    if status == Status.CANCELLED:
        values["cancel_requested"] = True
    if done is not None:
        values["done"] = done
    if result is not None:
        values.update(_outcome(result))
    using = _alias()
    with transaction.atomic(using=using):
        current = (
            BulkTask.objects.using(using).select_for_update().filter(pk=task.pk, status__in=list(expect))
        )
        if not current.exists():
            return False
        if result is None and task.mode == BulkTask.Mode.ASYNC:
            settle_unreached(task)  # cancelled, died or never ran: nothing it did was kept
        values["row_counts"] = counts(task) if row_counts is None else row_counts
        changed = current.update(**values)
        if changed and release:
            release_locks(task)
    if changed:
        for name, value in values.items():
            setattr(task, name, value)
        if status in BulkTask.FINISHED:
            _announce(task)
    return bool(changed)


# --- cancelling ---------------------------------------------------------------------------------


def request_cancel(task: BulkTask | int) -> BulkTask:
    """Cancel a queued task now (it never runs), or ask a running one to stop at its next batch.

    Returns the task as it now stands; ``cancel_requested`` tells whether the request took.
    A finished task is returned unchanged.
    """
    task_id = task.pk if isinstance(task, BulkTask) else task
    current = BulkTask.objects.using(_alias()).get(pk=task_id)
    if current.status == Status.QUEUED:
        if finish_task(
            current,
            Status.CANCELLED,
            message=messages.cancelled(current.kind),
            expect=(Status.QUEUED,),
        ):
            return current
        current.refresh_from_db()
    if current.status == Status.RUNNING:
        progress.cancel_running(current)
        current.cancel_requested = True
    return current


# --- worker death -------------------------------------------------------------------------------


def _queued_jobs() -> set[str] | None:
    """Names of the jobs waiting to start, as the runner knows them (django-q2: its ORM queue);
    None when it cannot tell."""
    return runner().waiting()


def fail_stale_tasks(
    older_than_seconds: float | None = None, queued_older_than_seconds: float | None = None
) -> list[int]:
    """End tasks whose worker died as failed, releasing their locks; returns their ids.

    Running tasks with no heartbeat for ``older_than_seconds`` (setting
    ``BULK_TASK_HEARTBEAT_TIMEOUT``, default 120) fail. Queued tasks older than
    ``queued_older_than_seconds`` (``BULK_TASK_QUEUED_TIMEOUT``, default 3600) fail when
    their job is no longer in django-q2's queue (ORM broker; other brokers: by age alone).
    """
    if older_than_seconds is None:
        older_than_seconds = pc_settings.BULK_TASK_HEARTBEAT_TIMEOUT
    if queued_older_than_seconds is None:
        queued_older_than_seconds = pc_settings.BULK_TASK_QUEUED_TIMEOUT
    from powercrud.jobs.chunks import recover_stale_run  # it ends runs through this module

    now = timezone.now()
    failed: list[int] = []
    cutoff = now - datetime.timedelta(seconds=older_than_seconds)
    running = progress.live_progress(BulkTask.objects.using(_alias()).filter(status=Status.RUNNING))
    for task in running:
        last = task.heartbeat_at or task.started_at or task.created_at
        if last >= cutoff:
            continue
        if recover_stale_run(task, cutoff):  # chunked: its dead chunks run again
            continue
        silent = int((now - last).total_seconds())
        message = messages.no_heartbeat(task.kind, silent)
        if finish_task(task, Status.FAILED, message=message):
            progress.forget(task)
            failed.append(task.pk)
            logger.warning("Bulk task #%s failed: no heartbeat for %s s.", task.pk, silent)
    queued_cutoff = now - datetime.timedelta(seconds=queued_older_than_seconds)
    old_queued = list(
        BulkTask.objects.using(_alias()).filter(status=Status.QUEUED, created_at__lt=queued_cutoff)
    )
    if old_queued:
        waiting = _queued_jobs()
        for task in old_queued:
            if waiting is not None and task.task_name in waiting:
                continue
            message = messages.never_picked_up(task.kind, int(queued_older_than_seconds))
            if finish_task(task, Status.FAILED, message=message, expect=(Status.QUEUED,)):
                failed.append(task.pk)
                logger.warning("Bulk task #%s failed: never picked up by a worker.", task.pk)
    return failed


def cleanup_stale_tasks() -> int:
    """The function to schedule with django-q2 (``Schedule``); returns how many tasks failed."""
    return len(fail_stale_tasks())
