"""``manage.py powercrud_cleanup``: end bulk tasks whose worker died, and release their rows."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from powercrud.jobs.monitor import fail_stale_tasks


class Command(BaseCommand):
    help = (
        "Mark bulk tasks failed when their worker stopped responding (running, no heartbeat) or "
        "their job was lost (queued, no longer in the queue), and release their row locks."
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

    def handle(self, *args: Any, **options: Any) -> None:
        failed = fail_stale_tasks(options["older_than"], options["queued_older_than"])
        if failed:
            ids = ", ".join(f"#{pk}" for pk in failed)
            self.stdout.write(f"Marked {len(failed)} bulk task(s) failed and released their rows: {ids}.")
        elif options["verbosity"] > 1:
            self.stdout.write("No stale bulk tasks.")
