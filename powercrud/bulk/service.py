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

import enum
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import DataError, IntegrityError, models, router, transaction
from django.db.models import QuerySet

from powercrud.bulk.m2m import M2MEdit, m2m_changes, read_links, resolve_edit, write_links
from powercrud.bulk.runner import (
    BatchOutcome,
    Isolation,
    ProgressCallback,
    RunOutcome,
    freeze_pks,
    run_batches,
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
    sorted_values,
    summarise,
)
from powercrud.bulk.values import from_field_data

logger = logging.getLogger("powercrud.bulk")

RETRY_ON: tuple[type[BaseException], ...] = (IntegrityError, DataError, ValidationError)


class _Load(enum.Enum):
    NONE = "none"  # fast path: no read at all
    VALUES = "values"  # old values of the changed fields, as tuples
    INSTANCES = "instances"  # model instances, for save(), clean() and validate_row


@dataclass(frozen=True)
class _Plan:
    model: type[models.Model]
    using: str
    context: BulkContext
    values: Mapping[str, Any]  # plain field name -> Python value (foreign keys: the pk)
    attnames: Mapping[str, str]
    m2m: tuple[M2MEdit, ...]
    strategy: WriteStrategy
    checks: RowChecks
    exclude: frozenset[str]  # fields left out of per-row checks
    auto_now: tuple[models.Field[Any, Any], ...]
    load: _Load
    only: tuple[str, ...] | None
    validate_row: bool
    before_batch: bool
    after_batch: bool


@dataclass
class _Row:
    pk: Any
    instance: models.Model | None
    old: dict[str, Any]
    new: dict[str, Any]
    links: dict[str, tuple[frozenset[Any], frozenset[Any]]] = field(default_factory=dict)
    plain_changed: bool = False

    @property
    def changed(self) -> bool:
        return self.plain_changed or any(old != new for old, new in self.links.values())

    def change(self) -> RowChange:
        return RowChange(pk=self.pk, old=self.old, new=self.new)


def describe_db_error(exc: BaseException) -> str:
    """A readable one-line reason for a database or save-time error."""
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"The database rejected the change: {first_line}"


def _messages(exc: ValidationError) -> dict[str | None, list[str]]:
    if hasattr(exc, "error_dict"):
        return {
            (None if name == NON_FIELD_ERRORS else name): list(ValidationError(errors).messages)
            for name, errors in exc.error_dict.items()
        }
    return {None: list(exc.messages)}


def check_context(model: type[models.Model], context: BulkContext, operation: str) -> None:
    """Raise ValueError unless ``context`` describes ``operation`` on ``model``."""
    if context.model_label != model._meta.label_lower:
        raise ValueError(
            f"context.model_label is {context.model_label!r} but the queryset is of "
            f"{model._meta.label_lower!r}; build the context for the model being written."
        )
    if context.operation != operation:
        raise ValueError(f"context.operation is {context.operation!r}; this service performs {operation!r}.")


def write_alias(queryset: QuerySet[Any]) -> str:
    """The database alias writes to ``queryset`` go to."""
    explicit: str | None = getattr(queryset, "_db", None)  # set by .using()
    return explicit or router.db_for_write(queryset.model)


