"""Bulk edit and bulk delete over the current selection: in the request, or queued on a worker.

Both roles hand the re-scoped selection queryset to one persistence path
(``persist_bulk_update`` -> backend -> service; ``persist_bulk_delete`` -> delete service),
the same one the async worker uses, inside a guard that rolls back dry runs and failed
all-or-nothing runs, even when a user's override ignores the flags. A run in the request
holds its rows for its whole transaction (``hold_selection``), so an overlapping bulk run,
in the request or queued, conflicts instead of interleaving.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from django.db import models
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils.html import escape
from django_htmx.http import trigger_client_event

from powercrud.bulk.delete import BulkDeleteService
from powercrud.bulk.display import describe_examples
from powercrud.bulk.forms import TOGGLE_PREFIX, BulkEditForm
from powercrud.jobs.launch import LaunchError, launch_bulk_task
from powercrud.bulk.types import BulkContext, BulkInputError, BulkResult
from powercrud.bulk.values import to_field_data
from powercrud.bulk_persistence import (
    BulkUpdatePersistenceBackend,
    DefaultBulkUpdatePersistenceBackend,
    resolve_backend_class,
    run_bulk_delete,
    run_bulk_update,
)
from powercrud.conf import settings as pc_settings
from powercrud.jobs.locks import LockConflict, hold_selection
from powercrud.views import Role

ProgressCallback = Callable[[int, int], None]


class _ViewHookBackend(BulkUpdatePersistenceBackend):
    """Adapts the view's sync hook to the backend contract, so one guard serves both."""

    def __init__(self, view: BulkMixin) -> None:
        super().__init__()
        self.view = view

    def scope_queryset(self, queryset: Any, *, context: Any) -> Any:
        return self.view.get_bulk_update_backend().scope_queryset(queryset, context=context)

    def persist_bulk_update(
        self,
        *,
        queryset: Any,
        bulk_fields: Any,
        fields_to_update: Any,
        field_data: Any,
        context: Any,
        progress_callback: Any = None,
    ) -> Any:
        return self.view.persist_bulk_update(
            queryset=queryset,
            fields_to_update=fields_to_update,
            field_data=field_data,
            progress_callback=progress_callback,
        )


class _ViewDeleteService:
    """Adapts the view's delete hook to the service contract, so ``run_bulk_delete`` guards it."""

    def __init__(self, view: BulkMixin) -> None:
        self.view = view

    def apply(self, *, queryset: Any, context: Any, progress_callback: Any = None) -> Any:
        return self.view.persist_bulk_delete(queryset=queryset, progress_callback=progress_callback)


