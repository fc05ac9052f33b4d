"""Worker-side code for the reliability suite: backends named by path, and a small CLI.

The backends wrap a real backend's ``progress_callback`` to slow a run down, tell the test
which process runs it, or kill that process, so a test can hurt a real ``qcluster`` worker at
a known point. They are configured by ``backend_config`` (plain JSON stored with the task).

Run ``python -m tests.reliability.helpers CMD`` with ``DJANGO_SETTINGS_MODULE`` pointing at a
database shared with a real worker (tests/reliability/settings_worker.py): every command is a
separate process, so the test sees exactly what a web server or the dashboard would see.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # the CLI: Django first, the backends below import models
    import django

    django.setup()

from powercrud.bulk.runner import ProgressCallback  # noqa: E402
from powercrud.bulk_persistence import DefaultBulkUpdatePersistenceBackend  # noqa: E402
from tests.testapp.backends import BookBulkUpdateBackend  # noqa: E402

FINISHED = ("succeeded", "failed", "cancelled")


class SlowMixin:
    """Slows, reports or ends the run after each batch, as ``backend_config`` says.

    config: ``sleep`` (seconds after each batch), ``pidfile`` (after the first batch, write
    this process's id there), ``die_after`` (SIGKILL this process after that many batches:
    a worker killed by the OOM killer, on every attempt).
    """

    config: dict[str, Any]

    def persist_bulk_update(self, *, progress_callback: ProgressCallback | None = None, **kwargs: Any) -> Any:
        pause = float(self.config.get("sleep", 0))
        pidfile = self.config.get("pidfile")
        die_after = int(self.config.get("die_after") or 0)
        batches = 0

        def report(done: int, total: int) -> None:
            nonlocal batches
            if progress_callback is not None:
                progress_callback(done, total)
            if done == 0:
                return
            batches += 1
            if pidfile and batches == 1:
                Path(f"{pidfile}.tmp").write_text(str(os.getpid()))
                os.replace(f"{pidfile}.tmp", pidfile)
            if die_after and batches >= die_after:
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(pause)

        return super().persist_bulk_update(progress_callback=report, **kwargs)  # type: ignore[misc]


class SlowBackend(SlowMixin, DefaultBulkUpdatePersistenceBackend):
    """powercrud's default backend, slowed or killed per batch."""


class SlowAuditedBackend(SlowMixin, BookBulkUpdateBackend):
    """The test app's backend (one ``BulkAudit`` row per applied run), slowed per batch."""


if os.environ.get("POWERCRUD_RELIABILITY_NEW_CODE"):

    class NewBackend(DefaultBulkUpdatePersistenceBackend):
        """Exists only where ``POWERCRUD_RELIABILITY_NEW_CODE`` is set: code deployed to the web
        servers but not yet to the workers."""


# --- CLI ----------------------------------------------------------------------------------------


def _task(task_id: int) -> dict[str, Any]:
    from powercrud.jobs.progress import live_progress
    from powercrud.models import BulkTask, RowLock

    task = live_progress([BulkTask.objects.get(pk=task_id)])[0]
    return {
        "id": task.pk,
        "status": task.status,
        "done": task.done,
        "total": task.total,
        "attempts": task.attempts,
        "success_count": task.success_count,
        "failure_count": task.failure_count,
        "message": task.message,
        "errors": task.errors,
        "heartbeat_at": task.heartbeat_at.timestamp() if task.heartbeat_at else None,
        "locks": RowLock.objects.filter(task_id=task_id).count(),
    }


def _state(prefix: str, task_id: int | None) -> dict[str, Any]:
    from django.db.models import Count
    from django_q.conf import Conf
    from django_q.models import OrmQ, Task

    from powercrud.models import BulkTask, RowLock
    from tests.testapp.models import Book, BulkAudit

    books = Book.objects.filter(title__startswith=prefix)
    state: dict[str, Any] = {
        "statuses": dict(books.values_list("status").annotate(n=Count("pk")).order_by()),
        "links": Book.tags.through.objects.filter(book__title__startswith=prefix).count(),
        "locks": RowLock.objects.count(),
        "tasks": BulkTask.objects.count(),
        "audits": BulkAudit.objects.count(),
        "queued_jobs": OrmQ.objects.count() if Conf.ORM else None,
    }
    if task_id is not None:
        name = BulkTask.objects.get(pk=task_id).task_name
        results = Task.objects.filter(name=name).values_list("result", flat=True)
        state["job_results"] = sorted(str(result) for result in results)
        if Conf.ORM:
            state["job_waiting"] = any(job.name() == name for job in OrmQ.objects.all())
    return state


