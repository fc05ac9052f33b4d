"""Lifecycle hooks (``bulk.lifecycle``) around one batch of an import (``bulk.importing``).

Kept apart from the import service so it stays as it is for models without hooks: new rows
are creates (``Pair(new, None)``), rows matched on the key are updates (``Pair(new, old)``,
``old`` built from the existing row's values as read); a refused row is that row's failure
with its file line; after hooks get the rows written, not in a check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import models

from powercrud.bulk import lifecycle

if TYPE_CHECKING:
    from powercrud.bulk.importing import _Row, _Run


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
