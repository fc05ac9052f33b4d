"""How a task reads to a person: model names, durations, row errors, the change in plain words."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models
from django.utils.text import capfirst

from powercrud.columns import format_value
from powercrud.models import BulkTask

Status = BulkTask.Status
ACTIVE = (Status.QUEUED, Status.RUNNING)

MAX_VALUES_SHOWN = 20
"""Many-to-many ids named one by one in a task's change summary; the rest are counted."""


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


def task_payload(task: BulkTask) -> Mapping[str, Any]:
    return task.payload if isinstance(task.payload, Mapping) else {}


def _field(model: type[models.Model] | None, name: str | None) -> Any:
    if model is None or not name:
        return None
    try:
        return model._meta.get_field(name)
    except FieldDoesNotExist:
        return None


def _field_label(model: type[models.Model] | None, name: str | None) -> str:
    field = _field(model, name)
    if field is None:
        return name or ""
    return capfirst(str(getattr(field, "verbose_name", name)))


@dataclass(frozen=True)
class RowErrorLine:
    """One stored row error, ready to show: ``pk`` may be None (a whole-task error)."""

    pk: Any
    field: str
    field_label: str
    messages: tuple[str, ...]


def row_errors(task: BulkTask) -> list[RowErrorLine]:
    """The task's stored row errors with readable field labels (bad entries are skipped)."""
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
                field_label=_field_label(model, field),
                messages=tuple(str(text) for text in texts),
            )
        )
    return lines


@dataclass(frozen=True)
class FieldChange:
    """One field a bulk edit sets, as the operator chose it: ``"Status"``, ``"Published"``."""

    field: str
    label: str
    value: str


_M2M_OPS = {"add": "Add", "remove": "Remove", "replace": "Replace with"}


def _related_names(field: Any, ids: Sequence[Any]) -> list[str]:
    """``str()`` of the related rows ``ids`` name, in the given order; gone rows say so."""
    if not ids:
        return []
    model = field.related_model
    try:
        found = {str(obj.pk): str(obj) for obj in model._base_manager.filter(pk__in=list(ids))}
    except (ValueError, TypeError, ValidationError):
        found = {}
    return [found.get(str(pk), f"#{pk} (no longer exists)") for pk in ids]


def _plain_value(field: Any, raw: Any) -> str:
    if raw is None or raw == "":
        return "(empty)"
    if isinstance(raw, bool):
        return "Yes" if raw else "No"
    if field is None:
        return str(raw)
    choices = dict(getattr(field, "flatchoices", None) or ())
    if raw in choices:
        return str(choices[raw])
    try:
        value = field.to_python(raw)
    except (ValidationError, TypeError, ValueError):
        return str(raw)
    return str(format_value(value))


def describe_changes(task: BulkTask) -> list[FieldChange]:
    """What a bulk edit sets, field by field, in words: labels for choices, names for relations."""
    payload = task_payload(task)
    data = payload.get("field_data")
    data = data if isinstance(data, Mapping) else {}
    model = task.model_class
    changes = []
    for name in payload.get("fields_to_update") or ():
        name = str(name)
        field = _field(model, name)
        raw = data.get(name)
        if field is not None and field.many_to_many and isinstance(raw, Mapping):
            ids = list(raw.get("ids") or ())
            names = _related_names(field, ids[:MAX_VALUES_SHOWN])
            more = len(ids) - len(names)
            listed = ", ".join(names) + (f" and {more} more" if more > 0 else "")
            op = _M2M_OPS.get(str(raw.get("op")), str(raw.get("op")))
            value = f"{op}: {listed}" if listed else f"{op}: (nothing)"
        elif field is not None and field.is_relation and raw is not None:
            value = _related_names(field, [raw])[0]
        else:
            value = _plain_value(field, raw)
        changes.append(FieldChange(field=name, label=_field_label(model, name), value=value))
    return changes


# ----- the outcomes CSV ------------------------------------------------------------------------
