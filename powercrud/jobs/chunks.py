"""Chunked per-row background runs: one run's locked rows written by many worker jobs at once.

A per-row run (``atomic=False``) launched with a chunk size (a view's ``bulk_chunk_size`` or
the ``BULK_CHUNK_SIZE`` setting) is split once its worker has frozen the selection
(``split_run()``): its ``RowLock`` rows, in the database's order of their text key, become
``RunChunk`` records of that many rows (a first and a last key), and each chunk is one job
(``run_chunk(chunk_id)``) enqueued through the runner after the split commits, so any worker
on any machine may take it. An all-or-nothing run is never split: it stays one transaction.

``run_chunk()`` claims its chunk once (one conditional ``UPDATE`` queued -> running: a job
delivered twice runs once), then runs the run's stored ``BulkRequest`` over the chunk's rows
through ``run_recorded()`` (the guard and the ledger every run uses) in ONE transaction of its
own, which also records the chunk's outcome; the run's progress writer reports the rows of
the chunks already done plus this chunk's (the live figure is approximate while several
chunks run; the end counts are exact) and keeps the run's heartbeat fresh. The claim that
finishes a chunk must still be its latest (``attempts``): a chunk that cleanup re-queued
meanwhile is rolled back.

The run ends when its last chunk ends (``finish_run()``, whichever worker finishes last, once:
the run row is locked and only a running run is changed), with counts read from the ledger,
and releases its locks. Cancel: a chunk that starts after the cancel is marked cancelled
without running; a running one stops at its next batch (its transaction rolls back); rows of
chunks already finished stay written (per-row mode). Worker death: ``recover_stale_run()``
(called by ``monitor.fail_stale_tasks``) re-queues a running chunk whose run has no heartbeat
(its transaction rolled back with its worker, so running the whole chunk again writes no row
twice), and fails it after ``BULK_CHUNK_ATTEMPTS`` attempts.
"""

from __future__ import annotations

import datetime
import functools
import logging
from typing import Any

from django.db import models, router, transaction
from django.db.models import F, Sum
from django.utils import timezone
from django_q.exceptions import TimeoutException

from powercrud.bulk import messages
from powercrud.bulk.types import BulkResult, RowError
from powercrud.conf import settings as pc_settings
from powercrud.jobs import progress
from powercrud.jobs.ledger import lock_keys, run_recorded, settle_unreached
from powercrud.jobs.monitor import finish_task
from powercrud.jobs.progress import ProgressWriter, TaskCancelled
from powercrud.jobs.reruns import as_pks
from powercrud.jobs.runners import runner
from powercrud.models import CHUNK_SIZE_KEY, MAX_STORED_ERRORS, BulkTask, RowLock, RunChunk

__all__ = [
    "CHUNK_FUNCTION",
    "chunk_size_of",
    "finish_run",
    "recover_stale_run",
    "run_chunk",
    "split_run",
]

logger = logging.getLogger("powercrud.jobs")

CHUNK_FUNCTION = "powercrud.jobs.chunks.run_chunk"

Status = RunChunk.Status


def _alias() -> str:
    return router.db_for_write(RunChunk)


class _Superseded(Exception):
    """Cleanup re-queued (or ended) the chunk while this worker ran it: roll back."""


def chunk_size_of(task: BulkTask) -> int | None:
    """The chunk size ``task`` was launched with; None when it runs as one job."""
    payload = task.payload if isinstance(task.payload, dict) else {}
    size = payload.get(CHUNK_SIZE_KEY)
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    return None


# --- splitting ----------------------------------------------------------------------------------


def _enqueue(task_name: str, chunk_ids: list[int]) -> None:
    queue = runner()
    for chunk_id in chunk_ids:
        queue.enqueue(CHUNK_FUNCTION, chunk_id, name=f"{task_name}-chunk-{chunk_id}")


def split_run(task: BulkTask, size: int) -> int:
    """Split frozen run ``task`` into chunks of ``size`` locked rows and enqueue one job per
    chunk once the split commits; returns the number of chunks."""
    using = _alias()
    keys = list(
        RowLock.objects.using(using)
        .filter(task_id=task.pk)
        .order_by("object_pk")
        .values_list("object_pk", flat=True)
    )
    chunks = [
        RunChunk(
            run_id=task.pk,
            index=index,
            first_key=keys[start],
            last_key=keys[min(start + size, len(keys)) - 1],
            size=min(size, len(keys) - start),
        )
        for index, start in enumerate(range(0, len(keys), size))
    ]
    with transaction.atomic(using=using):
        created = RunChunk.objects.using(using).bulk_create(chunks)
        ids = [chunk.pk for chunk in created] or list(
            RunChunk.objects.using(using).filter(run_id=task.pk).values_list("pk", flat=True)
        )
        transaction.on_commit(functools.partial(_enqueue, task.task_name, ids), using=using, robust=False)
    return len(chunks)


