"""``manage.py powercrud_cleanup``: end bulk tasks whose worker died, and release their rows;
prune the run ledger's rows of runs that ended longer ago than its retention."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from powercrud.conf import settings as pc_settings
from powercrud.jobs.monitor import fail_stale_tasks
from powercrud.jobs.retention import prune_run_rows


class Command(BaseCommand):
    help = (
        "Mark bulk tasks failed when their worker stopped responding (running, no heartbeat) or "
        "their job was lost (queued, no longer in the queue), and release their row locks; delete "
        "the run ledger's rows of runs that ended more than BULK_RUN_ROWS_RETENTION_DAYS days ago."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=float,
            default=None,
            metavar="SECONDS",
            help="A running task with no heartbeat for this long is dead "
            "(default: BULK_TASK_HEARTBEAT_TIMEOUT, 120).",
        )
        parser.add_argument(
            "--queued-older-than",
            type=float,
            default=None,
            metavar="SECONDS",
            help="A queued task this old whose job is gone is lost "
            "(default: BULK_TASK_QUEUED_TIMEOUT, 3600).",
        )
        parser.add_argument(
            "--rows-older-than",
            type=float,
            default=None,
            metavar="DAYS",
            help="Delete the ledger rows of runs that ended more than this many days ago "
            "(default: BULK_RUN_ROWS_RETENTION_DAYS, 30; unset there keeps them).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        failed = fail_stale_tasks(options["older_than"], options["queued_older_than"])
        if failed:
            ids = ", ".join(f"#{pk}" for pk in failed)
            self.stdout.write(f"Marked {len(failed)} bulk task(s) failed and released their rows: {ids}.")
        elif options["verbosity"] > 1:
            self.stdout.write("No stale bulk tasks.")
        days = options["rows_older_than"]
        if days is None:
            days = pc_settings.BULK_RUN_ROWS_RETENTION_DAYS
        if days is None:
            if options["verbosity"] > 1:
                self.stdout.write("Run rows are kept for ever (BULK_RUN_ROWS_RETENTION_DAYS is None).")
            return
        pruned = prune_run_rows(days)
        if pruned or options["verbosity"] > 1:
            self.stdout.write(
                f"Pruned {pruned} run row(s) of bulk runs that ended more than {days:g} days ago."
            )
