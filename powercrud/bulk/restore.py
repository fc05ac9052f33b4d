"""Undo of a bulk delete: the deleted rows re-created from the ledger of the delete.

The delete recorded every concrete field of each row it removed, and its many-to-many
links. Per batch of those rows:

* a row whose primary key is in use again is a **conflict**: left alone;
* the others are inserted with their own primary keys: one ``bulk_create()`` per batch, or
  ``save(force_insert=True)`` per row when the model overrides ``save()`` or has
  ``pre_save``/``post_save`` receivers, so signals run as they would for a create;
* their links are inserted into each through table (one ``bulk_create()`` per field).

A delete whose cascade removed other rows is not undone at all (``powercrud.jobs.ledger``
refuses it before the run), so a restore never brings back half of what went.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import models

from powercrud.bulk import ledger, lifecycle
from powercrud.bulk.codec import to_json
from powercrud.bulk.keys import in_batch
from powercrud.bulk.m2m import link_edit
from powercrud.bulk.runner import BatchOutcome, Isolation, write_isolated
from powercrud.bulk.strategies import WriteStrategy, choose_strategy
from powercrud.bulk.types import RowError


def forward_links(model: type[models.Model]) -> tuple[str, ...]:
    """The model's own many-to-many fields with automatic through tables (restored with it)."""
    return tuple(
        f.name
        for f in model._meta.many_to_many
        if f.remote_field.through is not None and f.remote_field.through._meta.auto_created
    )


def link_labels(model: type[models.Model]) -> frozenset[str]:
    """The labels of the through tables ``forward_links()`` names, as ``delete()`` counts them."""
    return frozenset(
        model._meta.get_field(name).remote_field.through._meta.label  # type: ignore[union-attr]
        for name in forward_links(model)
    )


def _instance(model: type[models.Model], old: Mapping[str, Any]) -> models.Model:
    values = {}
    for model_field in model._meta.concrete_fields:
        if model_field.name in old:
            values[model_field.attname] = ledger.stored_value(model, model_field.name, old[model_field.name])
    return model(**values)


def restore_batch(
    model: type[models.Model], using: str, batch: Sequence[Any], isolation: Isolation, dry_run: bool = False
) -> BatchOutcome:
    """Re-create the rows of ``batch`` (primary keys of deleted rows) from the ledger."""
    out = BatchOutcome()
    recorder = ledger.active()
    earlier = recorder.earlier(batch)
    present = set(
        model._base_manager.using(using).filter(in_batch(model, using, batch)).values_list("pk", flat=True)
    )
    rows: list[tuple[Any, Mapping[str, Any]]] = []
    conflicts: list[ledger.Entry] = []
    for pk in batch:
        entry = earlier.get(pk)
        if entry is None or entry.old is None:
            continue
        if pk in present:
            message = f"A {model._meta.verbose_name} with this key exists again; left as it is."
            conflicts.append(ledger.Entry(pk, ledger.CONFLICT, errors=(RowError(pk, None, (message,)),)))
            out.succeeded += 1
            out.extra += 1
            continue
        rows.append((pk, entry.old))
    made = {pk: _instance(model, old) for pk, old in rows}
    hooked = lifecycle.has_hooks(model, lifecycle.CREATE)
    if hooked:
        pairs = [lifecycle.Pair(made[pk], None) for pk, _ in rows]
        refused = lifecycle.run(lifecycle.Event.BEFORE_CREATE, model, pairs)
        for index, errors in refused.items():
            out.fail(rows[index][0], errors)
        rows = [row for index, row in enumerate(rows) if index not in refused]
    written = _write(model, using, rows, made, isolation, out)
    out.succeeded += len(written)
    out.changed += len(written)
    recorder.record(
        [ledger.Entry(pk, ledger.CHANGED, new=to_json(dict(old))) for pk, old in written] + conflicts
    )
    if hooked and written and not dry_run:
        lifecycle.run(
            lifecycle.Event.AFTER_CREATE, model, [lifecycle.Pair(made[pk], None) for pk, _ in written]
        )
    return out


def _write(
    model: type[models.Model],
    using: str,
    rows: list[tuple[Any, Mapping[str, Any]]],
    made: Mapping[Any, models.Model],
    isolation: Isolation,
    out: BatchOutcome,
) -> list[tuple[Any, Mapping[str, Any]]]:
    from powercrud.bulk.delete import RETRY_ON, describe_protection

    return write_isolated(
        rows,
        isolation,
        using,
        lambda chunk: _insert(model, using, chunk, made),
        lambda row, exc: out.fail(
            row[0], [RowError(row[0], None, (describe_protection(model, row[0], exc),))]
        ),
        RETRY_ON,
    )


def _insert(
    model: type[models.Model],
    using: str,
    rows: Sequence[tuple[Any, Mapping[str, Any]]],
    made: Mapping[Any, models.Model],
) -> None:
    objs = [made[pk] for pk, _ in rows]
    if choose_strategy(model, [f.name for f in model._meta.concrete_fields]) is WriteStrategy.PER_OBJECT:
        for obj in objs:
            obj.save(using=using, force_insert=True)
    else:
        model._base_manager.using(using).bulk_create(objs)
    for name in forward_links(model):
        edit = link_edit(model, name, "add", frozenset())
        links = [
            edit.through(**{edit.source: pk, edit.target: target})
            for pk, old in rows
            for target in old.get(name) or ()
        ]
        edit.through._base_manager.using(using).bulk_create(links, ignore_conflicts=True)
