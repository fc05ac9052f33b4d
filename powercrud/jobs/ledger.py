"""The run ledger: ``RunRow`` records of what every bulk run did to every row.

``run_recorded()`` is the one call the view and the worker make: it keeps a ``Recorder``
(the ``bulk.ledger.RowRecorder`` of the run) active around ``run_request()``. Set-based
snapshots become one ``INSERT ... SELECT`` in the write's own transaction; rows a service
read are written with one ``insert_entries()`` per batch; a check (dry run) keeps its entries in
memory and writes them once its rollback is over; failed and skipped rows are kept aside and
written at the end, so an all-or-nothing rollback cannot lose them. ``settle()`` then gives
every row of the frozen selection that has no entry yet its outcome (not reached, skipped),
set-based.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections, models, router
from django.db.models import Case, Count, Exists, F, OuterRef, Q, QuerySet, Value, When
from django.db.models.functions import Cast, JSONObject

from powercrud.bulk import ledger
from powercrud.bulk.codec import to_json
from powercrud.bulk.keys import batch_parameter, integer_keys
from powercrud.bulk.ledger import Entry, RowRecorder, stored_value
from powercrud.bulk.request import BulkRequest
from powercrud.bulk.runner import ProgressCallback, batches
from powercrud.bulk.types import BulkContext, BulkResult, RowError
from powercrud.bulk_persistence import BulkUpdatePersistenceBackend, Write, run_request
from powercrud.conf import settings as pc_settings
from powercrud.jobs.locks import KEY_COLUMN, db_column, key_values, lock_key
from powercrud.models import BulkTask, RowLock, RunRow

__all__ = [
    "changed_keys",
    "ledger_alias",
    "Recorder",
    "counts",
    "lock_keys",
    "pk_text",
    "run_recorded",
    "selection_keys",
    "settle",
    "settle_result",
    "settle_unreached",
    "stored_value",
]

WRITE_BATCH = 2000
"""Entries per statement when a ledger is written from memory."""

CASCADED = "cascaded"
"""``row_counts`` key (beside the outcomes): rows a delete's cascade removed besides its own."""


def ledger_alias() -> str:
    """The database the ledger lives in."""
    return router.db_for_write(RunRow)


def pk_text(model: type[models.Model], pk: Any) -> str:
    """``pk`` in the database's text form, the ``RunRow.object_pk`` of that row."""
    if type(pk) is int and integer_keys(model):
        return str(pk)
    if isinstance(pk, ledger.LineKey):  # an imported row without a key of its own
        return str(pk)
    return lock_key(model, pk, using=ledger_alias())


_JSON_TABLE = {
    "sqlite": (
        "SELECT %s, json_extract(value, '$[0]'), json_extract(value, '$[1]'), "
        "json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]') "
        "FROM json_each(%s)"
    ),
    "postgresql": (
        "SELECT %s, e->>0, e->>1, NULLIF(e->2, 'null'), NULLIF(e->3, 'null'), NULLIF(e->4, 'null') "
        "FROM jsonb_array_elements(%s::jsonb) AS e"
    ),
}


def insert_entries(run: BulkTask, rows: Sequence[tuple[str, str, Any, Any, Any]]) -> None:
    """Insert ``(object_pk, outcome, old, new, errors)`` rows into ``run``'s ledger: one
    statement per ``WRITE_BATCH`` rows from a one-parameter JSON table on SQLite and
    PostgreSQL (building model instances costs more than the insert), else ``bulk_create``."""
    using = ledger_alias()
    connection = connections[using]
    select = _JSON_TABLE.get(connection.vendor)
    for start in range(0, len(rows), WRITE_BATCH):
        chunk = rows[start : start + WRITE_BATCH]
        if select is None:
            RunRow.objects.using(using).bulk_create(
                RunRow(run_id=run.pk, object_pk=k, outcome=o, old=old, new=new, errors=e)
                for k, o, old, new, e in chunk
            )
            continue
        qn = connection.ops.quote_name
        columns = ", ".join(
            qn(db_column(RunRow, name)) for name in ("run", "object_pk", "outcome", "old", "new", "errors")
        )
        sql = f"INSERT INTO {qn(RunRow._meta.db_table)} ({columns}) {select}"
        with connection.cursor() as cursor:
            cursor.execute(sql, [run.pk, json.dumps(chunk)])


