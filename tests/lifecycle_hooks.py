"""Lifecycle hooks the real-worker test registers (tests/test_lifecycle_worker.py): imported by
the test app's ``ready()`` only when ``POWERCRUD_TEST_LIFECYCLE`` names a file, so every process
of that test (the helpers and ``qcluster``) registers them at start-up, as a project's
``AppConfig.ready()`` would. Each call appends one JSON line to that file."""

from __future__ import annotations

import json
import os
from typing import Any

from powercrud.bulk import lifecycle
from powercrud.bulk.lifecycle import Pair, changed_to
from tests.testapp.models import Book

KEPT = "Book 00007"


def _write(event: str, pairs: list[Pair]) -> None:
    def row(obj: Any) -> Any:
        return None if obj is None else [obj.pk, obj.title, obj.status]

    with open(os.environ["POWERCRUD_TEST_LIFECYCLE"], "a") as out:
        out.write(
            json.dumps(
                {"event": event, "pid": os.getpid(), "pairs": [[row(p.new), row(p.old)] for p in pairs]}
            )
        )
        out.write("\n")


@lifecycle.before_update(Book, when=changed_to("status", "archived"))
def keep_one(pairs: list[Pair]) -> list[Any]:
    _write("before_update", pairs)
    return [
        lifecycle.refuse(new, "status", f"{KEPT} is kept.") for new, _ in pairs if new and new.title == KEPT
    ]


@lifecycle.after_update(Book)
def after_update(pairs: list[Pair]) -> None:
    _write("after_update", pairs)


@lifecycle.after_delete(Book)
def after_delete(pairs: list[Pair]) -> None:
    _write("after_delete", pairs)
