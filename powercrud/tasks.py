"""Deprecated alias: the job functions moved to ``powercrud.jobs``.

Kept so that jobs queued, and schedules created, by an earlier release still find their
function (``powercrud.tasks.run_bulk_task``, ``powercrud.tasks.cleanup_stale_tasks``).
Name ``powercrud.jobs.worker.run_bulk_task`` and ``powercrud.jobs.monitor.cleanup_stale_tasks``
in new code.
"""

from __future__ import annotations

from powercrud.jobs.monitor import cleanup_stale_tasks
from powercrud.jobs.worker import run_bulk_task

__all__ = ["cleanup_stale_tasks", "run_bulk_task"]
