"""The per-row outcome CSV of a task: formula-safe cells, streamed."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from powercrud.dashboard.describe import ACTIVE, done_verb, row_errors
from powercrud.models import MAX_STORED_ERRORS, BulkTask

Status = BulkTask.Status

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run as a formula (text starting with = + - @)."""
    if value is None:
        return ""
    if isinstance(value, int | float):
        return value
    text = str(value)
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def _rows_word(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def outcome_rows(task: BulkTask) -> Iterator[tuple[Any, str, str, str]]:
    """``(pk, outcome, field, message)`` for each stored row error, then what the record knows.

    A task keeps the primary keys only of the rows that failed. The rows that succeeded, and
    those left unchanged, are summary lines with an empty ``pk``: once a task ends, its
    selection (the row locks) is released and their ids are no longer stored anywhere.
    """
    done_word = done_verb(task)
    stored = task.stored_request
    for error in row_errors(task):
        yield error.pk, "failed", error.field, " ".join(error.messages)
    if task.errors_omitted:
        yield (
            None,
            "failed",
            "",
            f"{_rows_word(task.errors_omitted)} more failed; only the first {MAX_STORED_ERRORS} "
            "row errors are stored with a task.",
        )
    if task.status in ACTIVE:
        state = task.get_status_display().lower()
        yield None, "pending", "", f"The task is {state}: {task.done} of {_rows_word(task.total)} processed."
        return
    if stored is not None and stored.dry_run:
        yield None, "checked", "", f"A check only; nothing was written. {task.message}".strip()
        return
    # The worker commits a task's writes with its outcome: all of them when it succeeded, the
    # valid rows of a per-row task that failed, and nothing when it was cancelled.
    committed = task.status == Status.SUCCEEDED or (
        task.status == Status.FAILED and stored is not None and not stored.atomic
    )
    saved = task.success_count if committed else 0
    if saved:
        yield (
            None,
            done_word,
            "",
            f"{_rows_word(saved)} {done_word}; a task does not store the ids of rows that succeeded.",
        )
    unchanged = task.total - saved - task.failure_count
    if unchanged > 0:
        outcome = "cancelled" if task.status == Status.CANCELLED else "not changed"
        reason = f" {task.message}" if task.message and task.status != Status.SUCCEEDED else ""
        yield None, outcome, "", f"{_rows_word(unchanged)} not {done_word}.{reason}"


class _Echo:
    """A file-like object whose ``write`` hands back the line, for streaming ``csv.writer``."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(("pk", "outcome", "field", "message"))
    for row in rows:
        yield writer.writerow([_cell(value) for value in row])


# ----- filters ---------------------------------------------------------------------------------
