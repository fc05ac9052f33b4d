"""Bulk values as plain data, and back.

``field_data`` is what crosses from the form to the service (and, in async mode, to a
worker). It is plain JSON-able data, one entry per field in ``fields_to_update``::

    {
        "status": "published",           # choices and text: the stored string
        "price": "12.50",                # decimals: a string, so no float rounding
        "published_date": "2024-01-31",  # dates, datetimes, times: ISO 8601
        "author": 3,                     # foreign keys: the related primary key
        "genre": None,                   # a nullable foreign key cleared
        "is_available": True,
        "tags": {"op": "add", "ids": [1, 2]},  # many-to-many: add, remove or replace
    }

``to_field_data()`` builds it from a form's ``cleaned_data``; ``from_field_data()`` turns it
back into Python values. ``from_field_data(to_field_data(x))`` gives back the values of ``x``
(related objects as primary keys) and ``to_field_data(from_field_data(d))`` gives back ``d``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models

from powercrud.bulk.codec import NotJsonable, to_json
from powercrud.bulk.types import BulkInputError

__all__ = [
    "M2M_OP_SUFFIX",
    "BulkInputError",
    "M2MChange",
    "M2MOp",
    "bulk_field",
    "from_field_data",
    "to_field_data",
]

M2MOp = Literal["add", "remove", "replace"]
M2M_OPS: tuple[str, ...] = get_args(M2MOp)

M2M_OP_SUFFIX = "__op"
"""A form carries a many-to-many operation in ``cleaned_data[name + M2M_OP_SUFFIX]``."""

_INTEGER_FIELDS = (models.IntegerField, models.AutoField)


@dataclass(frozen=True)
class M2MChange:
    """A many-to-many edit: ``op`` applied with the related primary keys ``ids``."""

    op: M2MOp
    ids: tuple[Any, ...]


def bulk_field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    """The model field ``name`` if bulk edit may write it, else ``BulkInputError``.

    Writable: a concrete, editable, non-primary-key field, or a forward many-to-many field.
    """
    label = model._meta.label
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        raise BulkInputError(name, f"'{name}' is not a field of {label}.") from None
    is_m2m = field.many_to_many and not field.auto_created
    if not is_m2m and not field.concrete:
        raise BulkInputError(
            name,
            f"'{name}' on {label} is not a stored field of the model (a reverse relation or a "
            "virtual field); bulk edit writes the model's own fields.",
        )
    if getattr(field, "primary_key", False):
        raise BulkInputError(name, f"'{name}' is the primary key of {label}; it cannot be bulk edited.")
    if not getattr(field, "editable", False):
        raise BulkInputError(name, f"'{name}' on {label} is not editable (editable=False).")
    if getattr(field, "generated", False):
        raise BulkInputError(name, f"'{name}' on {label} is a generated field; it cannot be written.")
    return field  # type: ignore[return-value]


def _fields(model: type[models.Model], names: Sequence[str]) -> list[models.Field[Any, Any]]:
    if isinstance(names, str):
        raise BulkInputError(None, f"fields_to_update must be a list of names, not the string {names!r}.")
    seen: set[str] = set()
    fields = []
    for name in names:
        if name in seen:
            raise BulkInputError(name, f"'{name}' is listed twice in fields_to_update.")
        seen.add(name)
        fields.append(bulk_field(model, name))
    return fields


# --- to plain data -----------------------------------------------------------------------------


def to_field_data(
    model: type[models.Model], fields_to_update: Sequence[str], cleaned_data: Mapping[str, Any]
) -> dict[str, Any]:
    """Plain JSON-able ``field_data`` for ``fields_to_update`` from a form's ``cleaned_data``.

    Related objects become primary keys. A many-to-many value is an ``M2MChange``, a mapping
    ``{"op": ..., "ids": [...]}``, or objects/ids with the operation in
    ``cleaned_data[name + "__op"]``.
    """
    data: dict[str, Any] = {}
    for field in _fields(model, fields_to_update):
        name = field.name
        if name not in cleaned_data:
            raise BulkInputError(name, f"No value for '{name}' in the submitted data.")
        value = cleaned_data[name]
        if field.many_to_many:
            data[name] = _m2m_to_data(field, value, cleaned_data.get(name + M2M_OP_SUFFIX))
        else:
            data[name] = _scalar_to_data(field, value)
    return data


def _target(field: models.Field[Any, Any]) -> models.Field[Any, Any]:
    """The field whose values are stored: the related primary key for relations."""
    return field.target_field if field.is_relation else field  # type: ignore[attr-defined]


def _scalar_to_data(field: models.Field[Any, Any], value: Any) -> Any:
    name = field.name
    if value is None:
        return None
    if field.is_relation:
        related = field.related_model
        if isinstance(value, models.Model):
            if not isinstance(value, related):  # type: ignore[arg-type]
                raise BulkInputError(
                    name,
                    f"'{name}' expects a {related._meta.label} object or its primary key, "  # type: ignore[union-attr]
                    f"got a {type(value)._meta.label}.",
                )
            value = getattr(value, _target(field).attname)
        return _plain(name, _python(field, value))
    return _plain(name, _python(field, value))


def _plain(name: str, value: Any) -> Any:
    try:
        return to_json(value, strict=True)
    except NotJsonable:
        raise BulkInputError(
            name, f"'{name}' has a {type(value).__name__} value, which bulk edit cannot pass on as data."
        ) from None


def _m2m_to_data(field: models.Field[Any, Any], value: Any, op: Any) -> dict[str, Any]:
    name = field.name
    if isinstance(value, M2MChange):
        op, items = value.op, value.ids
    elif isinstance(value, Mapping):
        op, items = value.get("op"), value.get("ids", ())
    else:
        items = value
    if op not in M2M_OPS:
        raise BulkInputError(
            name,
            f"'{name}' needs an operation: one of {', '.join(M2M_OPS)} "
            f"(in cleaned_data['{name}{M2M_OP_SUFFIX}']), got {op!r}.",
        )
    if items is None:
        items = ()
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
        raise BulkInputError(name, f"'{name}' expects a list of objects or ids, got {items!r}.")
    related = field.related_model
    pk_field = related._meta.pk  # type: ignore[union-attr]
    ids = []
    for item in items:
        if isinstance(item, models.Model):
            if not isinstance(item, related):  # type: ignore[arg-type]
                raise BulkInputError(
                    name,
                    f"'{name}' expects {related._meta.label} objects, got {item!r}.",  # type: ignore[union-attr]
                )
            item = item.pk
        ids.append(_plain(name, _key(name, pk_field, item)))
    return {"op": op, "ids": ids}


# --- back to Python ----------------------------------------------------------------------------


def from_field_data(
    model: type[models.Model], fields_to_update: Sequence[str], field_data: Mapping[str, Any]
) -> dict[str, Any]:
    """Python values for ``fields_to_update`` from plain ``field_data``.

    Each value goes through its model field's ``to_python()``. A foreign key gives the
    related primary key (the value for ``<name>_id``); a many-to-many field gives an
    ``M2MChange``. Raises ``BulkInputError`` naming the field on any bad input.
    """
    if not isinstance(field_data, Mapping):
        raise BulkInputError(None, f"field_data must be a dict, not {type(field_data).__name__}.")
    fields = _fields(model, fields_to_update)
    extra = sorted(set(field_data) - {f.name for f in fields})
    if extra:
        raise BulkInputError(
            extra[0],
            f"field_data has {', '.join(map(repr, extra))}, which "
            f"{'is' if len(extra) == 1 else 'are'} not in fields_to_update.",
        )
    values: dict[str, Any] = {}
    for field in fields:
        name = field.name
        if name not in field_data:
            raise BulkInputError(name, f"field_data has no value for '{name}', which is in fields_to_update.")
        raw = field_data[name]
        if field.many_to_many:
            values[name] = _m2m_from_data(field, raw)
        else:
            values[name] = _scalar_from_data(field, raw)
    return values


def _scalar_from_data(field: models.Field[Any, Any], raw: Any) -> Any:
    name = field.name
    if isinstance(raw, list | tuple | set | frozenset | Mapping):
        raise BulkInputError(name, f"'{name}' expects a single value, got {raw!r}.")
    if raw is None:
        if not field.null:
            raise BulkInputError(name, f"'{name}' cannot be empty (None); the field is not nullable.")
        return None
    return _python(field, raw)


def _python(field: models.Field[Any, Any], raw: Any) -> Any:
    if field.is_relation:
        return _key(field.name, _target(field), raw)
    return _to_python(field.name, field, raw)


def _key(name: str, pk_field: models.Field[Any, Any], raw: Any) -> Any:
    """A related primary key: converted, and within the range the database can store."""
    value = _to_python(name, pk_field, raw)
    try:
        pk_field.run_validators(value)
    except ValidationError as exc:
        raise BulkInputError(name, f"Invalid value for '{name}': {' '.join(exc.messages)}") from None
    return value


def _to_python(name: str, field: models.Field[Any, Any], raw: Any) -> Any:
    if isinstance(raw, list | tuple | set | frozenset | Mapping):
        raise BulkInputError(name, f"'{name}' expects a single value, got {raw!r}.")
    is_boolean = isinstance(field, models.BooleanField)
    if isinstance(raw, bool) and not is_boolean:
        raise BulkInputError(name, f"'{name}' expects a {_kind(field)}, got the boolean {raw!r}.")
    if is_boolean and not isinstance(raw, bool):
        raise BulkInputError(name, f"'{name}' expects true or false, got {raw!r}.")
    if isinstance(field, _INTEGER_FIELDS) and isinstance(raw, float) and not raw.is_integer():
        raise BulkInputError(name, f"'{name}' expects a whole number, got {raw!r}.")
    try:
        return field.to_python(raw)
    except ValidationError as exc:
        raise BulkInputError(name, f"Invalid value for '{name}': {' '.join(exc.messages)}") from None
    except (TypeError, ValueError, ArithmeticError):
        raise BulkInputError(
            name, f"Invalid value for '{name}': {raw!r} is not a valid {_kind(field)}."
        ) from None


def _kind(field: models.Field[Any, Any]) -> str:
    try:
        return str(field.description % field.__dict__).lower()
    except (KeyError, TypeError, ValueError):
        return "value"


def _m2m_from_data(field: models.Field[Any, Any], raw: Any) -> M2MChange:
    name = field.name
    if not isinstance(raw, Mapping):
        raise BulkInputError(
            name, f'\'{name}\' expects {{"op": "add"|"remove"|"replace", "ids": [...]}}, got {raw!r}.'
        )
    unknown = sorted(set(raw) - {"op", "ids"})
    if unknown:
        raise BulkInputError(name, f"'{name}' has unknown keys {', '.join(map(repr, unknown))}.")
    op = raw.get("op")
    if op not in M2M_OPS:
        raise BulkInputError(name, f"'{name}' has unknown operation {op!r}; use one of {', '.join(M2M_OPS)}.")
    ids = raw.get("ids")
    if not isinstance(ids, list | tuple):
        raise BulkInputError(name, f"'{name}' ids must be a list of primary keys, got {ids!r}.")
    pk_field = field.related_model._meta.pk  # type: ignore[union-attr]
    converted = []
    for item in ids:
        if item is None:
            raise BulkInputError(name, f"'{name}' ids cannot contain None.")
        converted.append(_key(name, pk_field, item))
    return M2MChange(op=op, ids=tuple(converted))
