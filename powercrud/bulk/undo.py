"""Undo of a bulk edit: every row the run changed gets back the values it had before.

An undo is a bulk update whose new values differ per row: they come from the ledger of the
run being undone (``ledger.active().earlier(batch)``). Per batch:

* the rows are read once (values, or instances when ``save()``, signals or the service's
  ``validate_row`` must see them), with their current many-to-many links;
* a row whose current values are no longer what the run wrote is a **conflict**: left alone
  and recorded with what it holds now (and, when the ledger knows, the later run that
  changed it);
* with no per-row code to run (set-based writes, no hooks, no many-to-many), a batch with no
  conflict is written back by the ledger in the database alone
  (``RowRecorder.undo_in_place()``: an ``INSERT ... SELECT`` of its entries and one
  ``UPDATE ... FROM`` the ledger);
* otherwise the rows are written back: ``save(update_fields=...)`` per row on the per-object path,
  else one ``UPDATE ... FROM`` the batch's old values (``setwise.update_each()``), and the
  links of each many-to-many field moved back set-based.

The service's hooks (``validate_row``, ``before_batch``, ``after_batch``) run as for any
edit, and ``context.extra`` says ``source_action="undo"`` and ``source_run``, so application
rules (audit, derived fields) run again for the undo.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import models

from powercrud.bulk import ledger, lifecycle
from powercrud.bulk.codec import sorted_values, to_json
from powercrud.bulk.keys import in_batch
from powercrud.bulk.m2m import M2MEdit, link_edit, read_links
from powercrud.bulk.plan import validation_messages
from powercrud.bulk.runner import BatchOutcome, Isolation, write_isolated
from powercrud.bulk.setwise import update_each
from powercrud.bulk.strategies import WriteStrategy, auto_now_fields, auto_now_values
from powercrud.bulk.types import BulkContext, BulkHookError, RowChange, RowError

if TYPE_CHECKING:
    from powercrud.bulk.service import BulkUpdateService


def is_undo(context: BulkContext) -> bool:
    """True when ``context`` is the run of an undo."""
    return context.extra.get("source_action") == "undo"


@dataclass(frozen=True)
class UndoPlan:
    """What an undo of ``fields`` on ``model`` needs, decided once per run."""

    model: type[models.Model]
    using: str
    context: BulkContext
    plain: tuple[str, ...]
    m2m: tuple[str, ...]
    attnames: Mapping[str, str]
    strategy: WriteStrategy
    instances: bool
    auto_now: tuple[models.Field[Any, Any], ...]
    lifecycle: bool = False  # update hooks registered (powercrud.bulk.lifecycle)

    @property
    def source_run(self) -> Any:
        return self.context.extra.get("source_run")


def plan_undo(
    service: BulkUpdateService,
    model: type[models.Model],
    using: str,
    names: Sequence[str],
    context: BulkContext,
) -> UndoPlan:
    """The ``UndoPlan`` for undoing an edit of ``names``."""
    plain = tuple(n for n in names if not model._meta.get_field(n).many_to_many)
    m2m = tuple(n for n in names if n not in plain)
    strategy = service.choose_strategy(model, list(names))
    hooks = service._overrides("validate_row")
    hooked = lifecycle.has_hooks(model, lifecycle.UPDATE)
    return UndoPlan(
        model=model,
        using=using,
        context=context,
        plain=plain,
        m2m=m2m,
        attnames=MappingProxyType({n: model._meta.get_field(n).attname for n in plain}),  # type: ignore[union-attr]
        strategy=strategy,
        instances=strategy is WriteStrategy.PER_OBJECT or hooks or hooked,
        auto_now=auto_now_fields(model, plain) if plain else (),
        lifecycle=hooked,
    )


@dataclass
class _Row:
    pk: Any
    instance: models.Model | None
    current: dict[str, Any]
    target: dict[str, Any]
    before: models.Model | None = None  # the instance as read, for lifecycle hooks' old

    def change(self) -> RowChange:
        return RowChange(pk=self.pk, old=self.current, new=self.target)


def _m2m_edit(model: type[models.Model], name: str) -> M2MEdit:
    return link_edit(model, name, "replace", frozenset())


def _read(plan: UndoPlan, batch: Sequence[Any]) -> dict[Any, tuple[models.Model | None, dict[str, Any]]]:
    rows = (
        plan.model._base_manager.using(plan.using)
        .filter(in_batch(plan.model, plan.using, batch))
        .order_by("pk")
    )
    found: dict[Any, tuple[models.Model | None, dict[str, Any]]] = {}
    if plan.instances:
        for obj in rows:
            found[obj.pk] = (obj, {n: getattr(obj, plan.attnames[n]) for n in plan.plain})
    else:
        attnames = [plan.attnames[n] for n in plan.plain]
        for pk, *values in rows.values_list("pk", *attnames):
            found[pk] = (None, dict(zip(plan.plain, values, strict=True)))
    for name in plan.m2m:
        links = read_links(_m2m_edit(plan.model, name), plan.using, list(found))
        for pk, (_, current) in found.items():
            current[name] = tuple(sorted_values(links.get(pk, frozenset())))
    return found


def _same(plan: UndoPlan, name: str, current: Any, stored: Any) -> bool:
    if name in plan.m2m:
        return {str(v) for v in current} == {str(v) for v in (stored or ())}
    return bool(current == ledger.stored_value(plan.model, name, stored))


def process_undo(
    service: BulkUpdateService, plan: UndoPlan, batch: Sequence[Any], isolation: Isolation
) -> BatchOutcome:
    """Undo one batch (see the module docs)."""
    out = BatchOutcome()
    recorder = ledger.active()
    if _in_place(service, plan, isolation):
        done = recorder.undo_in_place(
            plan.model, plan.using, batch, plan.plain, auto_now_values(plan.auto_now)
        )
        if done is not None:
            out.succeeded, out.changed = done
            return out
    earlier = recorder.earlier(batch)
    candidates: list[_Row] = []
    conflicts: list[tuple[Any, dict[str, Any], list[str]]] = []
    for pk, (instance, current) in _read(plan, batch).items():
        entry = earlier.get(pk)
        if entry is None or entry.outcome != ledger.CHANGED or entry.old is None:
            out.succeeded += 1
            continue
        wrote = entry.new or {}
        moved = [
            name for name in (*plan.plain, *plan.m2m) if not _same(plan, name, current[name], wrote.get(name))
        ]
        if moved:
            conflicts.append((pk, current, moved))
            out.succeeded += 1  # left alone on purpose: not a failure
            out.extra += 1
            continue
        target = {name: ledger.stored_value(plan.model, name, entry.old.get(name)) for name in plan.plain}
        target.update({name: tuple(entry.old.get(name) or ()) for name in plan.m2m})
        if target == current:
            out.succeeded += 1
            continue
        candidates.append(_Row(pk, instance, current, target))
    candidates = _checked(service, plan, candidates, out)
    written = _write(plan, candidates, isolation, out)
    out.succeeded += len(written)
    out.changed += len(written)
    changes = [row.change() for row in written]
    out.examples.extend(changes[:5])
    recorder.record(
        [ledger.Entry(c.pk, ledger.CHANGED, old=to_json(c.old), new=to_json(c.new)) for c in changes]
        + _conflict_entries(plan, conflicts)
    )
    if written and service._overrides("after_batch") and not plan.context.dry_run:
        service.after_batch(changes, plan.context)
    if written and plan.lifecycle and not plan.context.dry_run:
        pairs = [lifecycle.Pair(row.instance, row.before) for row in written]
        lifecycle.run(lifecycle.Event.AFTER_UPDATE, plan.model, pairs)
    return out


def _in_place(service: BulkUpdateService, plan: UndoPlan, isolation: Isolation) -> bool:
    """True when no Python code may see the rows: set-based writes of plain fields only, no
    hooks, and a first attempt (a replay names failing rows one by one)."""
    hooks = any(service._overrides(name) for name in ("validate_row", "before_batch", "after_batch"))
    return (
        plan.strategy is WriteStrategy.SET_BASED
        and not plan.m2m
        and not hooks
        and not plan.instances
        and isolation is Isolation.NONE
        and not plan.context.dry_run
    )


def _conflict_entries(
    plan: UndoPlan, conflicts: list[tuple[Any, dict[str, Any], list[str]]]
) -> list[ledger.Entry]:
    if not conflicts:
        return []
    later = ledger.active().later_changes([pk for pk, _, _ in conflicts])
    entries = []
    for pk, current, moved in conflicts:
        labels = ", ".join(str(plan.model._meta.get_field(n).verbose_name) for n in moved)  # type: ignore[union-attr]
        by = f" by run #{later[pk]}" if pk in later else ""
        message = f"Changed since run #{plan.source_run}{by} ({labels}); left as it is."
        entries.append(
            ledger.Entry(pk, ledger.CONFLICT, old=to_json(current), errors=(RowError(pk, None, (message,)),))
        )
    return entries


def _checked(service: BulkUpdateService, plan: UndoPlan, rows: list[_Row], out: BatchOutcome) -> list[_Row]:
    """The rows ``validate_row`` and ``before_batch`` let through; the others fail."""
    kept = []
    for row in rows:
        if row.instance is not None:
            if plan.lifecycle:
                row.before = lifecycle.snapshot(row.instance)
            for name in plan.plain:
                setattr(row.instance, plan.attnames[name], row.target[name])
            if service._overrides("validate_row"):
                try:
                    service.validate_row(row.instance, MappingProxyType(dict(row.target)), plan.context)
                except (ValidationError, BulkHookError) as exc:
                    out.fail(row.pk, _errors(row.pk, exc))
                    continue
        kept.append(row)
    if kept and plan.lifecycle:
        pairs = [lifecycle.Pair(row.instance, row.before) for row in kept]
        refused = lifecycle.run(lifecycle.Event.BEFORE_UPDATE, plan.model, pairs)
        for index, errors in refused.items():
            out.fail(kept[index].pk, errors)
        kept = [row for index, row in enumerate(kept) if index not in refused]
    if kept and service._overrides("before_batch"):
        try:
            service.before_batch([row.change() for row in kept], plan.context)
        except (ValidationError, BulkHookError) as exc:
            for row in kept:
                out.fail(row.pk, _errors(row.pk, exc))
            return []
    return kept


def _errors(pk: Any, exc: ValidationError | BulkHookError) -> list[RowError]:
    if isinstance(exc, BulkHookError):
        return [RowError(pk, e.field, e.messages) for e in exc.errors] or [RowError(pk, None, (str(exc),))]
    return [RowError(pk, name, tuple(msgs)) for name, msgs in validation_messages(exc).items()]


def _write(plan: UndoPlan, rows: list[_Row], isolation: Isolation, out: BatchOutcome) -> list[_Row]:
    from powercrud.bulk.service import RETRY_ON, refusal

    return write_isolated(
        rows,
        isolation,
        plan.using,
        lambda chunk: _write_rows(plan, chunk),
        lambda row, exc: out.fail(row.pk, refusal(row.pk, exc, plan.model)),
        RETRY_ON,
    )


def _write_rows(plan: UndoPlan, rows: Sequence[_Row]) -> None:
    plain = [row for row in rows if any(row.target[n] != row.current[n] for n in plan.plain)]
    stamps = auto_now_values(plan.auto_now)
    if plain and plan.strategy is WriteStrategy.PER_OBJECT:
        update_fields = [*plan.plain, *(f.name for f in plan.auto_now)]
        for row in plain:
            assert row.instance is not None
            row.instance.save(using=plan.using, update_fields=update_fields)
    elif plain:
        rows_values = [(row.pk, [row.target[n] for n in plan.plain]) for row in plain]
        update_each(plan.model, plan.using, plan.plain, rows_values, also=dict(stamps))
    for name in plan.m2m:
        _restore_links(plan, _m2m_edit(plan.model, name), name, rows)


def _restore_links(plan: UndoPlan, edit: M2MEdit, name: str, rows: Sequence[_Row]) -> None:
    through = edit.through._base_manager.using(plan.using)
    drop = models.Q()
    add = []
    for row in rows:
        before = {str(v): v for v in row.current[name]}
        after = {str(v): v for v in row.target[name]}
        gone = [before[k] for k in before.keys() - after.keys()]
        if gone:
            drop |= models.Q(**{edit.source: row.pk, f"{edit.target}__in": gone})
        add += [
            edit.through(**{edit.source: row.pk, edit.target: after[k]}) for k in after.keys() - before.keys()
        ]
    if drop:
        through.filter(drop).delete()
    if add:
        through.bulk_create(add, ignore_conflicts=True)
