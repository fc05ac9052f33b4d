"""A batch's primary keys in a query, with one parameter for the whole batch where possible.

``filter(pk__in=[...1,000 keys...])`` makes Django prepare every key (``get_prep_value``
and friends, per key) and the database parse a thousand placeholders, for every statement
of every batch. For integer keys on SQLite and PostgreSQL, ``in_batch()`` sends the batch as
one parameter instead: ``IN (SELECT value FROM json_each(%s))`` on SQLite,
``= ANY(%s::bigint[])`` on PostgreSQL (a sequential scan tests it against a hash of the array,
an index scan looks each key up; ``IN (SELECT unnest(...))`` made a nested loop of index
lookups even over the whole table). Other keys and databases keep ``pk__in``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections, models
from django.db.models import F, Func, Q
from django.db.models.expressions import RawSQL


def _as_json(keys: list[int]) -> Any:
    return json.dumps(keys)


def _as_array(keys: list[int]) -> Any:
    return keys


# How each database takes a batch's keys as one parameter.
_ONE_PARAMETER: dict[str, Callable[[list[int]], Any]] = {"sqlite": _as_json, "postgresql": _as_array}
_SQLITE_KEYS = "SELECT value FROM json_each(%s)"


class _AnyOf(Func):
    """``<column> = ANY(%s::bigint[])``: PostgreSQL's membership test of one array parameter."""

    output_field = models.BooleanField()

    def __init__(self, column: Any, keys: list[int]) -> None:
        super().__init__(column)
        self.keys = keys

    def as_sql(
        self,
        compiler: Any,
        connection: Any,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> tuple[str, tuple[Any, ...]]:
        sql, params = compiler.compile(self.get_source_expressions()[0])
        return f"{sql} = ANY(%s::bigint[])", (*params, self.keys)


def integer_keys(model: type[models.Model]) -> bool:
    """True when ``model``'s primary key is an integer column."""
    pk_field: Any = model._meta.pk
    while pk_field.is_relation:  # multi-table inheritance: the parent link
        pk_field = pk_field.target_field
    return isinstance(pk_field, models.IntegerField)


def batch_parameter(model: type[models.Model], using: str, pks: Sequence[Any]) -> Any | None:
    """The one parameter ``in_batch()`` sends for ``pks``; None when it falls back to ``pk__in``."""
    form = _ONE_PARAMETER.get(connections[using].vendor)
    if form is None or not pks or not integer_keys(model):
        return None
    keys = list(pks)
    if not set(map(type, keys)) <= {int}:  # bool and str keys keep pk__in
        return None
    return form(keys)


def in_batch(model: type[models.Model], using: str, pks: Sequence[Any]) -> Q:
    """``Q(pk__in=pks)``, as one parameter when the keys are integers on SQLite or PostgreSQL."""
    parameter = batch_parameter(model, using, pks)
    if parameter is None:
        return Q(pk__in=pks)
    if connections[using].vendor == "postgresql":
        return Q(_AnyOf(F("pk"), parameter))
    return Q(pk__in=RawSQL(_SQLITE_KEYS, (parameter,)))