# --- running one chunk --------------------------------------------------------------------------


def _claim(chunk_id: int) -> RunChunk | None:
    now = timezone.now()
    manager = RunChunk.objects.using(_alias())
    claimed = manager.filter(pk=chunk_id, status=Status.QUEUED).update(
        status=Status.RUNNING, started_at=now, attempts=F("attempts") + 1
    )
    return manager.get(pk=chunk_id) if claimed else None


def _rows(chunk: RunChunk, run: BulkTask) -> models.QuerySet[Any]:
    return RowLock.objects.using(_alias()).filter(
        task_id=run.pk, object_pk__gte=chunk.first_key, object_pk__lte=chunk.last_key
    )


def _done_before(run: BulkTask) -> int:
    finished = RunChunk.objects.using(_alias()).filter(run_id=run.pk, status__in=RunChunk.FINISHED)
    return int(finished.aggregate(n=Sum("done"))["n"] or 0)


def _end_chunk(chunk: RunChunk, status: str, **values: Any) -> bool:
    """Record the chunk's outcome if this claim is still its latest; returns whether it was."""
    changed = (
        RunChunk.objects.using(_alias())
        .filter(pk=chunk.pk, status=Status.RUNNING, attempts=chunk.attempts)
        .update(status=status, finished_at=timezone.now(), **values)
    )
    return bool(changed)


def _execute(chunk: RunChunk, run: BulkTask, writer: ProgressWriter) -> BulkResult:
    model = run.model_class
    if model is None:
        raise LookupError(run.model_label)
    request = run.read_request()
    context = request.context(
        mode="async",
        user_id=run.owner_id,
        selection_size=chunk.size,
        task_name=run.task_name,
        extra={"task_id": run.pk, "chunk": chunk.index},
    )
    base = _done_before(run)

    def report(done: int, total: int) -> None:
        writer(base + done, run.total)

    locks = _rows(chunk, run)
    queryset = model._base_manager.using(_alias()).filter(pk__in=as_pks(model, locks, "object_pk"))
    keys = lock_keys(run).filter(object_pk__gte=chunk.first_key, object_pk__lte=chunk.last_key)
    result, _ = run_recorded(
        run, request, queryset=queryset, keys=keys, context=context, progress_callback=report, partial=True
    )
    return result


def run_chunk(chunk_id: int) -> str:
    """Run chunk ``chunk_id`` once; returns its final status (or ``"skipped"``). The django-q2
    job function of a chunk; never raises to django-q2."""
    chunk = _claim(chunk_id)
    if chunk is None:
        logger.info("Chunk #%s is not queued (delivered twice, or cancelled); skipped.", chunk_id)
        return "skipped"
    run = BulkTask.objects.using(_alias()).get(pk=chunk.run_id)
    if run.status != BulkTask.Status.RUNNING or progress.cancel_requested(run):
        _end_chunk(chunk, Status.CANCELLED, message=messages.cancelled(run.kind))
        if finish_run(run.pk):
            _after_finish(run)
        return Status.CANCELLED
    from powercrud.jobs.worker import describe_failure  # the worker module imports this one

    writer = ProgressWriter(run)
    writer.start()
    status: str = Status.FAILED
    try:
        with transaction.atomic(using=_alias()):
            result = _execute(chunk, run, writer)
            writer.stop()
            if writer.cancelled.is_set():
                raise TaskCancelled(run.task_name)
            status = Status.SUCCEEDED if result.success else Status.FAILED
            recorded = _end_chunk(
                chunk,
                status,
                done=result.total,
                success_count=result.success_records,
                failure_count=result.failed_records,
                message=result.message,
                errors=[error.to_dict() for error in result.errors[:MAX_STORED_ERRORS]],
            )
            if not recorded:
                raise _Superseded(run.task_name)
    except TaskCancelled:
        writer.stop()
        status = Status.CANCELLED
        _end_chunk(chunk, status, message=messages.cancelled(run.kind))
    except _Superseded:
        logger.warning("Chunk #%s of bulk run #%s was re-queued while it ran; rolled back.", chunk.pk, run.pk)
        return "superseded"
    except (Exception, TimeoutException) as exc:  # the worker boundary: record it, never raise
        writer.stop()
        logger.exception("Chunk #%s of bulk run #%s failed.", chunk.pk, run.pk)
        _end_chunk(chunk, Status.FAILED, message=describe_failure(run, exc))
    finally:
        writer.stop()
    if finish_run(run.pk):
        _after_finish(run)
    return status


