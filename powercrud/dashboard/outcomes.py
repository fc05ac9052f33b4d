"""The outcomes download of a task: formula-safe CSV or JSON Lines, streamed.

A run with ledger rows (``RunRow``) downloads every row: its key, outcome, the value of each
of the run's fields before and after, and its errors (``ledger_csv()``, ``ledger_jsonl()``).
A run without them (recorded before the ledger, with ``BULK_RUN_LEDGER = False``, or pruned)
downloads what its record knows: the stored row errors and summary lines (``outcome_rows()``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from powercrud import fileformats
from powercrud.bulk.request import BulkRequest
from powercrud.dashboard.describe import ACTIVE, done_verb, row_errors
from powercrud.models import MAX_STORED_ERRORS, BulkTask, RunRow

Status = BulkTask.Status


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


def csv_lines(rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    return fileformats.csv_lines(("pk", "outcome", "field", "message"), rows)


# ----- filters ---------------------------------------------------------------------------------


# ----- the full outcomes, from the run ledger ---------------------------------------------------

LEDGER_CHUNK = 2000
"""``RunRow`` entries read per round trip while an outcomes download streams."""


def has_ledger_rows(task: BulkTask) -> bool:
    """Whether the run's ledger holds rows (not for runs recorded without it, or pruned)."""
    return RunRow.objects.filter(run_id=task.pk).exists()


def run_fields(task: BulkTask, stored: BulkRequest | None) -> list[str]:
    """The fields a run's rows record, in order: an edit's fields; every concrete field of a
    delete. Without a readable request or model, the fields of the first recorded row."""
    model = task.model_class
    if task.kind == BulkTask.Kind.DELETE and model is not None:
        return [f.name for f in model._meta.concrete_fields]
    if task.kind == BulkTask.Kind.UPDATE and stored is not None and stored.fields_to_update:
        return list(stored.fields_to_update)
    if task.kind == BulkTask.Kind.IMPORT and stored is not None and stored.source_action is None:
        return list(stored.import_spec.fields)
    first = (
        RunRow.objects.filter(run_id=task.pk)
        .exclude(old__isnull=True)
        .order_by("id")
        .values_list("old", "new")
        .first()
    )
    if first is None:
        return []
    old, new = first
    return list(dict.fromkeys([*(old or {}), *(new or {})]))


def ledger_header(fields: Sequence[str]) -> list[str]:
    """``pk, outcome, <field> before, <field> after, ..., error field, error messages``."""
    columns = ["pk", "outcome"]
    for name in fields:
        columns += [f"{name} before", f"{name} after"]
    return [*columns, "error field", "error messages"]


def _plain(value: Any) -> Any:
    """A stored JSON value as one CSV cell: text and numbers as they are, ``true``/``false``,
    lists (many-to-many keys) and objects as JSON, nothing for null."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return json.dumps(value, ensure_ascii=False)
    return value


def _error_parts(errors: Any) -> tuple[list[str], list[str]]:
    fields: list[str] = []
    texts: list[str] = []
    for item in errors if isinstance(errors, list) else []:
        if not isinstance(item, Mapping):
            continue
        raw = item.get("messages")
        messages = raw if isinstance(raw, list | tuple) else [] if raw is None else [raw]
        fields.append(str(item.get("field") or ""))
        texts.append(" ".join(str(message) for message in messages))
    return fields, texts


def _ledger_rows(task: BulkTask) -> Iterator[tuple[str, str, Any, Any, Any]]:
    return (
        RunRow.objects.filter(run_id=task.pk)
        .order_by("id")
        .values_list("object_pk", "outcome", "old", "new", "errors")
        .iterator(chunk_size=LEDGER_CHUNK)
    )


def ledger_csv_rows(task: BulkTask, fields: Sequence[str]) -> Iterator[list[Any]]:
    """One line per ``RunRow`` of the run, in ``ledger_header(fields)``'s columns, unescaped.

    A row with several errors lists them in order, separated by ``"; "``, in both error columns.
    """
    for pk, outcome, old, new, errors in _ledger_rows(task):
        old, new = old or {}, new or {}
        line: list[Any] = [pk, outcome]
        for name in fields:
            line += [_plain(old.get(name)), _plain(new.get(name))]
        error_fields, texts = _error_parts(errors)
        yield [*line, "; ".join(error_fields), "; ".join(texts)]


def ledger_csv(task: BulkTask, stored: BulkRequest | None) -> Iterator[str]:
    """The run's full outcomes as formula-safe CSV text, streamed in blocks."""
    fields = run_fields(task, stored)
    return fileformats.blocks(fileformats.csv_lines(ledger_header(fields), ledger_csv_rows(task, fields)))


def ledger_jsonl(task: BulkTask) -> Iterator[str]:
    """The run's full outcomes as JSON Lines: one object per ``RunRow``, in ledger order::

    {"pk": "12", "outcome": "changed", "before": {"price": "9.50"}, "after": {"price": "12.50"},
     "errors": []}
    """

    def lines() -> Iterator[str]:
        for pk, outcome, old, new, errors in _ledger_rows(task):
            item = {"pk": pk, "outcome": outcome, "before": old, "after": new, "errors": errors or []}
            yield json.dumps(item, ensure_ascii=False) + "\n"

    return fileformats.blocks(lines())


def summary_jsonl(task: BulkTask) -> Iterator[str]:
    """A run without ledger rows as JSON Lines: ``outcome_rows()`` as ``{pk, outcome, field, message}``."""
    for pk, outcome, field, message in outcome_rows(task):
        item = {"pk": pk, "outcome": outcome, "field": field, "message": message}
        yield json.dumps(item, ensure_ascii=False) + "\n"
