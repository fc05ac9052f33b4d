"""The default bulk update service: request-free, shared by the sync view and the worker.

``BulkUpdateService().apply(...)`` freezes the selection into sorted primary keys, writes
them in batches with the cheapest correct strategy (see ``powercrud.bulk.strategies``),
validates rows only where a row can fail on its own, and runs in all-or-nothing or per-row
mode (see ``powercrud.bulk.runner``). Subclass it to add rules through three hooks:
``validate_row``, ``before_batch`` and ``after_batch``.

Cost: with no hooks overridden, no per-row checks, no many-to-many field and no dry run,
a batch is exactly one ``UPDATE ... WHERE pk IN (...)``; rows already holding the new values
are excluded from it and so neither written nor counted as changed. Anything that needs the
old values (hooks, checks, many-to-many, a dry run's examples) reads the batch once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DatabaseError, models, transaction
from django.db.models import Q, QuerySet

from powercrud.bulk import ledger, lifecycle, messages
from powercrud.bulk.codec import to_json
from powercrud.bulk.db_errors import describe_db_error, explain_db_error, is_run_error
from powercrud.bulk.keys import in_batch
from powercrud.bulk.m2m import m2m_changes, resolve_edit, write_links
from powercrud.bulk.plan import (
    Load,
    Row,
    UpdatePlan,
    clean_value,
    load_rows,
    model_check_errors,
    set_batch_size,
    validation_messages,
)
from powercrud.bulk.runner import (
    BatchOutcome,
    Isolation,
    ProgressCallback,
    RunOutcome,
    capped_errors_note,
    check_context,
    freeze_pks,
    run_batches,
    write_alias,
    write_isolated,
)
from powercrud.bulk.strategies import (
    RowChecks,
    WriteStrategy,
    auto_now_fields,
    auto_now_values,
    choose_strategy,
    row_checks,
)
from powercrud.bulk.types import (
    BulkContext,
    BulkHookError,
    BulkInputError,
    BulkResult,
    RowChange,
    RowError,
    json_pk,
    summarise,
)
from powercrud.bulk.undo import is_undo, plan_undo, process_undo
from powercrud.bulk.values import from_field_data

logger = logging.getLogger("powercrud.bulk")

RETRY_ON: tuple[type[BaseException], ...] = (DatabaseError, ValidationError)
"""What a row's write may raise as that row's refusal; ``is_run_error()`` ones still propagate."""


def _pair(row: Row) -> lifecycle.Pair:
    return lifecycle.Pair(row.instance, row.before)


def _db_row_error(pk: Any, exc: BaseException, model: type[models.Model]) -> RowError:
    """Row ``pk``'s error for a refusal by the database (or by a save), naming the field when known."""
    refusal = explain_db_error(exc, model)
    return RowError(pk=pk, field=refusal.field, messages=(refusal.message,))


def refusal(pk: Any, exc: BaseException, model: type[models.Model]) -> list[RowError]:
    """Row ``pk``'s errors when its write raised ``exc``: a ``ValidationError`` (from ``save()``)
    by field, a database refusal in the model's words."""
    if isinstance(exc, ValidationError):
        return [RowError(pk, name, tuple(msgs)) for name, msgs in validation_messages(exc).items()]
    return [_db_row_error(pk, exc, model)]