# --- ending the run -----------------------------------------------------------------------------


def _errors(chunks: list[RunChunk]) -> tuple[RowError, ...]:
    found: list[RowError] = []
    for chunk in chunks:
        for error in chunk.errors or []:
            found.append(RowError(error.get("pk"), error.get("field"), tuple(error.get("messages") or ())))
    return tuple(found[:MAX_STORED_ERRORS])


def finish_run(run_id: int) -> bool:
    """End chunked run ``run_id`` if every chunk has ended and it is still running; returns
    whether this call ended it (exactly one call does: the run row is locked meanwhile)."""
    using = _alias()
    with transaction.atomic(using=using):
        run = BulkTask.objects.using(using).select_for_update().filter(pk=run_id).first()
        if run is None or run.status != BulkTask.Status.RUNNING:
            return False
        chunks = list(RunChunk.objects.using(using).filter(run_id=run_id).order_by("index"))
        if not chunks or any(chunk.status not in RunChunk.FINISHED for chunk in chunks):
            return False
        done = sum(chunk.done for chunk in chunks)
        settle_unreached(run)  # rows of chunks that did not run (cancelled, crashed): not reached
        if any(chunk.status == Status.CANCELLED for chunk in chunks):
            message = messages.cancelled(run.kind, done=done, total=run.total)
            return finish_task(run, BulkTask.Status.CANCELLED, message=message, done=done)
        succeeded = sum(chunk.success_count for chunk in chunks)
        failed = sum(chunk.failure_count for chunk in chunks)
        crashed = [chunk for chunk in chunks if chunk.status == Status.FAILED and not chunk.failure_count]
        success = all(chunk.status == Status.SUCCEEDED for chunk in chunks)
        summary = messages.summarise(
            success=success,
            success_records=succeeded,
            failed=failed,
            total=run.total,
            changed=None,
            dry_run=run.dry_run,
            atomic=False,
            verb=messages.done_verb(run.kind),
            general=crashed[0].message if crashed and not failed else None,
        )
        errors = _errors(chunks)
        listed = len({error.pk for error in errors if error.pk is not None})
        result = BulkResult(
            success=success,
            success_records=succeeded,
            errors=errors,
            total=run.total,
            dry_run=run.dry_run,
            message=summary,
            failed=max(failed, listed),
        )
        status = BulkTask.Status.SUCCEEDED if success else BulkTask.Status.FAILED
        return finish_task(run, status, message=summary, result=result, done=run.total)


def _after_finish(run: BulkTask) -> None:
    progress.forget(run)


# --- worker death -------------------------------------------------------------------------------


def recover_stale_run(run: BulkTask, cutoff: datetime.datetime) -> bool:
    """Cleanup of a chunked ``run`` whose heartbeat stopped: re-queue each chunk that has been
    running since before ``cutoff`` (its worker is gone), or fail it after
    ``BULK_CHUNK_ATTEMPTS`` attempts; ends the run when that was its last chunk. Returns
    False when ``run`` is not chunked (the caller ends it as a dead run)."""
    using = _alias()
    chunks = RunChunk.objects.using(using).filter(run_id=run.pk)
    if not chunks.exists():
        return False
    requeued: list[int] = []
    for chunk in chunks.filter(status=Status.RUNNING, started_at__lt=cutoff):
        latest = chunks.filter(pk=chunk.pk, status=Status.RUNNING, attempts=chunk.attempts)
        if chunk.attempts >= pc_settings.BULK_CHUNK_ATTEMPTS:
            silent = int((timezone.now() - (chunk.started_at or cutoff)).total_seconds())
            latest.update(
                status=Status.FAILED,
                finished_at=timezone.now(),
                message=messages.no_heartbeat(run.kind, silent),
            )
            logger.warning(
                "Chunk #%s of bulk run #%s failed after %s attempts.", chunk.pk, run.pk, chunk.attempts
            )
        elif latest.update(status=Status.QUEUED):
            requeued.append(chunk.pk)
            logger.warning("Chunk #%s of bulk run #%s: its worker died; queued again.", chunk.pk, run.pk)
    if requeued:
        _enqueue(run.task_name, requeued)
    if finish_run(run.pk):
        _after_finish(run)
    return True
