"""powercrud's one JSON codec: Python values as plain JSON-able data, and frozen copies of it.

Everything that is stored for a worker, kept on a run record or sent to a browser as data
goes through ``to_json()``, so a value has one plain form wherever it travels: decimals and
UUIDs as text (no float rounding), dates, times and datetimes in ISO 8601, durations in ISO
8601 (``P1DT02H00M00S``, which the model field's ``to_python()`` reads back), sets as sorted
lists, mapping keys as text.
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from django.utils.duration import duration_iso_string

__all__ = ["JsonPk", "NotJsonable", "frozen_json", "json_pk", "sorted_values", "to_json"]

JsonPk = int | str


class NotJsonable(TypeError):
    """A value has no plain JSON form (``to_json(..., strict=True)``)."""


def to_json(value: Any, *, strict: bool = False) -> Any:
    """``value`` as plain JSON-able data.

    A value of another type becomes its text, or raises ``NotJsonable`` when ``strict``.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return duration_iso_string(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): to_json(item, strict=strict) for key, item in value.items()}
    if isinstance(value, set | frozenset):
        return sorted_values(to_json(item, strict=strict) for item in value)
    if isinstance(value, list | tuple):
        return [to_json(item, strict=strict) for item in value]
    if strict:
        raise NotJsonable(f"a {type(value).__name__} value has no plain JSON form")
    return str(value)


def json_pk(pk: Any) -> JsonPk:
    """A primary key as JSON-able data: integers stay integers, anything else becomes text."""
    if isinstance(pk, int) and not isinstance(pk, bool):
        return pk
    return str(pk)


def sorted_values(values: Iterable[Any]) -> list[Any]:
    """Values sorted naturally, or by their text when they cannot be compared."""
    items = list(values)
    try:
        return sorted(items)
    except TypeError:
        return sorted(items, key=str)


def frozen_json(owner: str, value: Mapping[str, Any] | None) -> MappingProxyType[str, Any]:
    """A read-only copy of ``value`` that is exactly what JSON would give back.

    ``owner`` names the attribute in the error, e.g. ``"BulkRequest.field_data"``. Values that
    are not already plain data (a model instance, a ``Decimal``...) are refused, so what a
    worker reads back is what the caller passed.
    """
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{owner} must be a dict of JSON-able data, not {type(value).__name__}.")
    try:
        copied = json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{owner} must hold JSON-able data (it is stored for workers): {exc}.") from None
    return MappingProxyType(copied)
