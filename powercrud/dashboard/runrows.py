"""A run's rows on its task page, from the run ledger: counts by outcome and a paged table.

``outcome_counts()`` words ``BulkTask.row_counts`` for a person ("Changed 1,204", or for a
check "would change 1,204"); ``rows_page()`` reads one page of the run's ``RunRow`` entries,
filtered by outcome, with each field's value before and after in words. A page costs a fixed
number of queries (a count, the page, one per related field named on it), never one per row.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.paginator import Page, Paginator
from django.db import models
from django.http import QueryDict
from django.utils.text import capfirst

from powercrud.bulk import ledger
from powercrud.bulk.display import field_label, model_field, related_names, show_value
from powercrud.conf import settings as pc_settings
from powercrud.jobs.ledger import stored_value
from powercrud.models import BulkTask, RunRow
from powercrud.params import single
from powercrud.views import CRUDView

__all__ = [
    "ALL",
    "PER_PAGE",
    "OutcomeCount",
    "RowLine",
    "UnknownOutcome",
    "outcome_counts",
    "read_outcome",
    "rows_page",
]

PER_PAGE = 50
"""Rows per page of a run's row table."""

ALL = "all"
"""``?outcome=all``: every row of the run."""

Status = BulkTask.Status

_APPLIED = {
    ledger.CHANGED: "Changed",
    ledger.UNCHANGED: "Unchanged",
    ledger.FAILED: "Failed",
    ledger.SKIPPED: "Skipped",
    ledger.NOT_REACHED: "Not reached",
    ledger.CONFLICT: "Conflict",
    ledger.CREATED: "Created",
}
_CHECKED = {
    ledger.CHANGED: "would change",
    ledger.UNCHANGED: "would stay the same",
    ledger.FAILED: "would fail",
    ledger.SKIPPED: "would be skipped",
    ledger.NOT_REACHED: "not reached",
    ledger.CONFLICT: "would conflict",
    ledger.CREATED: "would be created",
}
_ALWAYS = (ledger.CHANGED, ledger.UNCHANGED, ledger.FAILED)
"""Outcomes counted even at zero; the others only when a row has them."""

CASCADED = "cascaded"
"""``row_counts`` key of the rows a delete's cascade removed besides its own (no ledger rows)."""

_TONES = {ledger.CHANGED: "ok", ledger.CREATED: "ok", ledger.FAILED: "failed", ledger.CONFLICT: "failed"}


@dataclass(frozen=True)
class OutcomeCount:
    """One outcome of a run and how many rows had it, worded for the run (check or apply)."""

    outcome: str
    label: str
    count: int
    tone: str
    """CSS tone: ``ok``, ``failed``, ``would`` (a check), ``zero`` or ``""``."""


def _not_reached_reason(task: BulkTask) -> str:
    if task.status == Status.CANCELLED:
        return "cancelled"
    return "the check stopped" if task.dry_run else "rolled back"


def outcome_label(task: BulkTask, outcome: str) -> str:
    """``"Changed"``, ``"Not reached (rolled back)"``; for a check ``"would change"``."""
    label = (_CHECKED if task.dry_run else _APPLIED).get(outcome, outcome)
    if outcome == ledger.NOT_REACHED:
        label = f"{label} ({_not_reached_reason(task)})"
    return label


def outcome_counts(task: BulkTask) -> list[OutcomeCount]:
    """The run's rows by outcome from ``row_counts``; empty for a run recorded without the
    ledger (or still running), which shows its success and failure counts instead."""
    counted = task.row_counts if isinstance(task.row_counts, Mapping) else {}
    if not counted or not task.is_finished:
        return []
    lines = []
    for outcome in ledger.OUTCOMES:
        count = int(counted.get(outcome) or 0)
        if not count and outcome not in _ALWAYS:
            continue
        if not count:
            tone = "zero"
        elif task.dry_run:
            tone = "failed" if outcome == ledger.FAILED else "would"
        else:
            tone = _TONES.get(outcome, "")
        lines.append(OutcomeCount(outcome, outcome_label(task, outcome), count, tone))
    cascaded = int(counted.get(CASCADED) or 0)
    if cascaded:  # other rows a delete's cascade removed: counted, not rows of the run
        lines.append(OutcomeCount(CASCADED, "Also removed by cascade", cascaded, ""))
    return lines