def main(argv: Sequence[str] | None = None) -> int:
    from django.core.management import call_command
    from django.db import connection

    from powercrud.jobs.launch import JOB_FUNCTION, LaunchError
    from powercrud.jobs.locks import LockConflict
    from powercrud.jobs.monitor import fail_stale_tasks
    from powercrud.models import BulkTask
    from tests.async_helpers import launch_request, make_books
    from tests.testapp.models import Book, Tag

    parser = argparse.ArgumentParser(prog="python -m tests.reliability.helpers")
    sub = parser.add_subparsers(dest="cmd", required=True)
    setup = sub.add_parser("setup", help="migrate, add N books and the tag 'reliability'")
    setup.add_argument("--books", type=int, default=100)
    launch = sub.add_parser("launch", help="launch a bulk edit of the books whose title starts with PREFIX")
    launch.add_argument("--prefix", required=True)
    launch.add_argument("--data", default='{"status": "archived"}', help="field_data as JSON")
    launch.add_argument("--backend", default=None)
    launch.add_argument("--config", default="{}")
    launch.add_argument("--batch-size", type=int, default=5)
    launch.add_argument("--per-row", action="store_true")
    enqueue = sub.add_parser("enqueue", help="hand the task's job to django-q2 again (duplicate delivery)")
    enqueue.add_argument("task_id", type=int)
    enqueue.add_argument("--times", type=int, default=1)
    observe = sub.add_parser("observe", help="print the task every 0.05 s until it ends, running cleanup")
    observe.add_argument("task_id", type=int)
    observe.add_argument("--seconds", type=float, default=30)
    observe.add_argument("--cleanup-every", type=float, default=0, help="run fail_stale_tasks() (0: never)")
    status = sub.add_parser("status", help="print the task as JSON")
    status.add_argument("task_id", type=int)
    state = sub.add_parser("state", help="books of PREFIX by status, links, locks, tasks, audits, jobs")
    state.add_argument("--prefix", required=True)
    state.add_argument("--task", type=int, default=None)
    unlink = sub.add_parser("unlink", help="remove the tag 'reliability' from the first book of PREFIX")
    unlink.add_argument("--prefix", required=True)
    args = parser.parse_args(argv)

    if args.cmd == "setup":
        call_command("migrate", verbosity=0)
        make_books(args.books)
        tag = Tag.objects.create(name="reliability")
        print(json.dumps({"books": Book.objects.count(), "tag": tag.pk}))
    elif args.cmd == "launch":
        data = json.loads(args.data)
        if data.get("tags") == "add":
            data["tags"] = {"op": "add", "ids": [Tag.objects.get(name="reliability").pk]}
        try:
            task = launch_request(
                Book.objects.filter(title__startswith=args.prefix),
                operation="update",
                user=None,
                fields_to_update=list(data),
                field_data=data,
                bulk_fields=["status", "price", "tags"],
                backend_path=args.backend,
                backend_config=json.loads(args.config),
                atomic=not args.per_row,
                batch_size=args.batch_size,
            )
        except (LockConflict, LaunchError) as exc:
            print(json.dumps({"refused": type(exc).__name__, "message": exc.message}))
        else:
            print(json.dumps({"id": task.pk, "total": task.total}))
    elif args.cmd == "enqueue":
        from django_q.tasks import async_task

        task = BulkTask.objects.get(pk=args.task_id)
        for _ in range(args.times):
            async_task(JOB_FUNCTION, task.pk, task_name=task.task_name)
        print(json.dumps({"enqueued": args.times}))
    elif args.cmd == "observe":
        start = time.monotonic()
        last_cleanup = float("-inf")
        while True:
            now = time.monotonic()
            if args.cleanup_every and now - last_cleanup >= args.cleanup_every:
                fail_stale_tasks()  # what a cron job running `manage.py powercrud_cleanup` does
                last_cleanup = now
            seen = _task(args.task_id)
            seen["t"] = round(now - start, 3)
            seen["wall"] = time.time()
            print(json.dumps(seen), flush=True)
            if seen["status"] in FINISHED or now - start > args.seconds:
                break
            connection.close()  # a fresh snapshot next time (SQLite WAL readers)
            time.sleep(0.05)
    elif args.cmd == "status":
        print(json.dumps(_task(args.task_id)))
    elif args.cmd == "state":
        print(json.dumps(_state(args.prefix, args.task)))
    elif args.cmd == "unlink":
        book = Book.objects.filter(title__startswith=args.prefix).order_by("pk").first()
        assert book is not None
        book.tags.remove(Tag.objects.get(name="reliability"))
        print(json.dumps({"unlinked": book.pk}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
