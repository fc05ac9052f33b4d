"""Undo in place: an undo batch written back by the database alone, from the ledger of the run
it undoes (``Recorder.undo_in_place()``), on SQLite and PostgreSQL, for fields whose ledger
JSON compares and casts back exactly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from django.db import connections, models

from powercrud.bulk.keys import integer_keys
from powercrud.bulk.setwise import column_of
from powercrud.jobs.ledger import ledger_alias
from powercrud.jobs.locks import db_column
from powercrud.models import BulkTask, RunRow

__all__ = ["ANALYZE_FROM", "InPlace", "fresh_statistics"]


ANALYZE_FROM = 10_000
"""PostgreSQL: refresh the ledger's statistics before an undo reads a run this large."""


def fresh_statistics(run: BulkTask) -> None:
    """``ANALYZE`` the ledger on PostgreSQL before an undo of a large run: entries inserted
    moments ago are invisible to the planner, which then reads the whole ledger per batch."""
    connection = connections[ledger_alias()]
    if connection.vendor == "postgresql" and run.total >= ANALYZE_FROM:
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(RunRow._meta.db_table)}")


def _in_place_field(model_field: Any) -> bool:
    """Fields whose ledger JSON compares and casts back exactly in SQL (``InPlace``)."""
    if model_field.is_relation:
        return bool(model_field.many_to_one) and isinstance(model_field.target_field, models.IntegerField)
    if isinstance(model_field, models.DateTimeField | models.FloatField):
        return False
    exact = (
        models.CharField,
        models.TextField,
        models.IntegerField,
        models.DecimalField,
        models.BooleanField,
    )
    return isinstance(model_field, (*exact, models.DateField))


