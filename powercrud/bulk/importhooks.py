"""Lifecycle hooks (``bulk.lifecycle``) around one batch of an import (``bulk.importing``)
and of its undo (``bulk.importundo``: created rows deleted, updated rows restored).

Kept apart from the import service so it stays as it is for models without hooks: new rows
are creates (``Pair(new, None)``), rows matched on the key are updates (``Pair(new, old)``,
``old`` built from the existing row's values as read); a refused row is that row's failure
with its file line; after hooks get the rows written, not in a check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models

from powercrud.bulk import ledger, lifecycle
from powercrud.bulk.codec import json_pk
from powercrud.bulk.types import RowError

if TYPE_CHECKING:
    from powercrud.bulk.importing import _Row, _Run
    from powercrud.bulk.importundo import _Undo


def hooked(model: type[models.Model]) -> bool:
    """True when ``model`` has create or update hooks."""
    return lifecycle.has_hooks(model, (*lifecycle.CREATE, *lifecycle.UPDATE))


def _old(run: _Run, row: _Row) -> models.Model:
    assert row.existing is not None
    old = run.model(*[row.existing[attname] for attname, _ in run.fields])
    old._state.adding = False
    old._state.db = run.using
    return old


def _pairs(run: _Run, rows: list[_Row]) -> list[lifecycle.Pair]:
    return [
        lifecycle.Pair(run._instance(row), None if row.existing is None else _old(run, row)) for row in rows
    ]


def before(run: _Run, new: list[_Row], changed: list[_Row]) -> tuple[list[_Row], list[_Row]]:
    """The new and changed rows the before hooks let through; the others fail."""
    kept = []
    for event, rows in ((lifecycle.Event.BEFORE_CREATE, new), (lifecycle.Event.BEFORE_UPDATE, changed)):
        refused = lifecycle.run(event, run.model, _pairs(run, rows)) if rows else {}
        for index, errors in refused.items():
            row = rows[index]
            reasons: dict[str | None, list[str]] = {}
            for error in errors:
                reasons.setdefault(error.field, []).extend(error.messages)
            run._fail(row.pk, row.line, reasons)
        kept.append([row for index, row in enumerate(rows) if index not in refused])
    return kept[0], kept[1]


def after(run: _Run, written: list[_Row]) -> None:
    """The after hooks of the written rows (created, then updated)."""
    if run.context.dry_run:
        return
    created = [row for row in written if row.existing is None]
    updated = [row for row in written if row.existing is not None]
    for event, rows in ((lifecycle.Event.AFTER_CREATE, created), (lifecycle.Event.AFTER_UPDATE, updated)):
        if rows:
            lifecycle.run(event, run.model, _pairs(run, rows))


# --- the undo of an import (bulk.importundo) ----------------------------------------------------------

Doomed = list[tuple[models.Model, dict[str, Any]]]
Restore = list[tuple[models.Model, dict[str, Any], dict[str, Any]]]


def undo_hooked(model: type[models.Model]) -> bool:
    """True when ``model`` has delete or update hooks (an undo deletes created rows and
    restores updated ones)."""
    return lifecycle.has_hooks(model, (*lifecycle.DELETE, *lifecycle.UPDATE))


def _restored(undo: _Undo, obj: models.Model, target: dict[str, Any]) -> models.Model:
    new = lifecycle.snapshot(obj)
    for name, value in target.items():
        model_field: Any = undo.names[name]
        if not model_field.many_to_many:
            setattr(new, model_field.attname, ledger.stored_value(undo.model, name, value))
    return new


def _refuse(undo: _Undo, pk: Any, errors: list[RowError]) -> None:
    undo.failed += 1
    undo.errors.extend(errors)
    undo.recorder.fail(pk, errors)


def undo_before(
    undo: _Undo, doomed: Doomed, restore: Restore
) -> tuple[Doomed, Restore, dict[int, models.Model]]:
    """The rows to delete and to restore that ``before_delete`` and ``before_update`` let
    through (the others fail), and each row's instance as read (its ``old``), by ``id()``."""
    instances: list[models.Model] = [obj for obj, _ in doomed] + [obj for obj, _, _ in restore]
    olds = {id(obj): lifecycle.snapshot(obj) for obj in instances}
    if doomed:
        pairs = [lifecycle.Pair(None, olds[id(obj)]) for obj, _ in doomed]
        refused = lifecycle.run(lifecycle.Event.BEFORE_DELETE, undo.model, pairs)
        for index, errors in refused.items():
            _refuse(undo, doomed[index][0].pk, errors)
        doomed = [row for index, row in enumerate(doomed) if index not in refused]
    if restore:
        pairs = [lifecycle.Pair(_restored(undo, obj, target), olds[id(obj)]) for obj, _, target in restore]
        refused = lifecycle.run(lifecycle.Event.BEFORE_UPDATE, undo.model, pairs)
        for index, errors in refused.items():
            _refuse(undo, restore[index][0].pk, errors)
        restore = [row for index, row in enumerate(restore) if index not in refused]
    return doomed, restore, olds


def undo_after(
    undo: _Undo,
    olds: dict[int, models.Model],
    doomed: Doomed,
    restore: Restore,
    entries: list[ledger.Entry],
) -> None:
    """``after_delete`` for the rows deleted, ``after_update`` for those restored (``entries``:
    the batch's ledger entries of both), not in a check."""
    if undo.context.dry_run:
        return
    done = {json_pk(entry.pk) for entry in entries if entry.outcome == ledger.CHANGED}
    gone = [lifecycle.Pair(None, olds[id(obj)]) for obj, _ in doomed if json_pk(olds[id(obj)].pk) in done]
    back = [lifecycle.Pair(obj, olds[id(obj)]) for obj, _, _ in restore if json_pk(obj.pk) in done]
    if gone:
        lifecycle.run(lifecycle.Event.AFTER_DELETE, undo.model, gone)
    if back:
        lifecycle.run(lifecycle.Event.AFTER_UPDATE, undo.model, back)
