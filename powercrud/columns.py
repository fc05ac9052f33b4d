"""List columns: which model fields, related fields and properties a list shows, and how."""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.utils import formats
from django.utils.text import capfirst

ColumnKind = Literal["field", "related", "many", "property"]


@dataclass(frozen=True)
class Column:
    """One list column. ``sort_key`` is the ORM ordering expression, or None when not sortable."""

    name: str
    label: str
    kind: ColumnKind
    sort_key: str | None
    align: Literal["start", "end", "center"] = "start"


def resolve_field_path(model: type[models.Model], path: str) -> list[models.Field[Any, Any]]:
    """Return the chain of fields for ``a__b__c``; raise FieldDoesNotExist naming the bad part."""
    chain: list[models.Field[Any, Any]] = []
    current = model
    for index, part in enumerate(path.split("__")):
        field = current._meta.get_field(part)
        chain.append(field)  # type: ignore[arg-type]
        last = index == len(path.split("__")) - 1
        if not last:
            if not field.is_relation or field.related_model is None:
                raise FieldDoesNotExist(f"{current.__name__}.{part} is not a relation")
            current = field.related_model
    return chain


def default_field_names(model: type[models.Model]) -> list[str]:
    """Concrete, non-primary-key fields in declaration order, then many-to-many fields."""
    names = [f.name for f in model._meta.concrete_fields if not f.primary_key and not f.auto_created]
    names += [f.name for f in model._meta.many_to_many]
    return names


def _related_sort_key(field: models.Field[Any, Any]) -> str:
    ordering = field.related_model._meta.ordering if field.related_model else None
    if ordering and isinstance(ordering[0], str):
        key = ordering[0].lstrip("-")
        if "__" not in key and "?" not in key:
            return f"{field.name}__{key}"
    return f"{field.name}_id" if field.many_to_one or field.one_to_one else field.name


def build_columns(
    model: type[models.Model], fields: Sequence[str], properties: Sequence[str] = ()
) -> list[Column]:
    """Build the columns for ``fields`` then ``properties``; names must already be valid."""
    columns: list[Column] = []
    for name in fields:
        chain = resolve_field_path(model, name)
        last = chain[-1]
        if len(chain) > 1:
            label = " ".join(capfirst(str(f.verbose_name)) for f in chain[:-1])
            label = f"{label} {last.verbose_name}"
        else:
            label = capfirst(str(last.verbose_name))
        if last.many_to_many or last.one_to_many:
            columns.append(Column(name, label, "many", None))
        elif last.is_relation:
            columns.append(Column(name, label, "related", _related_sort_key(last)))
        else:
            align: Literal["start", "end", "center"] = "start"
            if isinstance(last, models.BooleanField):
                align = "center"
            elif isinstance(last, (models.IntegerField, models.DecimalField, models.FloatField)):
                align = "end" if not last.choices else "start"
            columns.append(Column(name, label, "field", name, align))
    for name in properties:
        attr = getattr(model, name)
        fget = attr.fget if isinstance(attr, property) else attr
        label = getattr(fget, "short_description", None) or capfirst(name.replace("_", " "))
        columns.append(Column(name, str(label), "property", None))
    return columns


def select_related_paths(model: type[models.Model], fields: Iterable[str]) -> list[str]:
    """Foreign-key paths the list must join so no row triggers an extra query."""
    paths = []
    for name in fields:
        chain = resolve_field_path(model, name)
        relation_parts = [f.name for f in chain if f.many_to_one or f.one_to_one]
        if relation_parts and len(relation_parts) == len([f for f in chain if f.is_relation]):
            depth = len(chain) if chain[-1].is_relation else len(chain) - 1
            paths.append("__".join(f.name for f in chain[:depth]))
    return sorted(set(p for p in paths if p))


def prefetch_paths(model: type[models.Model], fields: Iterable[str]) -> list[str]:
    """Many-valued paths the list must prefetch."""
    return [
        name
        for name in fields
        if resolve_field_path(model, name)[-1].many_to_many or resolve_field_path(model, name)[-1].one_to_many
    ]


def _walk(obj: Any, path: str) -> Any:
    value = obj
    for part in path.split("__"):
        if value is None:
            return None
        value = getattr(value, part)
    return value


def cell_value(obj: models.Model, column: Column) -> Any:
    """The display value of ``column`` for ``obj``: labels for choices, str for relations."""
    if column.kind == "property":
        return getattr(obj, column.name)
    if column.kind == "many":
        manager = _walk(obj, column.name)
        return ", ".join(str(item) for item in manager.all())
    head, _, last = column.name.rpartition("__")
    owner = _walk(obj, head) if head else obj
    if owner is None:
        return None
    display = getattr(owner, f"get_{last}_display", None)
    if column.kind == "field" and callable(display):
        return display()
    return getattr(owner, last)


def format_value(value: Any) -> Any:
    """Localise dates and numbers; leave the rest for the template (it escapes)."""
    if isinstance(value, (datetime.date, datetime.datetime, decimal.Decimal, float)):
        return formats.localize(value, use_l10n=True)
    return value
