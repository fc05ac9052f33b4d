"""The default bulk delete service: same selection freezing, batching, modes and progress.

Each batch is one ``QuerySet.delete()``, so Django's collector handles cascades and sends
``pre_delete``/``post_delete`` where receivers exist. A row that ``PROTECT`` or ``RESTRICT``
keeps alive is reported with what protects it; in per-row mode the rest of its batch is
deleted, in all-or-nothing mode nothing is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import DatabaseError, models, transaction
from django.db.models import ProtectedError, QuerySet, RestrictedError

from powercrud.bulk import ledger, lifecycle
from powercrud.bulk.codec import sorted_values, to_json
from powercrud.bulk.db_errors import describe_db_error, is_run_error
from powercrud.bulk.keys import in_batch
from powercrud.bulk.m2m import link_edit, read_links
from powercrud.bulk.restore import forward_links, link_labels, restore_batch
from powercrud.bulk.runner import (
    BatchOutcome,
    Isolation,
    ProcessBatch,
    ProgressCallback,
    RunOutcome,
    capped_errors_note,
    check_context,
    freeze_pks,
    run_batches,
    write_alias,
)
from powercrud.bulk.types import BulkContext, BulkResult, RowError, summarise
from powercrud.bulk.undo import is_undo

RETRY_ON: tuple[type[BaseException], ...] = (DatabaseError,)
"""What a row's delete may raise as that row's refusal (``ProtectedError`` and ``RestrictedError``
included); ``is_run_error()`` ones still propagate."""


def describe_protection(model: type[models.Model], pk: Any, exc: BaseException) -> str:
    """Why row ``pk`` cannot be deleted, naming the related rows and relations that keep it."""
    if isinstance(exc, ProtectedError):
        blockers: Iterable[models.Model] = exc.protected_objects
        how = "protected"
    elif isinstance(exc, RestrictedError):
        blockers = exc.restricted_objects
        how = "restricted"
    else:
        return describe_db_error(exc, model)
    groups: dict[type[models.Model], list[models.Model]] = {}
    for obj in sorted(blockers, key=lambda o: (type(o).__name__, str(o.pk).zfill(40))):
        groups.setdefault(type(obj), []).append(obj)
    parts = []
    for blocker_model, objs in groups.items():
        meta = blocker_model._meta
        noun = meta.verbose_name if len(objs) == 1 else meta.verbose_name_plural
        relations = [
            f"{blocker_model.__name__}.{f.name}"
            for f in meta.concrete_fields
            if f.is_relation and f.related_model is not None and issubclass(model, f.related_model)
        ]
        shown = ", ".join(f"“{obj}”" for obj in objs[:3]) + (" …" if len(objs) > 3 else "")
        through = f" through {', '.join(relations)}" if relations else ""
        parts.append(f"{len(objs)} {noun} ({shown}){through}")
    return (
        f"{str(model._meta.verbose_name).capitalize()} {pk} cannot be deleted: it is still used by "
        f"{'; '.join(parts)} ({how})."
    )


def _record(recorder: ledger.RowRecorder, model: type[models.Model], using: str, rows: QuerySet[Any]) -> None:
    """Tell the ledger what the rows about to be deleted hold: every concrete field, and the
    links of the model's own many-to-many fields (read once per field), so an undo can
    re-create them."""
    names = [f.name for f in model._meta.concrete_fields]
    links = forward_links(model)
    if not links:
        recorder.snapshot(rows, old=names, new=None)
        return
    attnames = [f.attname for f in model._meta.concrete_fields]
    found = list(rows.order_by("pk").values_list(*attnames))
    pks = [row[names.index(model._meta.pk.name)] for row in found]
    linked = {name: read_links(link_edit(model, name, "add", frozenset()), using, pks) for name in links}
    entries = []
    for pk, row in zip(pks, found, strict=True):
        old: dict[str, Any] = dict(zip(names, row, strict=True))
        for name in links:
            old[name] = sorted_values(linked[name].get(pk, frozenset()))
        entries.append(ledger.Entry(pk, ledger.CHANGED, old=to_json(old)))
    recorder.record(entries)


class BulkDeleteService:
    """Deletes a selection in batches. Subclass to change ``batch_queryset`` or the messages."""

    max_reported_errors: int = 10_000

    def apply(
        self,
        *,
        queryset: QuerySet[Any],
        context: BulkContext,
        progress_callback: ProgressCallback | None = None,
    ) -> BulkResult:
        """Delete every row of ``queryset``; returns the ``BulkResult``."""
        model = queryset.model
        check_context(model, context, "delete")
        using = write_alias(queryset)
        process: ProcessBatch
        if is_undo(context):  # re-create what a delete removed (see powercrud.bulk.restore)
            pks = ledger.active().source_pks()
            process = lambda batch, isolation: restore_batch(  # noqa: E731
                model, using, batch, isolation, context.dry_run
            )
        else:
            pks = freeze_pks(queryset, using)
            process = lambda batch, isolation: self._process(  # noqa: E731
                model, using, batch, isolation, context.dry_run
            )
        outcome = run_batches(
            pks=pks,
            context=context,
            using=using,
            process=process,
            retry_on=RETRY_ON,
            describe_error=lambda exc: describe_db_error(exc, model),
            progress_callback=progress_callback,
            max_errors=self.max_reported_errors,
        )
        return self._result(model, outcome, context)

    def batch_queryset(self, model: type[models.Model], using: str, pks: Sequence[Any]) -> QuerySet[Any]:
        """The rows of one batch to delete; returns a queryset."""
        return model._base_manager.using(using).filter(in_batch(model, using, pks))

    def _delete(self, model: type[models.Model], using: str, pks: Sequence[Any]) -> tuple[int, int]:
        rows = self.batch_queryset(model, using, pks)
        recorder = ledger.active()
        if ledger.is_recording():
            _record(recorder, model, using, rows)
        _, counts = rows.delete()
        own = counts.get(model._meta.label, 0)
        links = sum(n for label, n in counts.items() if label in link_labels(model))
        recorder.note_cascade(sum(counts.values()) - own - links)
        return own, sum(counts.values()) - own

    def _process(
        self,
        model: type[models.Model],
        using: str,
        batch: Sequence[Any],
        isolation: Isolation,
        dry_run: bool = False,
    ) -> BatchOutcome:
        if not lifecycle.has_hooks(model, lifecycle.DELETE):
            return self._process_rows(model, using, batch, isolation, BatchOutcome())
        # Lifecycle hooks: the batch read as instances, before hooks may refuse rows, after
        # hooks see the rows that went (in the batch's transaction).
        out = BatchOutcome()
        found = list(self.batch_queryset(model, using, batch).order_by("pk"))
        pairs = [lifecycle.Pair(None, obj) for obj in found]
        refused = lifecycle.run(lifecycle.Event.BEFORE_DELETE, model, pairs)
        for index, errors in refused.items():
            out.fail(found[index].pk, errors)
        kept = [pair for index, pair in enumerate(pairs) if index not in refused]
        if refused and not kept:
            return out
        self._process_rows(model, using, [pair.pk for pair in kept], isolation, out)
        gone = [pair for pair in kept if pair.pk not in out.failed_pks]
        if gone and not dry_run:
            lifecycle.run(lifecycle.Event.AFTER_DELETE, model, gone)
        return out

    def _process_rows(
        self,
        model: type[models.Model],
        using: str,
        batch: Sequence[Any],
        isolation: Isolation,
        out: BatchOutcome,
    ) -> BatchOutcome:
        if isolation is Isolation.NONE:
            out.succeeded, out.extra = self._delete(model, using, batch)
            out.changed = out.succeeded
            return out
        if isolation is Isolation.BATCH:
            try:
                with transaction.atomic(using=using):
                    out.succeeded, out.extra = self._delete(model, using, batch)
                out.changed = out.succeeded
                return out
            except RETRY_ON as exc:
                if is_run_error(exc):
                    raise
        for pk in batch:
            try:
                with transaction.atomic(using=using):
                    deleted, cascaded = self._delete(model, using, [pk])
            except RETRY_ON as exc:
                if is_run_error(exc):
                    raise
                message = describe_protection(model, pk, exc)
                out.fail(pk, [RowError(pk=pk, field=None, messages=(message,))])
                continue
            out.succeeded += deleted
            out.changed += deleted
            out.extra += cascaded
        return out

    def _result(self, model: type[models.Model], outcome: RunOutcome, context: BulkContext) -> BulkResult:
        success = outcome.failed == 0
        message = summarise(
            success=success,
            success_records=outcome.succeeded,
            failed=outcome.failed,
            total=outcome.total,
            changed=None,
            dry_run=context.dry_run,
            atomic=context.atomic,
            verb="Deleted",
        )
        gone = outcome.total - outcome.succeeded - outcome.failed
        if gone > 0 and not outcome.rolled_back:
            message += f" {gone} had already been deleted."
        if outcome.extra:
            message += f" {outcome.extra} related objects were removed with them."
        message += capped_errors_note(outcome)
        return BulkResult(
            success=success,
            success_records=outcome.succeeded,
            errors=tuple(outcome.errors),
            total=outcome.total,
            changed=outcome.changed,
            dry_run=context.dry_run,
            message=message,
            failed=outcome.failed,
        )