def _old_expression(model: type[models.Model], name: str) -> Any:
    """The SQL for field ``name``'s current value as JSON: text for decimals, as the codec has it."""
    model_field = model._meta.get_field(name)
    assert isinstance(model_field, models.Field)
    column = F(model_field.attname)
    internal = model_field.get_internal_type()
    if internal in ("DecimalField", "DurationField", "UUIDField", "JSONField"):
        return Cast(column, output_field=models.TextField())
    return column


def _errors_json(errors: Iterable[RowError]) -> list[dict[str, Any]]:
    return [{"field": e.field, "messages": list(e.messages)} for e in errors]


def insert_statement(
    rows: QuerySet[Any], columns: Sequence[str], expressions: Mapping[str, Any], order: Sequence[str] = ()
) -> tuple[str, list[Any]] | None:
    """The SQL and parameters of ``INSERT INTO RunRow (columns) SELECT expressions FROM rows``;
    None when ``rows`` is empty by construction (``pk__in=[]``).

    ``expressions`` maps each column of ``columns`` (in that order) to an expression over ``rows``;
    ``order``: the order the rows are inserted in (the ledger's ids follow it).
    """
    using = ledger_alias()
    qn = connections[using].ops.quote_name
    named = {f"pc_{name}": expr for name, expr in expressions.items()}
    select = rows.order_by(*order).annotate(**named).values(*named)
    try:
        sql, params = select.query.get_compiler(using=using).as_sql()
    except EmptyResultSet:
        return None
    fields = ", ".join(qn(db_column(RunRow, name)) for name in columns)
    picked = ", ".join(f"pc_sel.{qn('pc_' + name)}" for name in columns)
    statement = f"INSERT INTO {qn(RunRow._meta.db_table)} ({fields}) SELECT {picked} FROM ({sql}) pc_sel"
    return statement, list(params)


def execute(statement: tuple[str, Sequence[Any]] | None) -> int:
    """Run an ``insert_statement()``; returns the rows inserted."""
    if statement is None:
        return 0
    with connections[ledger_alias()].cursor() as cursor:
        cursor.execute(*statement)
        return int(cursor.rowcount)


def insert_select(rows: QuerySet[Any], columns: Sequence[str], expressions: Mapping[str, Any]) -> int:
    """``INSERT INTO RunRow (columns) SELECT expressions FROM rows``; returns the rows inserted."""
    return execute(insert_statement(rows, columns, expressions))