def _rows_counted(counted: Mapping[str, Any]) -> int:
    return sum(int(counted.get(outcome) or 0) for outcome in ledger.OUTCOMES)


class UnknownOutcome(ValueError):
    """``?outcome=`` names no outcome; ``message`` says what it takes."""

    def __init__(self, value: str) -> None:
        self.value = value
        choices = ", ".join((ALL, *ledger.OUTCOMES))
        self.message = f"“{value}” is not a row outcome. Use one of: {choices}."
        super().__init__(self.message)


def read_outcome(query: QueryDict, task: BulkTask) -> str:
    """The ``?outcome=`` filter: an outcome or ``ALL``; by default the failed rows when there
    are any, else every row. ``RepeatedParameter`` when sent twice, ``UnknownOutcome`` when
    it names no outcome."""
    value = single(query, "outcome").strip()
    if not value:
        counted = task.row_counts if isinstance(task.row_counts, Mapping) else {}
        return ledger.FAILED if counted.get(ledger.FAILED) else ALL
    if value == ALL or value in ledger.OUTCOMES:
        return value
    raise UnknownOutcome(value)


@dataclass(frozen=True)
class FieldLine:
    """One field of one row: its value before and after, in words (``new`` None: not known)."""

    field: str
    label: str
    old: str | None
    new: str | None
    same: bool = False
    """Both values are known and equal: the row kept this field as it was."""


@dataclass(frozen=True)
class ErrorLine:
    field: str
    label: str
    messages: tuple[str, ...]


@dataclass(frozen=True)
class RowLine:
    """One row of the table: its key (linked to its page when it still has one), outcome,
    fields and errors."""

    pk: str
    url: str | None
    outcome: str
    label: str
    fields: tuple[FieldLine, ...]
    errors: tuple[ErrorLine, ...]


def _python(model: type[models.Model] | None, name: str, value: Any) -> Any:
    """The stored ``value`` as Python; a decimal with its field's places (SQLite drops them)."""
    if model is None or value is None:
        return value
    try:
        found = stored_value(model, name, value)
    except (FieldDoesNotExist, ValidationError, ValueError, TypeError, AttributeError):
        return value
    field = model_field(model, name)
    if (
        isinstance(found, Decimal)
        and isinstance(field, models.DecimalField)
        and field.decimal_places is not None
    ):
        with contextlib.suppress(InvalidOperation):
            found = found.quantize(Decimal(1).scaleb(-field.decimal_places))
    return found


def _names_on_page(
    model: type[models.Model] | None, rows: Sequence[RunRow], fields: Sequence[str]
) -> dict[str, dict[str, str]]:
    """The related rows the page names, by field: one query per related field."""
    wanted: dict[str, set[Any]] = defaultdict(set)
    for row in rows:
        for values in (row.old or {}, row.new or {}):
            for name in fields:
                field = model_field(model, name)
                value = values.get(name) if isinstance(values, Mapping) else None
                if field is None or not field.is_relation or value is None:
                    continue
                if field.many_to_many:
                    wanted[name].update(value if isinstance(value, list) else [])
                else:
                    wanted[name].add(value)
    return {name: related_names(model_field(model, name), ids) for name, ids in wanted.items() if ids}


def _shown(model: type[models.Model] | None, name: str, value: Any, names: Mapping[str, str]) -> str:
    return show_value(model_field(model, name), value, names)