class BulkUpdateService:
    """Writes one bulk edit. Subclass and override the hooks to add application rules."""

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
        plan = self._plan(model, using, fields_to_update, field_data, context)
        pks = freeze_pks(queryset, using)
        outcome = run_batches(
            pks=pks,
            context=context,
            using=using,
            process=lambda batch, isolation: self._process(plan, batch, isolation),
            retry_on=RETRY_ON,
            describe_error=describe_db_error,
            progress_callback=progress_callback,
            max_errors=self.max_reported_errors,
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
    ) -> _Plan:
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
        only: tuple[str, ...] | None = None
        if strategy is WriteStrategy.PER_OBJECT:
            load = _Load.INSTANCES
        elif hooks["validate_row"] or checks.clean:
            load = _Load.INSTANCES
            if self.row_fields is not None:
                only = tuple({*self.row_fields, *checks.fields, *plain})
        elif checks.needed:
            load, only = _Load.INSTANCES, tuple({*checks.fields, *plain})
        elif edits or hooks["before_batch"] or hooks["after_batch"] or context.dry_run:
            load = _Load.VALUES
        else:
            load = _Load.NONE
        every = frozenset(f.name for f in model._meta.concrete_fields)
        return _Plan(
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
        )

    def _overrides(self, name: str) -> bool:
        return getattr(type(self), name) is not getattr(BulkUpdateService, name)

    @staticmethod
    def _clean_value(model: type[models.Model], using: str, name: str, value: Any) -> Any:
        """Validate a value once for every row: ``validate()``, validators, related row exists."""
        model_field = model._meta.get_field(name)
        assert isinstance(model_field, models.Field)
        if model_field.blank and value in model_field.empty_values:
            return value
        try:
            models.Field.validate(model_field, value, None)
            model_field.run_validators(value)
        except ValidationError as exc:
            raise BulkInputError(name, f"Invalid value for '{name}': {' '.join(exc.messages)}") from None
        if model_field.is_relation and value is not None:
            related = model_field.related_model
            target = model_field.target_field.name  # type: ignore[attr-defined]
            choices = related._base_manager.using(using).filter(**{target: value})  # type: ignore[union-attr]
            limit = model_field.get_limit_choices_to()  # type: ignore[attr-defined]
            if limit:
                choices = choices.complex_filter(limit)
            if not choices.exists():
                raise BulkInputError(
                    name,
                    f"Invalid value for '{name}': no {related._meta.verbose_name} with "  # type: ignore[union-attr]
                    f"{target} {value!r} can be chosen (it does not exist or is not allowed).",
                )
        return value

    # --- one batch ------------------------------------------------------------------------------

    def _process(self, plan: _Plan, batch: Sequence[Any], isolation: Isolation) -> BatchOutcome:
        if plan.load is _Load.NONE:
            return self._process_fast(plan, batch, isolation)
        out = BatchOutcome()
        candidates: list[_Row] = []
        for row in self._load(plan, batch):
            if not row.changed:
                out.succeeded += 1
                continue
            errors = self._check(plan, row)
            if errors:
                out.fail(row.pk, errors)
            else:
                candidates.append(row)
        if candidates and plan.before_batch:
            candidates = self._before_batch(plan, candidates, out)
        written = self._write(plan, candidates, isolation, out)
        out.succeeded += len(written)
        out.changed += len(written)
        changes = [row.change() for row in written]
        out.examples.extend(changes[:5])
        if written and plan.after_batch:
            self.after_batch(changes, plan.context)
        return out

    def _process_fast(self, plan: _Plan, batch: Sequence[Any], isolation: Isolation) -> BatchOutcome:
        out = BatchOutcome()
        manager = plan.model._base_manager.using(plan.using)

        def write(pks: Sequence[Any]) -> int:
            update = {**plan.values, **auto_now_values(plan.auto_now)}
            return manager.filter(pk__in=pks).exclude(**plan.values).update(**update)

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
            except RETRY_ON:
                pass
        for pk in batch:
            try:
                with transaction.atomic(using=plan.using):
                    out.changed += write([pk])
                out.succeeded += 1
            except RETRY_ON as exc:
                out.fail(pk, [RowError(pk=pk, field=None, messages=(describe_db_error(exc),))])
        return out

    def _load(self, plan: _Plan, batch: Sequence[Any]) -> list[_Row]:
        rows = plan.model._base_manager.using(plan.using).filter(pk__in=batch).order_by("pk")
        names = list(plan.values)
        found: list[tuple[Any, models.Model | None, dict[str, Any]]] = []
        if plan.load is _Load.INSTANCES:
            instances = rows if plan.only is None else rows.only(*plan.only)
            for obj in instances:
                found.append((obj.pk, obj, {n: getattr(obj, plan.attnames[n]) for n in names}))
        else:
            attnames = [plan.attnames[n] for n in names]
            for pk, *old in rows.values_list("pk", *attnames):
                found.append((pk, None, dict(zip(names, old, strict=True))))
        pks = [pk for pk, _, _ in found]
        links = {edit.name: read_links(edit, plan.using, pks) for edit in plan.m2m if pks}
        result = []
        for pk, instance, old in found:
            row = _Row(pk=pk, instance=instance, old=old, new=dict(plan.values))
            row.plain_changed = any(old[n] != plan.values[n] for n in names)
            for edit in plan.m2m:
                current = links[edit.name].get(pk, frozenset())
                after = edit.apply(current)
                row.links[edit.name] = (current, after)
                row.old[edit.name] = tuple(sorted_values(current))
                row.new[edit.name] = tuple(sorted_values(after))
            result.append(row)
        return result

    def _check(self, plan: _Plan, row: _Row) -> list[RowError]:
        errors: dict[str | None, list[str]] = {}

        def collect(exc: ValidationError) -> None:
            for name, messages in _messages(exc).items():
                errors.setdefault(name, []).extend(messages)

        instance = row.instance
        if plan.validate_row and instance is not None:
            try:
                self.validate_row(instance, MappingProxyType(dict(row.new)), plan.context)
            except ValidationError as exc:
                collect(exc)
            except BulkHookError as exc:
                for error in exc.errors:
                    if error.pk is None or error.pk == json_pk(row.pk):
                        errors.setdefault(error.field, []).extend(error.messages)
        if instance is not None:
            for name, value in plan.values.items():
                setattr(instance, plan.attnames[name], value)
            if plan.checks.clean:
                try:
                    instance.clean()
                except ValidationError as exc:
                    collect(exc)
            if plan.checks.unique:
                try:
                    instance.validate_unique(exclude=set(plan.exclude) | {n for n in errors if n})
                except ValidationError as exc:
                    collect(exc)
            for klass, constraint in plan.checks.constraints:
                try:
                    constraint.validate(klass, instance, exclude=set(plan.exclude), using=plan.using)
                except ValidationError as exc:
                    fields: Sequence[str] = getattr(constraint, "fields", ())
                    if getattr(exc, "code", None) == "unique" and len(fields) == 1:
                        errors.setdefault(fields[0], []).extend(exc.messages)
                    else:
                        collect(exc)
        return [RowError(pk=row.pk, field=name, messages=tuple(msgs)) for name, msgs in errors.items()]

    def _before_batch(self, plan: _Plan, rows: list[_Row], out: BatchOutcome) -> list[_Row]:
        try:
            self.before_batch([row.change() for row in rows], plan.context)
        except ValidationError as exc:
            for row in rows:
                out.fail(row.pk, [RowError(row.pk, name, tuple(m)) for name, m in _messages(exc).items()])
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

    def _write(self, plan: _Plan, rows: list[_Row], isolation: Isolation, out: BatchOutcome) -> list[_Row]:
        if not rows:
            return []
        if isolation is Isolation.NONE:
            self._write_rows(plan, rows)
            return rows
        if isolation is Isolation.BATCH:
            try:
                with transaction.atomic(using=plan.using):
                    self._write_rows(plan, rows)
                return rows
            except RETRY_ON:
                pass
        written = []
        for row in rows:
            try:
                with transaction.atomic(using=plan.using):
                    self._write_rows(plan, [row])
                written.append(row)
            except ValidationError as exc:
                out.fail(row.pk, [RowError(row.pk, n, tuple(m)) for n, m in _messages(exc).items()])
            except RETRY_ON as exc:
                out.fail(row.pk, [RowError(pk=row.pk, field=None, messages=(describe_db_error(exc),))])
        return written

    def _write_rows(self, plan: _Plan, rows: Sequence[_Row]) -> None:
        plain_rows = [row for row in rows if row.plain_changed]
        if plain_rows and plan.strategy is WriteStrategy.PER_OBJECT:
            update_fields = [*plan.values, *(f.name for f in plan.auto_now)]
            for row in plain_rows:
                assert row.instance is not None
                row.instance.save(using=plan.using, update_fields=update_fields)
        elif plain_rows:
            update = {**plan.values, **auto_now_values(plan.auto_now)}
            plan.model._base_manager.using(plan.using).filter(pk__in=[row.pk for row in plain_rows]).update(
                **update
            )
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
        listed = len({e.pk for e in outcome.errors})
        if listed < outcome.failed:
            message += f" Only the first {len(outcome.errors)} errors are listed."
        return BulkResult(
            success=success,
            success_records=outcome.succeeded,
            errors=tuple(outcome.errors),
            total=outcome.total,
            changed=outcome.changed,
            dry_run=context.dry_run,
            examples=tuple(outcome.examples),
            message=message,
        )