class BulkMixin:
    """The BULK_EDIT and BULK_DELETE roles."""

    bulk_fields: ClassVar[Sequence[str]] = ()
    bulk_delete: ClassVar[bool] = False
    # True: all-or-nothing (any failure writes nothing). False: per row.
    bulk_atomic: ClassVar[bool] = True
    bulk_update_persistence_backend_path: ClassVar[str | None] = None
    bulk_update_persistence_backend_config: ClassVar[Mapping[str, Any] | None] = None
    # Run selections of at least ``bulk_min_async_records`` rows on django-q2 workers.
    bulk_async: ClassVar[bool] = False
    bulk_min_async_records: ClassVar[int | None] = None

    # Provided by CRUDView and SelectionMixin.
    model: Any
    request: HttpRequest
    _bulk_context: BulkContext | None = None

    @classmethod
    def has_bulk_role(cls, role: Role) -> bool:
        if role is Role.BULK_EDIT:
            return bool(cls.bulk_fields)
        if role is Role.BULK_DELETE:
            return bool(cls.bulk_delete)
        return bool(cls.bulk_fields or cls.bulk_delete)  # SELECTION

    def get_bulk_fields(self) -> list[str]:
        """The only fields bulk edit may write."""
        return list(self.bulk_fields)

    def get_bulk_choices_queryset(
        self, field_name: str, queryset: models.QuerySet[Any]
    ) -> models.QuerySet[Any]:
        """Choices offered for a foreign-key or many-to-many bulk field (default: all)."""
        return queryset

    def get_bulk_form(self, data: Any = None) -> BulkEditForm:
        return BulkEditForm(
            data,
            auto_id="bulk_%s",
            model=self.model,
            bulk_fields=self.get_bulk_fields(),
            choices_hook=self.get_bulk_choices_queryset,
        )

    def get_bulk_context(self) -> BulkContext:
        """Plain execution context for the current bulk run (set by the handler)."""
        if self._bulk_context is None:
            raise RuntimeError("get_bulk_context() is only available while a bulk run is in progress.")
        return self._bulk_context

    def build_bulk_context(self, *, operation: str, selection_size: int, dry_run: bool) -> BulkContext:
        user = self.request.user
        return BulkContext(
            mode="sync",
            model_label=self.model._meta.label_lower,
            user_id=user.pk if user.is_authenticated else None,
            selection_size=selection_size,
            atomic=self.bulk_atomic,
            dry_run=dry_run,
            operation=operation,  # type: ignore[arg-type]
            batch_size=pc_settings.BULK_BATCH_SIZE,
        )

    def get_bulk_update_backend(self) -> BulkUpdatePersistenceBackend:
        """The configured backend (``bulk_update_persistence_backend_path``), else the default."""
        config = self.bulk_update_persistence_backend_config
        path = self.bulk_update_persistence_backend_path
        backend_class = resolve_backend_class(path) if path else DefaultBulkUpdatePersistenceBackend
        return backend_class(config)

    def persist_bulk_update(
        self,
        *,
        queryset: models.QuerySet[Any],
        fields_to_update: Sequence[str],
        field_data: Mapping[str, Any],
        progress_callback: ProgressCallback | None = None,
    ) -> BulkResult | dict[str, Any]:
        """The sync bulk-update hook. Default: the configured backend (the async path's too)."""
        return self.get_bulk_update_backend().persist_bulk_update(
            queryset=queryset,
            bulk_fields=self.get_bulk_fields(),
            fields_to_update=fields_to_update,
            field_data=field_data,
            context=self.get_bulk_context(),
            progress_callback=progress_callback,
        )

    # ----- handlers ---------------------------------------------------------------------
    def show_bulk_form(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self.render_bulk_page({"form": self.get_bulk_form()})

    def process_bulk_form(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        allowed = set(self.get_bulk_fields())
        for key in request.POST:
            if key.startswith(TOGGLE_PREFIX) and key[len(TOGGLE_PREFIX) :] not in allowed:
                return self.bad_request(
                    f"“{key[len(TOGGLE_PREFIX) :]}” cannot be changed in bulk here. "
                    f"Allowed fields: {', '.join(sorted(allowed))}."
                )
        queryset = self.get_selection_queryset()  # type: ignore[attr-defined]
        size = queryset.count()
        if size == 0:
            return self.bad_request("No rows are selected. Select rows in the list first.")
        form = self.get_bulk_form(request.POST)
        if not form.is_valid():
            return self.render_bulk_page({"form": form})
        fields = form.selected_fields()
        dry_run = request.POST.get("dry_run") == "1"
        try:
            field_data = to_field_data(self.model, fields, form.cleaned_data)
            if self.should_run_async(size):
                return self.launch_async(
                    "update",
                    queryset,
                    fields_to_update=fields,
                    field_data=field_data,
                    dry_run=dry_run,
                    form=form,
                )
            self._bulk_context = self.build_bulk_context(
                operation="update", selection_size=size, dry_run=dry_run
            )
            with hold_selection(queryset):
                result = run_bulk_update(
                    _ViewHookBackend(self),
                    queryset=queryset,
                    bulk_fields=self.get_bulk_fields(),
                    fields_to_update=fields,
                    field_data=field_data,
                    context=self._bulk_context,
                )
        except BulkInputError as exc:
            return self.bad_request(str(exc))
        except LockConflict as exc:
            return self.render_bulk_page({"form": form, "conflict": str(exc)}, status=409)
        finally:
            self._bulk_context = None
        if result.success and not dry_run:
            return self.success_response(self.bulk_success_message("Updated", result))  # type: ignore[attr-defined]
        return self.bulk_result_response(self.render_bulk_page({"form": form, "result": result}), result)

    def confirm_bulk_delete(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self.render_bulk_page({})

    def process_bulk_delete(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        queryset = self.get_selection_queryset()  # type: ignore[attr-defined]
        size = queryset.count()
        if size == 0:
            return self.bad_request("No rows are selected. Select rows in the list first.")
        dry_run = request.POST.get("dry_run") == "1"
        try:
            if self.should_run_async(size):
                return self.launch_async("delete", queryset, dry_run=dry_run)
            self._bulk_context = self.build_bulk_context(
                operation="delete", selection_size=size, dry_run=dry_run
            )
            with hold_selection(queryset):
                result = run_bulk_delete(
                    queryset=queryset,
                    context=self._bulk_context,
                    service=_ViewDeleteService(self),  # type: ignore[arg-type]
                    scope=self.get_bulk_update_backend().scope_queryset,
                )
        except LockConflict as exc:
            return self.render_bulk_page({"conflict": str(exc)}, status=409)
        finally:
            self._bulk_context = None
        if result.success and not dry_run:
            self.save_selection(type(self.get_selection())())  # type: ignore[attr-defined]
            return self.success_response(self.bulk_success_message("Deleted", result))  # type: ignore[attr-defined]
        return self.bulk_result_response(self.render_bulk_page({"result": result}), result)

    # ----- async ----------------------------------------------------------------------------
    def get_bulk_min_async_records(self) -> int:
        if self.bulk_min_async_records is not None:
            return self.bulk_min_async_records
        return int(pc_settings.BULK_MIN_ASYNC_RECORDS)

    def should_run_async(self, selection_size: int) -> bool:
        """Whether a run over ``selection_size`` rows goes to a worker."""
        return bool(self.bulk_async) and selection_size >= self.get_bulk_min_async_records()

    def launch_async(
        self,
        kind: str,
        queryset: models.QuerySet[Any],
        *,
        fields_to_update: Sequence[str] = (),
        field_data: Mapping[str, Any] | None = None,
        dry_run: bool = False,
        form: BulkEditForm | None = None,
    ) -> HttpResponse:
        """Queue the run on a worker and answer with its live progress; conflicts answer 409."""
        try:
            task = launch_bulk_task(
                kind=kind,
                queryset=queryset,
                user=self.request.user,
                model=self.model,
                fields_to_update=fields_to_update,
                field_data=field_data,
                bulk_fields=self.get_bulk_fields(),
                backend_path=self.bulk_update_persistence_backend_path,
                backend_config=self.bulk_update_persistence_backend_config,
                atomic=self.bulk_atomic,
                view_name=f"{type(self).__module__}.{type(self).__qualname__}",
                dry_run=dry_run,
            )
        except LockConflict as exc:
            return self.render_bulk_page({"conflict": str(exc), "form": form}, status=409)
        except LaunchError as exc:
            return self.render_bulk_page({"conflict": str(exc), "form": form}, status=503)
        return self.render_page(  # type: ignore[attr-defined,no-any-return]
            {"task": task, "kind": kind},
            templates=["powercrud/bulk_task_started.html"],
            status=202,
        )

    def persist_bulk_delete(
        self, *, queryset: models.QuerySet[Any], progress_callback: ProgressCallback | None = None
    ) -> BulkResult:
        """The sync bulk-delete hook (run inside the dry-run/all-or-nothing guard).
        Default: powercrud's delete service."""
        return BulkDeleteService().apply(
            queryset=queryset, context=self.get_bulk_context(), progress_callback=progress_callback
        )

    # ----- rendering ----------------------------------------------------------------------
    def bulk_result_response(self, response: HttpResponse, result: BulkResult) -> HttpResponse:
        """A result shown in the modal; the list refreshes when some rows were written."""
        if result.success_records and not result.dry_run:
            return trigger_client_event(response, "pcRefresh")
        return response

    def bulk_success_message(self, verb: str, result: BulkResult) -> str:
        """The toast after a successful bulk run, e.g. "Updated 12 books."."""
        opts = self.model._meta
        noun = opts.verbose_name if result.success_records == 1 else opts.verbose_name_plural
        message = f"{verb} {result.success_records:,} {noun}."
        unchanged = result.success_records - result.changed
        if verb == "Updated" and unchanged > 0:
            message += f" {unchanged:,} already had these values."
        return message

    def bad_request(self, message: str) -> HttpResponse:
        """A 400 whose body is the escaped message (shown in the modal by powercrud.js)."""
        return HttpResponseBadRequest(
            f'<div class="pc-alert pc-alert-error" role="alert">{escape(message)}</div>'
        )

    def render_bulk_page(self, context: dict[str, Any], status: int = 200) -> HttpResponse:
        result = context.get("result")
        if result is not None and result.dry_run:
            context["example_rows"] = describe_examples(self.model, result.examples)
        selection_context = self.get_selection_context()  # type: ignore[attr-defined]
        context = {
            **selection_context,
            "bulk_atomic": self.bulk_atomic,
            "bulk_runs_async": self.should_run_async(selection_context["selection_count"]),
            **context,
        }
        return self.render_page(context, status=status)  # type: ignore[attr-defined,no-any-return]