def _errors(model: type[models.Model] | None, errors: Any) -> tuple[ErrorLine, ...]:
    lines = []
    for item in errors if isinstance(errors, list) else []:
        if not isinstance(item, Mapping):
            continue
        raw = item.get("messages")
        texts = raw if isinstance(raw, list | tuple) else [] if raw is None else [raw]
        name = str(item.get("field") or "")
        lines.append(ErrorLine(name, field_label(model, name), tuple(str(text) for text in texts)))
    return tuple(lines)


def _row_line(
    task: BulkTask,
    row: RunRow,
    fields: Sequence[str],
    names: Mapping[str, Mapping[str, str]],
    view: type[CRUDView] | None,
) -> RowLine:
    model = task.model_class
    old = row.old if isinstance(row.old, Mapping) else {}
    new = row.new if isinstance(row.new, Mapping) else {}
    lines = []
    for name in [*fields, *(n for n in (*old, *new) if n not in fields)]:
        if name not in old and name not in new:
            continue
        related = names.get(name, {})
        before, after = _python(model, name, old.get(name)), _python(model, name, new.get(name))
        lines.append(
            FieldLine(
                field=name,
                label=field_label(model, name),
                old=_shown(model, name, before, related) if name in old else None,
                new=_shown(model, name, after, related) if name in new else None,
                same=name in old and name in new and before == after,
            )
        )
    deleted = task.kind == BulkTask.Kind.DELETE and not task.dry_run and row.outcome == ledger.CHANGED
    return RowLine(
        pk=row.object_pk,
        url=view.row_url(row.object_pk) if view is not None and not deleted else None,
        outcome=row.outcome,
        label=capfirst(outcome_label(task, row.outcome)),
        fields=tuple(lines),
        errors=_errors(model, row.errors),
    )


def filter_choices(task: BulkTask) -> list[tuple[str, str, int]]:
    """``(value, label, count)`` for the table's outcome filter: all, then each outcome present."""
    counted = task.row_counts if isinstance(task.row_counts, Mapping) else {}
    choices = [(ALL, "All", _rows_counted(counted))]
    for outcome in ledger.OUTCOMES:
        if counted.get(outcome):
            choices.append((outcome, capfirst(outcome_label(task, outcome)), int(counted[outcome])))
    return choices


def run_rows(task: BulkTask, outcome: str) -> Paginator[RunRow]:
    """The run's ledger rows with ``outcome`` (or ``ALL``), in the order they were recorded,
    ``PER_PAGE`` a page."""
    rows = RunRow.objects.filter(run_id=task.pk).order_by("id")
    if outcome != ALL:
        rows = rows.filter(outcome=outcome)
    return Paginator(rows.only("object_pk", "outcome", "old", "new", "errors"), PER_PAGE)


def rows_page(
    task: BulkTask,
    *,
    outcome: str,
    page: str,
    fields: Sequence[str],
    view: type[CRUDView] | None,
) -> dict[str, Any]:
    """One page of the run's rows as the task page shows them (``run_rows.html``)."""
    paginator = run_rows(task, outcome)
    page_obj: Page[Any] = paginator.get_page(page or 1)
    found = list(page_obj.object_list)
    names = _names_on_page(task.model_class, found, fields)
    counted = task.row_counts if isinstance(task.row_counts, Mapping) else {}
    expected = _rows_counted(counted) if outcome == ALL else int(counted.get(outcome) or 0)
    return {
        "run_rows_shown": True,
        "run_rows": [_row_line(task, row, fields, names, view) for row in found],
        "run_rows_page": page_obj,
        "run_rows_pages": list(paginator.get_elided_page_range(page_obj.number, on_each_side=2, on_ends=1)),
        "run_rows_outcome": outcome,
        "run_rows_choices": filter_choices(task),
        "run_rows_pruned": bool(task.is_finished and expected and paginator.count == 0),
        "retention_days": pc_settings.BULK_RUN_ROWS_RETENTION_DAYS,
    }
