"""Undo of an import: the rows it created are deleted, the rows it updated get their old values.

The rows come from the ledger of the import being undone (``ledger.active().earlier(batch)``):
a *created* entry holds the values the import wrote, a *changed* entry the old and new values
of the fields it updated. A row whose current values are no longer what the import wrote
was changed since: it is a **conflict**, left as it is and recorded with what it holds now.

Deleted rows are recorded *changed* with their values before the delete and no new values;
restored rows *changed* with the values they had and the ones they got back. When the model
has save or delete code (``strategies.choose_strategy()``), rows are deleted with ``delete()``
and restored with ``save(update_fields=...)``, so its signals fire; otherwise one
``QuerySet.delete()`` and one ``bulk_update()`` per batch. A batch the database refuses (a
protected relation, say) is done again row by row to name the rows it refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import DatabaseError, models, transaction
from django.db.models import QuerySet
from django.db.models.signals import post_delete, pre_delete

from powercrud.bulk import importhooks, ledger, messages
from powercrud.bulk.codec import sorted_values, to_json
from powercrud.bulk.db_errors import describe_db_error, is_run_error
from powercrud.bulk.runner import ProgressCallback, batches, freeze_pks
from powercrud.bulk.strategies import WriteStrategy, choose_strategy
from powercrud.bulk.types import BulkContext, BulkResult, RowError

__all__ = ["undo_import"]


class _Undo:
    def __init__(self, model: type[models.Model], using: str, context: BulkContext) -> None:
        self.model = model
        self.using = using
        self.context = context
        self.source = context.extra.get("source_run")
        self.recorder = ledger.active()
        self.deleted = self.restored = self.conflicts = 0
        self.errors: list[RowError] = []
        self.failed = 0
        self.names = {f.name: f for f in model._meta.get_fields() if isinstance(f, models.Field)}
        self.hooked = importhooks.undo_hooked(model)
        self.has_code = (
            choose_strategy(model, [f.name for f in model._meta.concrete_fields]) is WriteStrategy.PER_OBJECT
            or pre_delete.has_listeners(model)
            or post_delete.has_listeners(model)
        )

    def current(self, instance: models.Model, names: Sequence[str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in names:
            model_field: Any = self.names[name]
            if model_field.many_to_many:
                values[name] = tuple(sorted_values(getattr(instance, name).values_list("pk", flat=True)))
            else:
                values[name] = getattr(instance, model_field.attname)
        return values

    def same(self, name: str, current: Any, stored: Any) -> bool:
        if self.names[name].many_to_many:
            return {str(v) for v in current} == {str(v) for v in (stored or ())}
        return bool(current == ledger.stored_value(self.model, name, stored))

    def batch(self, pks: Sequence[Any]) -> None:
        earlier = self.recorder.earlier(pks)
        found = {obj.pk: obj for obj in self.model._base_manager.using(self.using).filter(pk__in=pks)}
        doomed: list[tuple[models.Model, dict[str, Any]]] = []
        restore: list[tuple[models.Model, dict[str, Any], dict[str, Any]]] = []
        entries: list[ledger.Entry] = []
        for pk in pks:
            entry, instance = earlier.get(pk), found.get(pk)
            if entry is None or instance is None or entry.new is None:
                continue
            names = [name for name in entry.new if name in self.names]
            current = self.current(instance, names)
            moved = [name for name in names if not self.same(name, current[name], entry.new[name])]
            if moved:
                self.conflicts += 1
                labels = ", ".join(str(self.names[n].verbose_name) for n in moved)
                error = RowError(pk, None, (messages.import_undo_conflict(self.source, labels),))
                entries.append(ledger.Entry(pk, ledger.CONFLICT, old=to_json(current), errors=(error,)))
            elif entry.outcome == ledger.CREATED:
                doomed.append((instance, current))
            elif entry.outcome == ledger.CHANGED and entry.old is not None:
                target = {n: entry.old.get(n) for n in names}
                restore.append((instance, current, target))
        if self.hooked:  # lifecycle hooks (bulk.importhooks)
            doomed, restore, olds = importhooks.undo_before(self, doomed, restore)
        written = self._delete(doomed) + self._restore(restore)
        self.recorder.record(entries + written)
        if self.hooked:
            importhooks.undo_after(self, olds, doomed, restore, written)

    def _delete(self, rows: list[tuple[models.Model, dict[str, Any]]]) -> list[ledger.Entry]:
        if not rows:
            return []
        keyed = [(obj, obj.pk, current) for obj, current in rows]  # delete() clears an instance's key
        done = self._isolated(keyed, lambda chunk: self._delete_now([obj for obj, _, _ in chunk]), key=1)
        self.deleted += len(done)
        return [ledger.Entry(pk, ledger.CHANGED, old=to_json(current)) for _, pk, current in done]

    def _delete_now(self, objects: list[models.Model]) -> None:
        if self.has_code:
            for obj in objects:
                obj.delete(using=self.using)
        else:
            self.model._base_manager.using(self.using).filter(pk__in=[o.pk for o in objects]).delete()

    def _restore(self, rows: list[tuple[models.Model, dict[str, Any], dict[str, Any]]]) -> list[ledger.Entry]:
        if not rows:
            return []
        done = self._isolated(rows, self._restore_now, key=None)
        self.restored += len(done)
        return [
            ledger.Entry(obj.pk, ledger.CHANGED, old=to_json(current), new=to_json(target))
            for obj, current, target in done
        ]

    def _restore_now(self, rows: Sequence[tuple[models.Model, dict[str, Any], dict[str, Any]]]) -> None:
        plain: set[str] = set()
        for obj, _, target in rows:
            for name, value in target.items():
                model_field: Any = self.names[name]
                if model_field.many_to_many:
                    continue
                setattr(obj, model_field.attname, ledger.stored_value(self.model, name, value))
                plain.add(name)
        if self.has_code:
            for obj, _, target in rows:
                obj.save(using=self.using, update_fields=[n for n in target if n in plain] or None)
        elif plain:
            self.model._base_manager.using(self.using).bulk_update([obj for obj, _, _ in rows], sorted(plain))
        for obj, _, target in rows:
            for name, value in target.items():
                if self.names[name].many_to_many:
                    getattr(obj, name).set(list(value or ()))

    def _isolated(self, rows: list[Any], write: Any, *, key: int | None) -> list[Any]:
        """``write(rows)`` behind a savepoint; when refused, row by row to name the bad ones.
        Each row is a tuple whose first item is the instance; ``key``: the item holding its
        primary key (None: the instance's own)."""
        try:
            with transaction.atomic(using=self.using):
                write(rows)
            return rows
        except DatabaseError as exc:
            if is_run_error(exc):
                raise
        done = []
        for row in rows:
            try:
                with transaction.atomic(using=self.using):
                    write([row])
            except DatabaseError as exc:
                if is_run_error(exc):
                    raise
                pk = row[0].pk if key is None else row[key]
                error = RowError(pk, None, (describe_db_error(exc, self.model),))
                self.failed += 1
                self.errors.append(error)
                self.recorder.fail(pk, [error])
                continue
            done.append(row)
        return done


def undo_import(
    queryset: QuerySet[Any], context: BulkContext, progress_callback: ProgressCallback | None = None
) -> BulkResult:
    """Undo the import ``context.extra["source_run"]`` over the rows of ``queryset`` it created
    or updated (see the module docs)."""
    model = queryset.model
    using = queryset.db
    undo = _Undo(model, using, context)
    pks = freeze_pks(queryset, using)
    done = 0
    for batch in batches(pks, context.batch_size):
        undo.batch(batch)
        done += len(batch)
        if progress_callback is not None:
            progress_callback(done, len(pks))
    total = len(pks)
    message = messages.import_undo_summary(
        deleted=undo.deleted,
        restored=undo.restored,
        conflicts=undo.conflicts,
        failed=undo.failed,
        total=total,
        dry_run=context.dry_run,
        atomic=context.atomic,
    )
    return BulkResult(
        success=undo.failed == 0,
        success_records=total - undo.failed,
        errors=tuple(undo.errors),
        total=total,
        changed=undo.deleted + undo.restored,
        dry_run=context.dry_run,
        message=message,
        failed=undo.failed,
    )
