"""The worker-safe bulk update hook: a backend class named by dotted path.

A view names its backend with ``bulk_update_persistence_backend_path``; the sync view and
the async worker both resolve it with ``resolve_backend_class()`` and call it through
``run_bulk_update()``, so the two modes share one write path and one set of guarantees.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import QuerySet

from powercrud.bulk import ledger, messages
from powercrud.bulk.delete import BulkDeleteService
from powercrud.bulk.importing import ImportService
from powercrud.bulk.importundo import undo_import
from powercrud.bulk.request import BulkRequest
from powercrud.bulk.runner import ProgressCallback, write_alias
from powercrud.bulk.service import BulkUpdateService
from powercrud.bulk.types import BulkContext, BulkResult, RowError

__all__ = [
    "BulkUpdatePersistenceBackend",
    "DefaultBulkUpdatePersistenceBackend",
    "ProgressCallback",
    "Write",
    "backend_for",
    "build_backend",
    "check_backend_path",
    "resolve_backend_class",
    "run_bulk_delete",
    "run_bulk_update",
    "run_request",
]


class BulkUpdatePersistenceBackend:
    """Base class for bulk update backends: importable, worker-safe, never given a request.

    Subclass it and implement ``persist_bulk_update()``. ``config`` is optional plain data
    the caller may pass (for example from settings).
    """

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config: Mapping[str, Any] = dict(config or {})

    def scope_queryset(self, queryset: QuerySet[Any], *, context: BulkContext) -> QuerySet[Any]:
        """The rows of ``queryset`` this run may still write, decided from ``context`` alone.

        Called in both modes inside the run's transaction, before any write (bulk delete too):
        in the request after the view's ``get_queryset()``, on a worker over the rows locked at
        submit, so a row that left the user's scope since then is left alone and reported.
        Default: every row.
        """
        return queryset

    def persist_bulk_update(
        self,
        *,
        queryset: QuerySet[Any],
        bulk_fields: Sequence[str],
        fields_to_update: Sequence[str],
        field_data: Mapping[str, Any],
        context: BulkContext,
        progress_callback: ProgressCallback | None = None,
    ) -> BulkResult | Mapping[str, Any]:
        """Write the bulk update; returns a ``BulkResult`` or the plain dict form."""
        raise NotImplementedError(
            f"{type(self).__qualname__} must implement persist_bulk_update(*, queryset, "
            "bulk_fields, fields_to_update, field_data, context, progress_callback=None) and "
            "return a BulkResult or {'success': ..., 'success_records': ..., 'errors': [...]}; "
            "or subclass DefaultBulkUpdatePersistenceBackend, which calls BulkUpdateService."
        )


class DefaultBulkUpdatePersistenceBackend(BulkUpdatePersistenceBackend):
    """Runs ``service_class().apply(...)``; set ``service_class`` to use your own service."""

    service_class: type[BulkUpdateService] = BulkUpdateService

    def persist_bulk_update(
        self,
        *,
        queryset: QuerySet[Any],
        bulk_fields: Sequence[str],
        fields_to_update: Sequence[str],
        field_data: Mapping[str, Any],
        context: BulkContext,
        progress_callback: ProgressCallback | None = None,
    ) -> BulkResult:
        """Write the bulk update with ``service_class``; returns its ``BulkResult``."""
        return self.service_class().apply(
            queryset=queryset,
            bulk_fields=bulk_fields,
            fields_to_update=fields_to_update,
            field_data=field_data,
            context=context,
            progress_callback=progress_callback,
        )


@functools.lru_cache(maxsize=64)
def resolve_backend_class(path: str) -> type[BulkUpdatePersistenceBackend]:
    """The backend class at dotted ``path``; raises ``ImproperlyConfigured`` saying what is wrong."""
    module_path, _, name = path.rpartition(".") if isinstance(path, str) else ("", "", "")
    if not module_path or not name:
        raise ImproperlyConfigured(
            f"Bulk update backend path {path!r} is not a dotted path; use 'package.module.ClassName'."
        )
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"Bulk update backend path {path!r}: module {module_path!r} could not be imported "
            f"({type(exc).__name__}: {exc})."
        ) from exc
    try:
        backend = getattr(module, name)
    except AttributeError:
        raise ImproperlyConfigured(
            f"Bulk update backend path {path!r}: module {module_path!r} has no attribute {name!r}."
        ) from None
    if not (isinstance(backend, type) and issubclass(backend, BulkUpdatePersistenceBackend)):
        raise ImproperlyConfigured(
            f"Bulk update backend path {path!r} names {backend!r}, which is not a subclass of "
            "powercrud.bulk_persistence.BulkUpdatePersistenceBackend."
        )
    return backend


def check_backend_path(path: str) -> str | None:
    """The error ``resolve_backend_class(path)`` would raise, as text; None when it resolves."""
    try:
        resolve_backend_class(path)
    except ImproperlyConfigured as exc:
        return str(exc)
    return None


def _guarded(result: BulkResult, context: BulkContext) -> BulkResult:
    """``result`` made truthful about what the rollback left in the database."""
    if context.dry_run and not result.dry_run:
        result = dataclasses.replace(result, dry_run=True, message=messages.check_only(result.message))
    partial = result.success_records or result.changed
    if context.atomic and not result.success and not context.dry_run and partial:
        result = dataclasses.replace(
            result,
            success_records=0,
            changed=0,
            examples=(),
            message=messages.all_or_nothing_rolled_back(result.message),
        )
    return result


Scope = Callable[..., QuerySet[Any]]


def _out_of_scope(
    queryset: QuerySet[Any], scoped: QuerySet[Any], context: BulkContext
) -> tuple[RowError, ...]:
    """A row error for every row of ``queryset`` that ``scoped`` leaves out."""
    if scoped is queryset:
        return ()
    if scoped.model is not queryset.model:
        raise TypeError(
            f"scope_queryset() must return a queryset of {queryset.model._meta.label}, "
            f"not of {scoped.model._meta.label}."
        )
    message = messages.out_of_scope(
        str(queryset.model._meta.verbose_name), context.operation, queued=context.mode == "async"
    )
    left_out = queryset.exclude(pk__in=scoped.values("pk")).order_by("pk").values_list("pk", flat=True)
    refused = tuple(RowError(pk=pk, field=None, messages=(message,)) for pk in left_out.iterator())
    recorder = ledger.active()
    for error in refused:
        recorder.skip(error.pk, (error,))
    return refused


def _scoped_run(
    queryset: QuerySet[Any],
    scope: Scope | None,
    context: BulkContext,
    run: Callable[[QuerySet[Any]], Any],
) -> BulkResult:
    """``run`` over the rows ``scope`` keeps; rows it leaves out are row errors of the result."""
    scoped = scope(queryset, context=context) if scope is not None else queryset
    refused = _out_of_scope(queryset, scoped, context)
    verb = messages.done_verb(context.operation)
    if not refused:
        return BulkResult.coerce(run(scoped), atomic=context.atomic, verb=verb)
    if context.atomic:  # one row that may not be written: nothing is
        result = BulkResult(success=False, success_records=0, total=scoped.count(), dry_run=context.dry_run)
    elif scoped.exists():
        result = BulkResult.coerce(run(scoped), atomic=context.atomic, verb=verb)
    else:
        result = BulkResult(success=True, success_records=0, dry_run=context.dry_run)
    failed = result.failed_records + len(refused)  # the refused rows were not part of the run
    total = result.total + len(refused)
    message = messages.summarise(
        success=False,
        success_records=result.success_records,
        failed=failed,
        total=total,
        changed=None if context.atomic else result.changed,
        dry_run=context.dry_run,
        atomic=context.atomic,
        verb=verb,
    )
    return dataclasses.replace(
        result,
        success=False,
        errors=(*result.errors, *refused),
        failed=failed,
        total=total,
        message=message,
    )


Write = Callable[[QuerySet[Any]], Any]
"""Writes the rows it is given; returns a ``BulkResult`` or the plain dict form."""


def _guarded_run(
    queryset: QuerySet[Any], context: BulkContext, scope: Scope | None, write: Write
) -> BulkResult:
    """``write`` over the rows ``scope`` keeps, inside a transaction that no run can misuse.

    The transaction is rolled back when ``context.dry_run`` (even if the writer ignored the
    flag) and when ``context.atomic`` and the result is not a success, so no backend can leave
    a partial write in all-or-nothing mode. Exceptions propagate after the rollback.
    """
    with transaction.atomic(using=write_alias(queryset)):
        result = _scoped_run(queryset, scope, context, write)
        if context.dry_run or (context.atomic and not result.success):
            transaction.set_rollback(True, using=write_alias(queryset))
    return _guarded(result, context)


def build_backend(path: str | None, config: Mapping[str, Any] | None) -> BulkUpdatePersistenceBackend:
    """The backend class at dotted ``path`` (default: ``DefaultBulkUpdatePersistenceBackend``),
    made with ``config``."""
    backend_class = resolve_backend_class(path) if path else DefaultBulkUpdatePersistenceBackend
    return backend_class(dict(config or {}) or None)


def backend_for(request: BulkRequest) -> BulkUpdatePersistenceBackend:
    """The backend ``request`` names (``backend_path`` and ``backend_config``), else the default."""
    return build_backend(request.backend_path, request.backend_config)


def run_request(
    request: BulkRequest,
    *,
    queryset: QuerySet[Any],
    context: BulkContext,
    backend: BulkUpdatePersistenceBackend | None = None,
    progress_callback: ProgressCallback | None = None,
    write: Write | None = None,
) -> BulkResult:
    """Run ``request`` over ``queryset``: the one call a sync view and a worker both make.

    ``backend`` defaults to ``backend_for(request)``; its ``scope_queryset()`` narrows the rows
    in both modes. Without ``write`` an edit goes to ``backend.persist_bulk_update()`` and a
    delete to ``BulkDeleteService``; a view passes its own hook as ``write`` when it overrides
    ``persist_bulk_update()`` or ``persist_bulk_delete()``.
    """
    backend = backend if backend is not None else backend_for(request)
    if write is None and request.operation == "import" and request.source_action == "undo":
        # The rows the import created or updated, each given back what it had.
        write = lambda rows: undo_import(rows, context, progress_callback)  # noqa: E731
        return _guarded_run(queryset, context, backend.scope_queryset, write)
    if write is None and request.operation == "import":
        # The rows come from the file: ``queryset`` is only the scope an upsert may update.
        write = _import_writer(request, backend, context, progress_callback)
        return _guarded_run(queryset, context, None, write)
    if write is None and request.operation == "delete":
        write = _delete_writer(BulkDeleteService(), context, progress_callback)
    elif write is None:
        write = _update_writer(
            backend,
            bulk_fields=request.bulk_fields,
            fields_to_update=request.fields_to_update,
            field_data=request.field_data,
            context=context,
            progress_callback=progress_callback,
        )
    return _guarded_run(queryset, context, backend.scope_queryset, write)


def _update_writer(
    backend: BulkUpdatePersistenceBackend,
    *,
    bulk_fields: Sequence[str],
    fields_to_update: Sequence[str],
    field_data: Mapping[str, Any],
    context: BulkContext,
    progress_callback: ProgressCallback | None,
) -> Write:
    """The backend's ``persist_bulk_update()`` with plain lists and a dict, as the contract says."""
    return lambda rows: backend.persist_bulk_update(
        queryset=rows,
        bulk_fields=list(bulk_fields),
        fields_to_update=list(fields_to_update),
        field_data=dict(field_data),
        context=context,
        progress_callback=progress_callback,
    )


