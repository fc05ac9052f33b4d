"""Showing bulk values to a person: row titles, field labels, choice labels, related names.

The one place a stored or planned value becomes text: the modal's check examples
(``describe_examples``) and the dashboard's summary of what a run sets (``describe_request``)
both use ``show_value()``, so an empty value, a choice, a relation or a boolean reads the same
on every screen. Related rows are named with one query per field, never one per row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models
from django.utils.text import capfirst

from powercrud.bulk.request import BulkRequest
from powercrud.bulk.types import BulkInputError, RowChange
from powercrud.bulk.values import M2MChange, from_field_data
from powercrud.columns import format_value

__all__ = [
    "EMPTY",
    "ExampleRow",
    "FieldChange",
    "describe_examples",
    "describe_request",
    "field_label",
    "show_value",
]

EMPTY = "(empty)"
"""How an empty value reads, everywhere."""

MAX_VALUES_SHOWN = 20
"""Many-to-many rows named one by one in a request's summary; the rest are counted."""

_M2M_OPS = {"add": "Add", "remove": "Remove", "replace": "Replace with"}


@dataclass(frozen=True)
class FieldChange:
    """One field of a change, as text: ``old`` is None where only the new value is known."""

    field: str
    label: str
    new: str
    old: str | None = None


@dataclass(frozen=True)
class ExampleRow:
    """One row of a check's examples: its title and how each field would change."""

    pk: Any
    title: str
    changes: tuple[FieldChange, ...]


def model_field(model: type[models.Model] | None, name: str) -> Any:
    """``model``'s field ``name``, or None when there is no such model or field."""
    if model is None:
        return None
    try:
        return model._meta.get_field(name)
    except FieldDoesNotExist:
        return None


def field_label(model: type[models.Model] | None, name: str | None) -> str:
    """``"Published date"`` for ``"published_date"``; the name itself when there is no such field."""
    field = model_field(model, name or "")
    if field is None or not hasattr(field, "verbose_name"):
        return name or ""
    return capfirst(str(field.verbose_name))


def related_names(field: Any, ids: Iterable[Any]) -> dict[str, str]:
    """``str()`` of the related rows ``ids`` name, by the text of their key (one query)."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    try:
        rows = field.related_model._base_manager.filter(pk__in=wanted)
        return {str(row.pk): str(row) for row in rows}
    except (ValueError, TypeError, ValidationError):
        return {}


def _named(names: Mapping[str, str], pk: Any) -> str:
    return names.get(str(pk), f"#{pk} (no longer exists)")


def show_value(field: Any, value: Any, names: Mapping[str, str] | None = None) -> str:
    """``value`` of ``field`` (a Python value; a related key; many-to-many: keys) as a person reads it.

    ``names``: ``related_names()`` of the related keys the value may mention.
    """
    names = names or {}
    if field is not None and field.many_to_many:
        return ", ".join(sorted(_named(names, pk) for pk in value or ())) or EMPTY
    if value is None or value == "":
        return EMPTY
    if field is not None and field.is_relation:
        return _named(names, value)
    if isinstance(value, bool):
        return "Yes" if value else "No"
    choices = dict(getattr(field, "flatchoices", None) or ())
    if value in choices:
        return str(choices[value])
    return str(format_value(value))


def _related_ids(model: type[models.Model], examples: Sequence[RowChange]) -> dict[str, set[Any]]:
    wanted: dict[str, set[Any]] = defaultdict(set)
    for example in examples:
        for name in example.new:
            field = model._meta.get_field(name)
            if not field.is_relation:
                continue
            for value in (example.old.get(name), example.new.get(name)):
                if field.many_to_many:
                    wanted[name].update(value or ())
                elif value is not None:
                    wanted[name].add(value)
    return wanted


def describe_examples(model: type[models.Model], examples: Iterable[RowChange]) -> list[ExampleRow]:
    """A check's examples as the user reads them; fields a row would keep as they are are left out."""
    examples = list(examples)
    if not examples:
        return []
    titles = {str(row.pk): str(row) for row in model._default_manager.filter(pk__in=[e.pk for e in examples])}
    names = {
        name: related_names(model._meta.get_field(name), ids)
        for name, ids in _related_ids(model, examples).items()
    }
    rows = []
    for example in examples:
        changes = []
        for name in example.changed_fields:
            field = model._meta.get_field(name)
            related = names.get(name, {})
            changes.append(
                FieldChange(
                    field=name,
                    label=field_label(model, name),
                    old=show_value(field, example.old.get(name), related),
                    new=show_value(field, example.new.get(name), related),
                )
            )
        title = titles.get(str(example.pk), f"#{example.pk}")
        rows.append(ExampleRow(pk=example.pk, title=title, changes=tuple(changes)))
    return rows


def _show_m2m(field: Any, change: M2MChange) -> str:
    ids = list(change.ids)
    shown = ids[:MAX_VALUES_SHOWN]
    names = related_names(field, shown)
    listed = ", ".join(_named(names, pk) for pk in shown)
    more = len(ids) - len(shown)
    if more > 0:
        listed += f" and {more:,} more"
    return f"{_M2M_OPS[change.op]}: {listed or '(nothing)'}"


def describe_request(model: type[models.Model] | None, request: BulkRequest) -> list[FieldChange]:
    """What an edit sets, field by field, in words: labels for choices, names for relations."""
    if model is None:
        return [
            FieldChange(field=name, label=name, new=str(request.field_data.get(name)))
            for name in request.fields_to_update
        ]
    try:
        values = from_field_data(model, request.fields_to_update, request.field_data)
    except BulkInputError:  # the model changed since the run was stored: show the stored data
        values = {}
    changes = []
    for name in request.fields_to_update:
        field = model_field(model, name)
        if name not in values:
            text = str(request.field_data.get(name))
        elif isinstance(values[name], M2MChange):
            text = _show_m2m(field, values[name])
        elif field is not None and field.is_relation and values[name] is not None:
            text = show_value(field, values[name], related_names(field, [values[name]]))
        else:
            text = show_value(field, values[name])
        changes.append(FieldChange(field=name, label=field_label(model, name), new=text))
    return changes