class Recorder(RowRecorder):
    """Writes one run's ``RunRow`` entries (see the module docs)."""

    def __init__(
        self, run: BulkTask, model: type[models.Model], *, check: bool, source: BulkTask | None = None
    ):
        self.run = run
        self.model = model
        self.check = check
        self.source = source
        self.aside: dict[str, tuple[str, tuple[RowError, ...]]] = {}
        self.kept: list[RunRow] = []
        self.reported = False  # a service reported rows (a view's own hook may not)
        self.cascaded = 0  # rows a delete removed besides its own (and their links)
        self.analyzed = False
        # Ledger rows the run's writes inserted, while they all came from snapshots (None once
        # anything else wrote some); ``split``: some snapshot told changed from unchanged rows.
        self.snapshot_rows: int | None = 0
        self.split = False
        self._last_key: Any = None  # the last key of the last snapshot, to see a batch taken again
        # Snapshot statements by (model, fields, new, unchanged): a run's batches differ only in
        # their keys (one parameter), and compiling the statement again costs half its SQL time.
        self._statements: dict[tuple[Any, ...], tuple[str, list[Any], int]] = {}

    # --- what the services report -------------------------------------------------------------

    def snapshot(
        self,
        rows: QuerySet[Any],
        *,
        old: Sequence[str],
        new: Mapping[str, Any] | None,
        unchanged: Q | None = None,
        pks: Sequence[Any] | None = None,
    ) -> None:
        self.reported = True
        parameter = None if self.check or not pks else batch_parameter(self.model, rows.db, pks)
        key = (rows.model, tuple(old), repr(new), str(unchanged))
        cached = self._statements.get(key) if parameter is not None else None
        self.split = self.split or unchanged is not None
        self._follow(pks)
        if cached is not None:
            statement, params, at = cached
            self._count_snapshot(execute((statement, [*params[:at], parameter, *params[at + 1 :]])))
            return
        outcome: Any = Value(ledger.CHANGED)
        if unchanged is not None:
            outcome = Case(When(unchanged, then=Value(ledger.UNCHANGED)), default=Value(ledger.CHANGED))
        old_json = JSONObject(**{name: _old_expression(self.model, name) for name in old})
        expressions: dict[str, Any] = {
            "run": Value(self.run.pk),
            "object_pk": Cast("pk", output_field=models.TextField()),
            "outcome": outcome,
            "old": old_json,
        }
        if new is not None:
            expressions["new"] = Value(dict(new), output_field=models.JSONField())
        if self.check:
            self._keep_selected(rows, expressions)
            return
        compiled = insert_statement(rows, list(expressions), expressions, order=("pk",))
        if compiled is not None and parameter is not None:
            found = [i for i, value in enumerate(compiled[1]) if value == parameter]
            if len(found) == 1:  # the batch's keys are exactly one parameter: reusable
                self._statements[key] = (compiled[0], compiled[1], found[0])
        self._count_snapshot(execute(compiled))

    def _count_snapshot(self, inserted: int) -> None:
        if self.snapshot_rows is not None:
            self.snapshot_rows += inserted

    def _follow(self, pks: Sequence[Any] | None) -> None:
        """Stop counting snapshots (``snapshot_counts()`` returns None) unless each batch
        starts after the last one ended: a batch taken again (a replay after the database
        refused it, whose first snapshot was rolled back) would be counted twice."""
        if self.snapshot_rows is None:
            return
        try:
            if not pks or (self._last_key is not None and not pks[0] > self._last_key):
                self.snapshot_rows = None
                return
        except TypeError:  # keys that do not compare
            self.snapshot_rows = None
            return
        self._last_key = pks[-1]

    def snapshot_counts(self, result: BulkResult) -> dict[str, int] | None:
        """The ledger's counts without reading it, when every entry the run wrote came from
        ``snapshot()`` and nothing is kept aside: all ``changed``, or, where a snapshot told
        unchanged rows apart, ``result.changed`` of them: the set-based ``UPDATE`` that
        counted them leaves out exactly the rows the snapshot marked unchanged. None
        otherwise (``counts()`` reads the ledger)."""
        rows = self.snapshot_rows
        if rows is None or self.check or self.aside or self.kept or rows != result.total:
            return None
        changed = result.changed if self.split else rows
        if changed is None or not 0 <= changed <= rows:
            return None
        found = {ledger.CHANGED: changed, ledger.UNCHANGED: rows - changed}
        return {outcome: n for outcome, n in found.items() if n}

    def _keep_selected(self, rows: QuerySet[Any], expressions: Mapping[str, Any]) -> None:
        named = {f"pc_{name}": expr for name, expr in expressions.items() if name != "run"}
        for found in rows.order_by().annotate(**named).values(*named):
            self.kept.append(
                RunRow(
                    run_id=self.run.pk,
                    object_pk=found["pc_object_pk"],
                    outcome=found["pc_outcome"],
                    old=found["pc_old"],
                    new=found.get("pc_new"),
                )
            )

    def record(self, entries: Sequence[Entry]) -> None:
        self.reported = True
        self.snapshot_rows = None
        if not self.check:
            insert_entries(
                self.run,
                [
                    (
                        pk_text(self.model, entry.pk),
                        entry.outcome,
                        to_json(entry.old),
                        to_json(entry.new),
                        _errors_json(entry.errors) or None,
                    )
                    for entry in entries
                ],
            )
            return
        self.kept.extend(
            RunRow(
                run_id=self.run.pk,
                object_pk=pk_text(self.model, entry.pk),
                outcome=entry.outcome,
                old=to_json(entry.old),
                new=to_json(entry.new),
                errors=_errors_json(entry.errors) or None,
            )
            for entry in entries
        )

    def fail(self, pk: Any, errors: Sequence[RowError]) -> None:
        self.reported = True
        self.aside[pk_text(self.model, pk)] = (ledger.FAILED, tuple(errors))

    def skip(self, pk: Any, errors: Sequence[RowError]) -> None:
        self.aside[pk_text(self.model, pk)] = (ledger.SKIPPED, tuple(errors))

    def source_pks(self) -> list[Any]:
        if self.source is None:
            return []
        pk_field: Any = self.model._meta.pk
        keys = changed_keys(self.source).values_list("object_pk", flat=True)
        return sorted(pk_field.to_python(key) for key in keys.iterator(chunk_size=WRITE_BATCH))

    def note_cascade(self, count: int) -> None:
        self.cascaded += count

    def undo_in_place(
        self,
        model: type[models.Model],
        using: str,
        batch: Sequence[Any],
        names: Sequence[str],
        stamps: Mapping[str, Any],
    ) -> tuple[int, int] | None:
        if self.source is None or self.check or using != ledger_alias():
            return None
        from powercrud.jobs.undo_sql import InPlace, fresh_statistics  # it builds on this module

        place = InPlace.make(model, using, names, batch)
        if place is None:
            return None
        if not self.analyzed:  # the run's entries may be too new for PostgreSQL's statistics
            self.analyzed = True
            fresh_statistics(self.source)
        done = place.at_once(self.run.pk, self.source.pk, len(batch), stamps)
        self.snapshot_rows = None
        if done is not None:
            found, moved, written = done
            if found != len(batch) or moved:  # nothing was written: row by row
                return None
            self.reported = True
            return found, written
        found, moved = place.count(self.source.pk)
        if found != len(batch) or moved:  # rows gone, unrecorded or changed since: row by row
            return None
        self.reported = True
        place.record(self.run.pk, self.source.pk)
        return found, place.write_back(self.source.pk, stamps)

    def later_changes(self, pks: Sequence[Any]) -> Mapping[Any, int]:
        if self.source is None:
            return {}
        keys = {pk_text(self.model, pk): pk for pk in pks}
        later = (
            RunRow.objects.using(ledger_alias())
            .filter(
                run__model_label=self.source.model_label,
                run_id__gt=self.source.pk,
                run__dry_run=False,
                outcome=RunRow.Outcome.CHANGED,
                object_pk__in=list(keys),
            )
            .exclude(run_id=self.run.pk)
            .order_by("run_id")
            .values_list("object_pk", "run_id")
        )
        return {keys[key]: run_id for key, run_id in later}

    def earlier(self, pks: Sequence[Any]) -> Mapping[Any, Entry]:
        if self.source is None:
            return {}
        keys = {pk_text(self.model, pk): pk for pk in pks}
        found = RunRow.objects.using(ledger_alias()).filter(run_id=self.source.pk, object_pk__in=list(keys))
        return {
            keys[row.object_pk]: Entry(keys[row.object_pk], row.outcome, old=row.old, new=row.new)
            for row in found
        }

    # --- after the run ------------------------------------------------------------------------

    def write_kept(self, *, rolled_back: bool) -> None:
        """Write what stays in memory: a check's entries, then every failed or skipped row.

        ``rolled_back``: the writes were undone (all-or-nothing with failures), so the entries
        written during the run are gone and only the rows kept aside are written.
        """
        manager = RunRow.objects.using(ledger_alias())
        aside = set(self.aside)
        if not rolled_back:
            manager.bulk_create(
                [row for row in self.kept if row.object_pk not in aside], batch_size=WRITE_BATCH
            )
        if aside and not rolled_back:
            for chunk in batches(sorted(aside), WRITE_BATCH):
                manager.filter(run_id=self.run.pk, object_pk__in=chunk).delete()
        insert_entries(
            self.run,
            [
                (key, outcome, None, None, _errors_json(errors) or None)
                for key, (outcome, errors) in self.aside.items()
            ],
        )
        self.kept = []
        self.aside = {}