class InPlace:
    """The SQL of an undo batch written back by the database alone, on SQLite or PostgreSQL:
    the rows joined to their ledger entries in the run being undone, the JSON values cast back
    to each column's type."""

    def __init__(self, model: type[models.Model], using: str, fields: list[Any], batch: Sequence[int]):
        connection = connections[using]
        self.model = model
        self.connection = connection
        self.sqlite = connection.vendor == "sqlite"
        qn = connection.ops.quote_name
        self.fields = fields
        self.table = qn(model._meta.db_table)
        pk = model._meta.pk
        assert pk is not None
        self.pk = f"{self.table}.{qn(column_of(pk))}"
        self.ledger_table = qn(RunRow._meta.db_table)
        run, key, outcome, old, new = (
            qn(db_column(RunRow, n)) for n in ("run", "object_pk", "outcome", "old", "new")
        )
        # Both sides narrowed to the batch by index (a join on the key's text alone made
        # PostgreSQL hash the whole table and the whole ledger for every batch).
        picked = f"r.{key} AS pc_key, r.{old} AS pc_old, r.{new} AS pc_new"
        entries = f"{self.ledger_table} r"
        chosen = f"r.{run} = %s AND r.{outcome} = 'changed'"
        if self.sqlite:
            self.entries = (
                f"(SELECT keys.k AS pc_k, {picked} FROM (SELECT value AS k FROM json_each(%s)) keys "
                f"JOIN {entries} ON {chosen} AND r.{key} = CAST(keys.k AS TEXT))"
            )
            self.src_params: list[Any] = [json.dumps(list(batch)), None]
            self.where, self.where_params = "", []
        else:
            self.entries = (
                f"(SELECT CAST(r.{key} AS bigint) AS pc_k, {picked} FROM {entries} "
                f"WHERE {chosen} AND r.{key} = ANY(%s::text[]))"
            )
            self.src_params = [None, [str(pk) for pk in batch]]
            self.where, self.where_params = f"{self.pk} = ANY(%s::bigint[])", [list(batch)]
        self.src = f"{self.entries} s"  # the batch's entries in the run being undone

    @classmethod
    def make(
        cls, model: type[models.Model], using: str, names: Sequence[str], batch: Sequence[Any]
    ) -> InPlace | None:
        if connections[using].vendor not in ("sqlite", "postgresql") or not integer_keys(model):
            return None
        if not batch or not all(type(pk) is int for pk in batch):
            return None
        fields = [model._meta.get_field(name) for name in names]
        if not fields or not all(_in_place_field(f) for f in fields):
            return None
        return cls(model, using, fields, batch)

    def _value(self, source: str, model_field: Any) -> tuple[str, list[Any]]:
        """The SQL of ``source``'s (``r.old``/``r.new``) value for the field, as its column type."""
        if self.sqlite:
            return f"json_extract({source}, %s)", [f'$."{model_field.name}"']
        return f"(({source}) ->> %s)::{model_field.db_type(self.connection)}", [model_field.name]

    def _qualified(self, model_field: Any) -> str:
        return f"{self.table}.{self.connection.ops.quote_name(column_of(model_field))}"

    def _source(self, source_run: int) -> list[Any]:
        """The parameters of ``src`` for the run being undone."""
        return [source_run if p is None else p for p in self.src_params]

    def _where(self, joiner: str) -> str:
        return f" {joiner} {self.where}" if self.where else ""

    def _matches(self) -> tuple[str, list[Any]]:
        """The rows still holding what the run wrote."""
        same = " IS " if self.sqlite else " IS NOT DISTINCT FROM "
        parts, params = [], []
        for f in self.fields:
            sql, p = self._value("s.pc_new", f)
            parts.append(f"{self._qualified(f)}{same}{sql}")
            params += p
        return " AND ".join(parts), params

    def count(self, source_run: int) -> tuple[int, int]:
        """(rows of the batch with an entry, those changed since)."""
        match, match_params = self._matches()
        sql = (
            f"SELECT COUNT(*), COALESCE(SUM(CASE WHEN {match} THEN 0 ELSE 1 END), 0) "
            f"FROM {self.table} JOIN {self.src} ON {self.pk} = s.pc_k{self._where('WHERE')}"
        )
        with self.connection.cursor() as cursor:
            cursor.execute(sql, [*match_params, *self._source(source_run), *self.where_params])
            found, moved = cursor.fetchone()
        return int(found), int(moved)

    def _now(self) -> str:
        """The SQL of the batch's current values as one JSON object (the undo's ``old``)."""
        pieces = []
        for f in self.fields:
            column = self._qualified(f)
            if isinstance(f, models.DecimalField):
                column = f"CAST({column} AS TEXT)"
            pieces.append(f"'{f.name}', {column}")
        build = "json_object" if self.sqlite else "jsonb_build_object"
        return f"{build}({', '.join(pieces)})"

    def _insert(self) -> str:
        qn = self.connection.ops.quote_name
        columns = ", ".join(qn(db_column(RunRow, n)) for n in ("run", "object_pk", "outcome", "old", "new"))
        return f"INSERT INTO {self.ledger_table} ({columns})"

    def record(self, run: int, source_run: int) -> None:
        """The undo's own ledger entries: each row's current values (``old``) and the values it
        gets back (``new``, the run's ``old``)."""
        sql = (
            f"{self._insert()} SELECT %s, s.pc_key, 'changed', {self._now()}, s.pc_old "
            f"FROM {self.table} JOIN {self.src} ON {self.pk} = s.pc_k{self._where('WHERE')} "
            f"ORDER BY {self.pk}"
        )
        with self.connection.cursor() as cursor:
            cursor.execute(sql, [run, *self._source(source_run), *self.where_params])

    def _sets(self, stamps: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """``col = <the run's old value>, ...`` and the ``auto_now`` stamps, as a save would."""
        sets, params = [], []
        for f in self.fields:
            sql, p = self._value("s.pc_old", f)
            sets.append(f"{self.connection.ops.quote_name(column_of(f))} = {sql}")
            params += p
        for name, value in stamps.items():
            stamp = self.model._meta.get_field(name)
            assert isinstance(stamp, models.Field)
            sets.append(f"{self.connection.ops.quote_name(column_of(stamp))} = %s")
            params.append(stamp.get_db_prep_save(value, self.connection))
        return ", ".join(sets), params

    def write_back(self, source_run: int, stamps: Mapping[str, Any]) -> int:
        """Every row of the batch gets its old values back; returns how many were written."""
        sets, params = self._sets(stamps)
        joined = f"{self.pk} = s.pc_k{self._where('AND')}"
        sql = f"UPDATE {self.table} SET {sets} FROM {self.src} WHERE {joined}"
        with self.connection.cursor() as cursor:
            cursor.execute(sql, [*params, *self._source(source_run), *self.where_params])
            return int(cursor.rowcount)

    def at_once(
        self, run: int, source_run: int, rows: int, stamps: Mapping[str, Any]
    ) -> tuple[int, int, int] | None:
        """PostgreSQL: ``count()``, ``record()`` and ``write_back()`` as one statement, which
        reads the batch's ledger entries and rows once; the entries and the write happen only
        when all ``rows`` rows have an entry and none changed since. Returns (rows with an
        entry, those changed since, rows written); None on SQLite (three statements there)."""
        if self.sqlite:
            return None
        match, match_params = self._matches()
        sets, set_params = self._sets(stamps)
        sql = (
            f"WITH s AS MATERIALIZED {self.entries}, "
            f"cur AS MATERIALIZED (SELECT s.pc_k, s.pc_key, s.pc_old, {self._now()} AS pc_now, "
            f"({match}) AS pc_same FROM {self.table} JOIN s ON {self.pk} = s.pc_k"
            f"{self._where('WHERE')}), "
            "ok AS (SELECT COUNT(*) AS found, COUNT(*) FILTER (WHERE NOT pc_same) AS moved, "
            "COUNT(*) = %s AND COALESCE(bool_and(pc_same), false) AS go FROM cur), "
            f"ins AS ({self._insert()} SELECT %s, cur.pc_key, 'changed', cur.pc_now, cur.pc_old "
            "FROM cur, ok WHERE ok.go ORDER BY cur.pc_k RETURNING 1), "
            f"upd AS (UPDATE {self.table} SET {sets} FROM s, ok "
            f"WHERE ok.go AND {self.pk} = s.pc_k{self._where('AND')} RETURNING 1) "
            "SELECT ok.found, ok.moved, (SELECT COUNT(*) FROM upd), (SELECT COUNT(*) FROM ins) FROM ok"
        )
        params = [
            *self._source(source_run),
            *match_params,
            *self.where_params,
            rows,
            run,
            *set_params,
            *self.where_params,
        ]
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            found, moved, written, _ = cursor.fetchone()
        return int(found), int(moved), int(written)
