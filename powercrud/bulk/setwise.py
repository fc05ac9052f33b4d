"""Different values for different rows in one statement: the write of an undo.

``update_each(model, using, names, rows)`` sets, for each ``(pk, values)`` of ``rows``, the
fields ``names`` to ``values``. On SQLite and PostgreSQL it is one ``UPDATE ... FROM`` a table
built from one parameter per column (``json_each`` on SQLite, ``unnest`` of arrays on
PostgreSQL); elsewhere Django's ``bulk_update()``, whose ``CASE WHEN`` grows with the rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.db import connections, models

from powercrud.bulk.keys import integer_keys


def update_each(
    model: type[models.Model],
    using: str,
    names: Sequence[str],
    rows: Sequence[tuple[Any, Sequence[Any]]],
    also: dict[str, Any] | None = None,
) -> int:
    """Set ``names`` of each row ``pk`` to its ``values`` (and ``also``, the same for every row)."""
    if not rows:
        return 0
    connection = connections[using]
    fields = [model._meta.get_field(name) for name in names]
    concrete: list[models.Field[Any, Any]] = [f for f in fields if isinstance(f, models.Field)]
    vendor = connection.vendor
    if vendor not in ("sqlite", "postgresql") or not integer_keys(model) or len(concrete) != len(fields):
        return _bulk_update(model, using, names, rows, also or {})
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    pk_column = qn(column_of(model._meta.pk))
    columns = [
        (f, [f.get_db_prep_save(values[i], connection) for _, values in rows]) for i, f in enumerate(concrete)
    ]
    keys = [pk for pk, _ in rows]
    source_params: list[Any]
    if vendor == "sqlite":
        data = [[key, *(_plain(column[i]) for _, column in columns)] for i, key in enumerate(keys)]
        picks = ", ".join(f"json_extract(value, '$[{i + 1}]') AS c{i}" for i in range(len(columns)))
        source = f"(SELECT json_extract(value, '$[0]') AS pk, {picks} FROM json_each(%s))"
        source_params = [json.dumps(data)]
    else:
        types = ", ".join(f"%s::{f.db_type(connection)}[]" for f, _ in columns)
        names_sql = ", ".join(f"c{i}" for i in range(len(columns)))
        source = f"(SELECT * FROM unnest(%s::bigint[], {types}) AS t(pk, {names_sql}))"
        source_params = [keys, *(column for _, column in columns)]
    sets = [f"{qn(column_of(f))} = src.c{i}" for i, (f, _) in enumerate(columns)]
    set_params: list[Any] = []
    for name, value in (also or {}).items():
        extra = model._meta.get_field(name)
        assert isinstance(extra, models.Field)
        sets.append(f"{qn(column_of(extra))} = %s")
        set_params.append(extra.get_db_prep_save(value, connection))
    sql = f"UPDATE {table} SET {', '.join(sets)} FROM {source} AS src WHERE {table}.{pk_column} = src.pk"
    params = [*set_params, *source_params]  # in the statement's order: SET, then FROM
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


def column_of(model_field: Any) -> str:
    """``model_field``'s database column."""
    column = model_field.column
    assert isinstance(column, str)
    return column


def _plain(value: Any) -> Any:
    """A prepared database value as JSON can carry it (decimals and dates as text)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _bulk_update(
    model: type[models.Model],
    using: str,
    names: Sequence[str],
    rows: Sequence[tuple[Any, Sequence[Any]]],
    also: dict[str, Any],
) -> int:
    objs = []
    for pk, values in rows:
        obj = model(pk=pk)
        for name, value in zip(names, values, strict=True):
            setattr(obj, model._meta.get_field(name).attname, value)  # type: ignore[union-attr]
        for name, value in also.items():
            setattr(obj, name, value)
        objs.append(obj)
    return model._base_manager.using(using).bulk_update(objs, [*names, *also])