class BulkUpdateService:
    """Writes one bulk edit. Subclass and override the hooks to add application rules.

    Hooks, in order, for each batch:

    ``validate_row(instance, new_values, context)``
        Once per row that would change. ``instance`` is the row as stored (not yet changed;
        see ``row_fields`` for what is loaded), ``new_values`` maps each field being updated
        to its new value (many-to-many: the resulting sorted tuple of related pks).
    ``before_batch(changes, context)``
        Once per batch with the rows about to be written (valid, and actually changing).
    ``after_batch(changes, context)``
        Once per batch with the rows written, inside the batch's transaction. Not called in a
        dry run. An exception here aborts the run (its transaction rolls back).

    Hooks run in sync and async runs alike. All-or-nothing runs that hit a database error
    and per-row batches that hit one are replayed (see ``powercrud.bulk.runner``), so a hook
    can be called again for the same rows after a rollback; keep effects outside the database
    in ``transaction.on_commit()``. In a dry run the per-object path still calls ``save()``
    (so database errors are found), and with it the signal receivers, inside the transaction
    that is rolled back.
    Overriding any hook makes each batch be read once (old values are needed).
    """

    max_reported_errors: int = 10_000
    """At most this many ``RowError`` are kept in the result; failures are still counted."""

    row_fields: Sequence[str] | None = None
    """Fields loaded for ``validate_row`` and ``clean()`` besides the changed ones; None: all."""

    # --- hooks ----------------------------------------------------------------------------------

    def validate_row(
        self, instance: models.Model, new_values: Mapping[str, Any], context: BulkContext
    ) -> None:
        """Raise ``ValidationError`` (dict form naming fields) to fail this row; returns None."""

    def before_batch(self, changes: Sequence[RowChange], context: BulkContext) -> None:
        """Runs before a batch is written; raise ``BulkHookError``/``ValidationError`` to fail rows."""

    def after_batch(self, changes: Sequence[RowChange], context: BulkContext) -> None:
        """Runs after a batch is written, inside its transaction; returns None."""

    def choose_strategy(self, model: type[models.Model], fields: Sequence[str]) -> WriteStrategy:
        """The write strategy for ``fields`` of ``model`` (see ``powercrud.bulk.strategies``)."""
        return choose_strategy(model, fields)

    def row_checks(self, model: type[models.Model], fields: Sequence[str]) -> RowChecks:
        """The per-row model validation an update of the concrete ``fields`` needs."""
        return row_checks(model, fields)

    # --- entry point ----------------------------------------------------------------------------

    def apply(
        self,
        *,
        queryset: QuerySet[Any],
        bulk_fields: Sequence[str],
        fields_to_update: Sequence[str],
        field_data: Mapping[str, Any],
        context: BulkContext,
        progress_callback: ProgressCallback | None = None,
    ) -> BulkResult:
        """Write ``field_data`` to every row of ``queryset``; returns the ``BulkResult``.

        Raises ``BulkInputError`` before any write when the request itself is invalid.
        """
        model = queryset.model
        check_context(model, context, "update")
        allowed = set(bulk_fields)
        for name in fields_to_update:
            if name not in allowed:
                raise BulkInputError(
                    name,
                    f"'{name}' is not one of the bulk_fields ({', '.join(bulk_fields)}); "
                    "only bulk_fields can be written.",
                )
        if not fields_to_update:
            raise BulkInputError(None, "fields_to_update is empty; choose at least one field to change.")
        using = write_alias(queryset)
        process: Callable[[Sequence[Any], Isolation], BatchOutcome]
        first_batch_size = None
        if is_undo(context):
            undo = plan_undo(self, model, using, fields_to_update, context)
            process = lambda batch, isolation: process_undo(self, undo, batch, isolation)  # noqa: E731
        else:
            plan = self._plan(model, using, fields_to_update, field_data, context)
            process = lambda batch, isolation: self._process(plan, batch, isolation)  # noqa: E731
            first_batch_size = set_batch_size(plan)
        pks = freeze_pks(queryset, using)
        outcome = run_batches(
            pks=pks,
            context=context,
            using=using,
            process=process,
            retry_on=RETRY_ON,
            describe_error=lambda exc: describe_db_error(exc, model),
            progress_callback=progress_callback,
            max_errors=self.max_reported_errors,
            first_batch_size=first_batch_size,
        )
        return self._result(outcome, context)

    # --- planning -------------------------------------------------------------------------------

    def _plan(
        self,
        model: type[models.Model],
        using: str,
        names: Sequence[str],
        field_data: Mapping[str, Any],
        context: BulkContext,
    ) -> UpdatePlan:
        values = from_field_data(model, names, field_data)
        edits = tuple(
            resolve_edit(model, name, change, using) for name, change in m2m_changes(values).items()
        )
        for edit in edits:
            if edit.has_m2m_changed_receivers:
                logger.warning(
                    "m2m_changed receivers for %s are not run by bulk edit of '%s'.",
                    edit.through._meta.label,
                    edit.name,
                )
        plain = {name: value for name, value in values.items() if name not in {e.name for e in edits}}
        for name, value in plain.items():
            plain[name] = self._clean_value(model, using, name, value)
        strategy = self.choose_strategy(model, list(names))
        checks = self.row_checks(model, list(plain)) if plain else RowChecks()
        hooks = {name: self._overrides(name) for name in ("validate_row", "before_batch", "after_batch")}
        hooked = lifecycle.has_hooks(model, lifecycle.UPDATE)
        only: tuple[str, ...] | None = None
        if strategy is WriteStrategy.PER_OBJECT or hooked:
            load = Load.INSTANCES
        elif hooks["validate_row"] or checks.clean:
            load = Load.INSTANCES
            if self.row_fields is not None:
                only = tuple({*self.row_fields, *checks.fields, *plain})
        elif checks.needed:
            load, only = Load.INSTANCES, tuple({*checks.fields, *plain})
        elif edits or hooks["before_batch"] or hooks["after_batch"] or context.dry_run:
            load = Load.VALUES
        else:
            load = Load.NONE
        every = frozenset(f.name for f in model._meta.concrete_fields)
        return UpdatePlan(
            model=model,
            using=using,
            context=context,
            values=MappingProxyType(plain),
            attnames=MappingProxyType({n: model._meta.get_field(n).attname for n in plain}),  # type: ignore[union-attr]
            m2m=edits,
            strategy=strategy,
            checks=checks,
            exclude=every - checks.fields - set(plain),
            auto_now=auto_now_fields(model, plain) if plain else (),
            load=load,
            only=only,
            validate_row=hooks["validate_row"],
            before_batch=hooks["before_batch"],
            after_batch=hooks["after_batch"],
            lifecycle=hooked,
        )

    def _overrides(self, name: str) -> bool:
        return getattr(type(self), name) is not getattr(BulkUpdateService, name)

    def _clean_value(self, model: type[models.Model], using: str, name: str, value: Any) -> Any:
        """The value checked once for all rows (see ``plan.clean_value``); returns it."""
        return clean_value(model, using, name, value)

    # --- one batch ------------------------------------------------------------------------------

    def _process(self, plan: UpdatePlan, batch: Sequence[Any], isolation: Isolation) -> BatchOutcome:
        if plan.load is Load.NONE:
            return self._process_fast(plan, batch, isolation)
        out = BatchOutcome()
        candidates: list[Row] = []
        unchanged: list[ledger.Entry] = []
        for row in load_rows(plan, batch):
            if not row.changed:
                out.succeeded += 1
                unchanged.append(ledger.Entry(row.pk, ledger.UNCHANGED, old=to_json(row.old)))
                continue
            errors = self._check(plan, row)
            if errors:
                out.fail(row.pk, errors)
            else:
                candidates.append(row)
        if candidates and plan.lifecycle:
            candidates = self._lifecycle_before(plan, candidates, out)
        if candidates and plan.before_batch:
            candidates = self._before_batch(plan, candidates, out)
        written = self._write(plan, candidates, isolation, out)
        out.succeeded += len(written)
        out.changed += len(written)
        changes = [row.change() for row in written]
        ledger.active().record(
            [
                *unchanged,
                *(
                    ledger.Entry(c.pk, ledger.CHANGED, old=to_json(c.old), new=to_json(c.new))
                    for c in changes
                ),
            ]
        )
        out.examples.extend(changes[:5])
        if written and plan.after_batch and not plan.context.dry_run:
            self.after_batch(changes, plan.context)
        if written and plan.lifecycle and not plan.context.dry_run:
            lifecycle.run(lifecycle.Event.AFTER_UPDATE, plan.model, [_pair(row) for row in written])
        return out

    def _lifecycle_before(self, plan: UpdatePlan, rows: list[Row], out: BatchOutcome) -> list[Row]:
        """The rows the ``before_update`` lifecycle hooks let through; the others fail."""
        refused = lifecycle.run(lifecycle.Event.BEFORE_UPDATE, plan.model, [_pair(row) for row in rows])
        for index, errors in refused.items():
            out.fail(rows[index].pk, errors)
        return [row for index, row in enumerate(rows) if index not in refused]

    def _process_fast(self, plan: UpdatePlan, batch: Sequence[Any], isolation: Isolation) -> BatchOutcome:
        out = BatchOutcome()
        manager = plan.model._base_manager.using(plan.using)

        recorder = ledger.active()
        new_values = to_json(dict(plan.values))
        names = list(plan.values)

        def write(pks: Sequence[Any]) -> int:
            rows = manager.filter(in_batch(plan.model, plan.using, pks))
            recorder.snapshot(rows, old=names, new=new_values, unchanged=Q(**plan.values), pks=pks)
            update = {**plan.values, **auto_now_values(plan.auto_now)}
            return rows.exclude(**plan.values).update(**update)

        if isolation is Isolation.NONE:
            out.changed = write(batch)
            out.succeeded = len(batch)
            return out
        if isolation is Isolation.BATCH:
            try:
                with transaction.atomic(using=plan.using):
                    out.changed = write(batch)
                out.succeeded = len(batch)
                return out
            except RETRY_ON as exc:
                if is_run_error(exc):
                    raise
        for pk in batch:
            try:
                with transaction.atomic(using=plan.using):
                    out.changed += write([pk])
                out.succeeded += 1
            except RETRY_ON as exc:
                if is_run_error(exc):
                    raise
                out.fail(pk, [_db_row_error(pk, exc, plan.model)])
        return out

    def _check(self, plan: UpdatePlan, row: Row) -> list[RowError]:
        errors: dict[str | None, list[str]] = {}
        instance = row.instance
        if instance is None:
            return []
        if plan.validate_row:
            try:
                self.validate_row(instance, MappingProxyType(dict(row.new)), plan.context)
            except ValidationError as exc:
                for name, messages in validation_messages(exc).items():
                    errors.setdefault(name, []).extend(messages)
            except BulkHookError as exc:
                for error in exc.errors:
                    if error.pk is None or error.pk == json_pk(row.pk):
                        errors.setdefault(error.field, []).extend(error.messages)
        for name, messages in model_check_errors(plan, instance).items():
            errors.setdefault(name, []).extend(messages)
        return [RowError(pk=row.pk, field=name, messages=tuple(msgs)) for name, msgs in errors.items()]

    def _before_batch(self, plan: UpdatePlan, rows: list[Row], out: BatchOutcome) -> list[Row]:
        try:
            self.before_batch([row.change() for row in rows], plan.context)
        except ValidationError as exc:
            for row in rows:
                out.fail(
                    row.pk, [RowError(row.pk, name, tuple(m)) for name, m in validation_messages(exc).items()]
                )
            return []
        except BulkHookError as exc:
            by_pk = {json_pk(row.pk): row for row in rows}
            failed: set[Any] = set()
            for error in exc.errors:
                targets = list(by_pk) if error.pk is None else [error.pk]
                for pk in targets:
                    row_pk = by_pk[pk].pk if pk in by_pk else pk
                    out.fail(row_pk, [RowError(pk=pk, field=error.field, messages=error.messages)])
                    failed.add(pk)
            return [row for row in rows if json_pk(row.pk) not in failed]
        return rows

    # --- writing --------------------------------------------------------------------------------

    def _write(self, plan: UpdatePlan, rows: list[Row], isolation: Isolation, out: BatchOutcome) -> list[Row]:
        return write_isolated(
            rows,
            isolation,
            plan.using,
            lambda chunk: self._write_rows(plan, chunk),
            lambda row, exc: out.fail(row.pk, refusal(row.pk, exc, plan.model)),
            RETRY_ON,
        )

    def _write_rows(self, plan: UpdatePlan, rows: Sequence[Row]) -> None:
        plain_rows = [row for row in rows if row.plain_changed]
        if plain_rows and plan.strategy is WriteStrategy.PER_OBJECT:
            update_fields = [*plan.values, *(f.name for f in plan.auto_now)]
            for row in plain_rows:
                assert row.instance is not None
                row.instance.save(using=plan.using, update_fields=update_fields)
        elif plain_rows:
            update = {**plan.values, **auto_now_values(plan.auto_now)}
            plan.model._base_manager.using(plan.using).filter(
                in_batch(plan.model, plan.using, [row.pk for row in plain_rows])
            ).update(**update)
        for edit in plan.m2m:
            moves = [(row.pk, *row.links[edit.name]) for row in rows]
            write_links(edit, plan.using, [(pk, old, new) for pk, old, new in moves if old != new])

    # --- result ---------------------------------------------------------------------------------

    def _result(self, outcome: RunOutcome, context: BulkContext) -> BulkResult:
        success = outcome.failed == 0
        message = summarise(
            success=success,
            success_records=outcome.succeeded,
            failed=outcome.failed,
            total=outcome.total,
            changed=outcome.changed,
            dry_run=context.dry_run,
            atomic=context.atomic,
        )
        if is_undo(context) and outcome.extra:
            message += messages.undo_conflicts(outcome.extra, int(context.extra["source_run"]))
        message += capped_errors_note(outcome)
        return BulkResult(
            success=success,
            success_records=outcome.succeeded,
            errors=tuple(outcome.errors),
            total=outcome.total,
            changed=outcome.changed,
            dry_run=context.dry_run,
            examples=tuple(outcome.examples),
            message=message,
            failed=outcome.failed,
        )