def _import_writer(
    request: BulkRequest,
    backend: BulkUpdatePersistenceBackend,
    context: BulkContext,
    progress_callback: ProgressCallback | None,
) -> Write:
    """The import of ``request``'s rows; an upsert may update only the rows the backend's
    ``scope_queryset()`` keeps of the queryset it is given."""
    return lambda rows: ImportService().apply(
        model=rows.model,
        spec=request.import_spec,
        rows=request.import_rows,
        context=context,
        scope=backend.scope_queryset(rows, context=context),
        allowed=request.bulk_fields or None,
        progress_callback=progress_callback,
    )


def _delete_writer(
    service: BulkDeleteService, context: BulkContext, progress_callback: ProgressCallback | None
) -> Write:
    return lambda rows: service.apply(queryset=rows, context=context, progress_callback=progress_callback)


def run_bulk_update(
    backend: BulkUpdatePersistenceBackend,
    *,
    queryset: QuerySet[Any],
    bulk_fields: Sequence[str],
    fields_to_update: Sequence[str],
    field_data: Mapping[str, Any],
    context: BulkContext,
    progress_callback: ProgressCallback | None = None,
) -> BulkResult:
    """Call ``backend`` over ``queryset``, guarded as ``run_request()`` guards a run.

    The backend writes the rows its ``scope_queryset()`` keeps; the others are row errors.
    Dry runs and failed all-or-nothing runs are rolled back whatever the backend did.
    """
    write = _update_writer(
        backend,
        bulk_fields=bulk_fields,
        fields_to_update=fields_to_update,
        field_data=field_data,
        context=context,
        progress_callback=progress_callback,
    )
    return _guarded_run(queryset, context, backend.scope_queryset, write)


def run_bulk_delete(
    *,
    queryset: QuerySet[Any],
    context: BulkContext,
    progress_callback: ProgressCallback | None = None,
    service: BulkDeleteService | None = None,
    scope: Scope | None = None,
) -> BulkResult:
    """Delete the selection with ``service`` (default ``BulkDeleteService``), guarded the same way.

    ``scope``: a backend's ``scope_queryset``; rows it leaves out are not deleted (row errors).
    """
    write = _delete_writer(service or BulkDeleteService(), context, progress_callback)
    return _guarded_run(queryset, context, scope, write)