def selection_keys(queryset: QuerySet[Any]) -> QuerySet[Any]:
    """``queryset``'s primary keys in the ledger's text form, as a one-column subquery."""
    return key_values(queryset)


def lock_keys(task: BulkTask) -> QuerySet[Any]:
    """A background run's frozen selection (its row locks) in the ledger's text form."""
    return (
        RowLock.objects.using(ledger_alias()).filter(task_id=task.pk).values(**{KEY_COLUMN: F("object_pk")})
    )


def settle(
    recorder: Recorder,
    keys: QuerySet[Any],
    *,
    rolled_back: bool,
    rest: str,
    rest_errors: Sequence[RowError] = (),
    total: int | None = None,
    known: dict[str, int] | None = None,
) -> dict[str, int]:
    """Finish ``recorder``'s ledger: what it kept in memory, then every row of ``keys`` (from
    ``selection_keys()`` or ``lock_keys()``) without an entry gets outcome ``rest``, set-based.

    ``rolled_back``: the run's writes were undone, so the entries written during it are gone.
    ``total``: the selection's size when known; a ledger that already has that many entries is
    complete and the selection is not read again. ``known``: the ledger's counts when the
    caller knows them (``Recorder.snapshot_counts()``), else they are read. Returns the
    ledger's counts.
    """
    recorder.write_kept(rolled_back=rolled_back)
    run = recorder.run
    found = counts(run) if known is None else known
    if total is not None and sum(found.values()) >= total:
        return found
    if known is not None:
        found = counts(run)  # the ledger has rows ``known`` does not name
    # NOT EXISTS, an anti-join: NOT IN over a million keys is quadratic once PostgreSQL cannot hash it.
    recorded = RunRow.objects.using(ledger_alias()).filter(run_id=run.pk, object_pk=OuterRef(KEY_COLUMN))
    missing = keys.exclude(Exists(recorded))
    errors = _errors_json(rest_errors) or None
    expressions: dict[str, Any] = {"run": Value(run.pk), "object_pk": F(KEY_COLUMN), "outcome": Value(rest)}
    if errors is not None:
        expressions["errors"] = Value(errors, output_field=models.JSONField())
    if insert_select(missing, list(expressions), expressions):
        found = counts(run)
    return found


