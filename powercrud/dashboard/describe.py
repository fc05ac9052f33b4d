"""How a task reads to a person: model names, durations, row errors, the change in plain words."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.utils.text import capfirst

from powercrud.bulk import messages as bulk_messages
from powercrud.bulk.display import FieldChange, describe_request, field_label
from powercrud.bulk.request import BulkRequest
from powercrud.mixins.selection import SelectionMixin
from powercrud.models import BulkTask
from powercrud.views import CRUDView, view_named

Status = BulkTask.Status
ACTIVE = (Status.QUEUED, Status.RUNNING)

# ----- display helpers -------------------------------------------------------------------------


def model_display_name(label: str) -> str:
    """``"Books"`` for ``"sample.book"``: the model's plural verbose name, or the label itself."""
    from django.apps import apps

    try:
        model = apps.get_model(label)
    except (LookupError, ValueError):
        return label
    return capfirst(str(model._meta.verbose_name_plural))


def format_duration(seconds: float | None) -> str:
    """``"0.4 s"``, ``"12 s"``, ``"3 min 05 s"``, ``"2 h 03 min"``; ``""`` for None."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclass(frozen=True)
class RowErrorLine:
    """One stored row error, ready to show: ``pk`` may be None (a whole-task error)."""

    pk: Any
    field: str
    field_label: str
    messages: tuple[str, ...]
    url: str | None = None  # the row's detail page, when the run's view has one


def source_view(stored: BulkRequest | None) -> type[CRUDView] | None:
    """The registered view a run's request came from, or None."""
    return view_named(stored.view_name) if stored is not None else None


def row_errors(task: BulkTask, view: type[CRUDView] | None = None) -> list[RowErrorLine]:
    """The task's stored row errors with readable field labels (bad entries are skipped).

    With ``view`` (the run's ``source_view()``), each error links to its row there.
    """
    model = task.model_class
    lines = []
    for item in task.row_errors():
        if not isinstance(item, Mapping):
            continue
        raw = item.get("messages")
        texts = raw if isinstance(raw, list | tuple) else [] if raw is None else [raw]
        field = str(item.get("field") or "")
        lines.append(
            RowErrorLine(
                pk=item.get("pk"),
                field=field,
                field_label=field_label(model, field),
                messages=tuple(str(text) for text in texts),
                url=view.row_url(item.get("pk")) if view is not None else None,
            )
        )
    return lines


def retry_target(
    task: BulkTask, view: type[CRUDView] | None, errors: Sequence[RowErrorLine]
) -> tuple[type[SelectionMixin], list[str]] | None:
    """``view`` (the run's ``source_view()``) and the keys of ``errors`` (its ``row_errors()``),
    when the task is a finished bulk edit whose every failed row is named there and ``view``
    has a selection; else None."""
    if not task.is_finished or task.kind != BulkTask.Kind.UPDATE or view is None:
        return None
    if task.failure_count == 0 or task.errors_omitted or not issubclass(view, SelectionMixin):
        return None
    pks = list(dict.fromkeys(str(e.pk) for e in errors if e.pk is not None))
    if not pks or len(pks) != task.failure_count:
        return None
    return view, pks


def describe_changes(task: BulkTask, stored: BulkRequest | None) -> list[FieldChange]:
    """What a bulk edit sets (``stored``, its request), field by field, in words; empty when
    the request cannot be read."""
    if stored is None:
        return []
    return describe_request(task.model_class, stored)


def view_class_name(view_name: str) -> str:
    """``"BookCRUDView"`` for ``"sample.views.BookCRUDView"``: the view a run came from.

    Only the class name is shown: a module path is a code internal, kept off the task pages.
    """
    return (view_name or "").strip().rsplit(".", 1)[-1]


def done_verb(task: BulkTask) -> str:
    """``"deleted"`` or ``"updated"``: what the run does (or, for a check, would do) to a row."""
    return bulk_messages.done_verb(task.kind).lower()
