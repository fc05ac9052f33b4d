"""Readable before/after examples for the bulk modal: row titles, choice labels, related names."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import models

from powercrud.bulk.types import RowChange
from powercrud.columns import format_value

EMPTY = "—"


@dataclass(frozen=True)
class FieldChange:
    label: str
    old: str
    new: str


@dataclass(frozen=True)
class ExampleRow:
    pk: Any
    title: str
    changes: tuple[FieldChange, ...]


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


def _names(model: type[models.Model], wanted: dict[str, set[Any]]) -> dict[str, dict[Any, str]]:
    """str() of every related row the examples mention: one query per related field."""
    names: dict[str, dict[Any, str]] = {}
    for name, ids in wanted.items():
        related = model._meta.get_field(name).related_model
        rows = related._default_manager.filter(pk__in=list(ids))  # type: ignore[union-attr]
        names[name] = {row.pk: str(row) for row in rows}
    return names


def _show(field: models.Field[Any, Any], value: Any, names: dict[Any, str]) -> str:
    if field.many_to_many:
        return ", ".join(sorted(names.get(pk, f"#{pk}") for pk in value or ())) or EMPTY
    if value is None or value == "":
        return EMPTY
    if field.is_relation:
        return names.get(value, f"#{value}")
    if field.choices:
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return str(format_value(value))


def describe_examples(model: type[models.Model], examples: Iterable[RowChange]) -> list[ExampleRow]:
    """The examples of a dry run as the user would read them (a few queries, not one per row)."""
    examples = list(examples)
    if not examples:
        return []
    titles = {row.pk: str(row) for row in model._default_manager.filter(pk__in=[e.pk for e in examples])}
    names = _names(model, _related_ids(model, examples))
    rows = []
    for example in examples:
        changes = []
        for name in example.new:
            field = model._meta.get_field(name)
            related = names.get(name, {})
            changes.append(
                FieldChange(
                    label=str(field.verbose_name).capitalize(),
                    old=_show(field, example.old.get(name), related),  # type: ignore[arg-type]
                    new=_show(field, example.new.get(name), related),  # type: ignore[arg-type]
                )
            )
        rows.append(
            ExampleRow(pk=example.pk, title=titles.get(example.pk, f"#{example.pk}"), changes=tuple(changes))
        )
    return rows