def settle_result(
    recorder: Recorder, keys: QuerySet[Any], result: BulkResult, *, atomic: bool, total: int | None = None
) -> dict[str, int]:
    """Settle a run that returned ``result``; returns the ledger's counts by outcome.

    An all-or-nothing run that failed was rolled back: its failed and skipped rows keep their
    outcome, every other row was not reached. A view's own hook reports nothing per row: its
    listed errors become failed rows and the rest take the run's outcome (changed).
    """
    rolled_back = atomic and not result.success and not result.dry_run
    if not recorder.reported:
        for error in result.errors:
            if error.pk is not None and pk_text(recorder.model, error.pk) not in recorder.aside:
                recorder.fail(error.pk, [error])
    rest = ledger.NOT_REACHED if rolled_back else ledger.CHANGED if not recorder.reported else ledger.SKIPPED
    known = None if rolled_back or result.dry_run else recorder.snapshot_counts(result)
    found = settle(recorder, keys, rolled_back=rolled_back, rest=rest, total=total, known=known)
    if recorder.cascaded and not rolled_back and not result.dry_run:
        found[CASCADED] = recorder.cascaded
    return found


def settle_unreached(task: BulkTask) -> None:
    """A background run that ended without a result (cancelled, died, never ran): no row was reached."""
    model = task.model_class
    if model is None:
        return
    recorder = Recorder(task, model, check=task.dry_run)
    settle(recorder, lock_keys(task), rolled_back=True, rest=ledger.NOT_REACHED)


def counts(run: BulkTask) -> dict[str, int]:
    """The run's rows by outcome, from the ledger (one query)."""
    found = (
        RunRow.objects.using(ledger_alias())
        .filter(run_id=run.pk)
        .values_list("outcome")
        .annotate(n=Count("id"))
    )
    return {outcome: n for outcome, n in found.order_by()}


def run_recorded(
    run: BulkTask,
    request: BulkRequest,
    *,
    queryset: QuerySet[Any],
    keys: QuerySet[Any],
    context: BulkContext,
    backend: BulkUpdatePersistenceBackend | None = None,
    write: Write | None = None,
    progress_callback: ProgressCallback | None = None,
    partial: bool = False,
) -> tuple[BulkResult, dict[str, int]]:
    """``run_request()`` with ``run``'s ledger recording, then settled over ``keys`` (the frozen
    selection); returns the result and the ledger's counts. The one call both modes make.

    ``partial``: ``keys`` are one chunk of the run's selection (``jobs.chunks``), so the
    ledger's size says nothing about whether they are all settled."""
    source = None
    if request.source_action == "undo" and request.source_run is not None:
        source = BulkTask.objects.using(ledger_alias()).filter(pk=request.source_run).first()
    recorder = Recorder(run, queryset.model, check=run.dry_run, source=source)
    on = pc_settings.BULK_RUN_LEDGER
    with ledger.recording(recorder) if on else contextlib.nullcontext(recorder):
        result = run_request(
            request,
            queryset=queryset,
            context=context,
            backend=backend,
            write=write,
            progress_callback=progress_callback,
        )
    if not on:
        return result, {}
    total = None if partial else context.selection_size
    return result, settle_result(recorder, keys, result, atomic=request.atomic, total=total)


def changed_keys(run: BulkTask) -> QuerySet[RunRow]:
    """The ledger rows of the rows ``run`` changed (or, an import, created)."""
    if run.kind == BulkTask.Kind.IMPORT:
        outcomes = (RunRow.Outcome.CHANGED, RunRow.Outcome.CREATED)
        return RunRow.objects.using(ledger_alias()).filter(run_id=run.pk, outcome__in=outcomes)
    return RunRow.objects.using(ledger_alias()).filter(run_id=run.pk, outcome=RunRow.Outcome.CHANGED)
