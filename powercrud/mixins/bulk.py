"""Bulk edit and bulk delete over the current selection: in the request, or queued on a worker.

A handler turns the modal's validated values into one ``BulkRequest`` (``build_bulk_request()``)
and runs it: in the request through ``run_request()``, the guard the worker uses too, straight
into the configured backend (or into the view's own ``persist_bulk_update()`` /
``persist_bulk_delete()`` when the view overrides them); or on a worker through
``launch_async()``. A run in the request holds its rows for its whole transaction
(``hold_selection``), so an overlapping bulk run, in the request or queued, conflicts instead
of interleaving.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from django.contrib import messages as django_messages
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect
from django.urls import NoReverseMatch, reverse
from django.utils.html import escape
from django_htmx.http import HttpResponseClientRedirect, trigger_client_event

from powercrud.bulk import messages
from powercrud.bulk.delete import BulkDeleteService
from powercrud.bulk.display import describe_examples
from powercrud.bulk.forms import TOGGLE_PREFIX, BulkEditForm, initial_for
from powercrud.bulk.request import BulkRequest, SourceAction
from powercrud.bulk.selection import Selection
from powercrud.bulk.types import BulkContext, BulkInputError, BulkResult, Operation
from powercrud.bulk.values import to_field_data
from powercrud.bulk_persistence import (
    BulkUpdatePersistenceBackend,
    Write,
    backend_for,
    build_backend,
)
from powercrud.conf import settings as pc_settings
from powercrud.jobs.launch import LaunchError, launch_bulk_task
from powercrud.jobs.ledger import run_recorded, selection_keys
from powercrud.jobs.locks import LockConflict, hold_selection
from powercrud.jobs.monitor import close_request_run, open_request_run
from powercrud.jobs.reruns import apply_problem, changed_rows, deleted_keys, rows_to_apply, undo_problem
from powercrud.mixins.contracts import BulkHost
from powercrud.models import BulkTask
from powercrud.params import RepeatedParameter, refuse_repeated, single
from powercrud.views import Role

ProgressCallback = Callable[[int, int], None]


def _single_value_names(form: BulkEditForm) -> list[str]:
    """The parameters of a bulk edit that take one value: all but many-to-many choices."""
    fields = form.fields.items()
    names = [name for name, field in fields if not getattr(field.widget, "allow_multiple_selected", False)]
    return [*names, "dry_run", "reason", "from_run"]


class BulkMixin(BulkHost):
    """The BULK_EDIT and BULK_DELETE roles.

    Contract: ``BulkHost`` (``mixins/contracts.py``): ``CRUDView`` plus ``SelectionFeatures``.
    """

    bulk_fields: ClassVar[Sequence[str]] = ()
    bulk_delete: ClassVar[bool] = False
    # True: all-or-nothing (any failure writes nothing). False: per row.
    bulk_atomic: ClassVar[bool] = True
    bulk_update_persistence_backend_path: ClassVar[str | None] = None
    bulk_update_persistence_backend_config: ClassVar[Mapping[str, Any] | None] = None
    # Run selections of at least ``bulk_min_async_records`` rows on django-q2 workers.
    bulk_async: ClassVar[bool] = False
    bulk_min_async_records: ClassVar[int | None] = None
    # Per-row mode only: split a background run into jobs of this many rows, run by any worker
    # in parallel (None: the setting ``BULK_CHUNK_SIZE``, whose default None keeps one job).
    bulk_chunk_size: ClassVar[int | None] = None

    _bulk_context: BulkContext | None = None
    _bulk_backend: BulkUpdatePersistenceBackend | None = None
    bulk_run: BulkTask | None = None  # the record of the last run this request made

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
        """Choices offered for a foreign-key or many-to-many bulk field: by default those of
        the view's forms and filters (``get_relation_queryset()``); override to differ."""
        return self.get_relation_queryset(field_name, queryset)

    def get_bulk_form(self, data: Any = None, initial: Mapping[str, Any] | None = None) -> BulkEditForm:
        return BulkEditForm(
            data,
            initial=initial,
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

    def build_bulk_request(
        self,
        operation: Operation,
        *,
        fields_to_update: Sequence[str] = (),
        field_data: Mapping[str, Any] | None = None,
        dry_run: bool = False,
        reason: str = "",
        retry_of: int | None = None,
    ) -> BulkRequest:
        """The ``BulkRequest`` this view runs, in the request or on a worker.

        Override to change what every run of the view carries (its backend config, say):
        both modes read the request, so both see the change.
        """
        return BulkRequest(
            operation=operation,
            model_label=self.model._meta.label_lower,
            fields_to_update=tuple(fields_to_update),
            field_data=field_data or {},
            bulk_fields=tuple(self.get_bulk_fields()) if operation == "update" else (),
            atomic=self.bulk_atomic,
            dry_run=dry_run,
            batch_size=pc_settings.BULK_BATCH_SIZE,
            backend_path=self.bulk_update_persistence_backend_path or "",
            backend_config=self.bulk_update_persistence_backend_config or {},
            view_name=f"{type(self).__module__}.{type(self).__qualname__}",
            reason=reason,
            source_run=retry_of,
            source_action="retry" if retry_of is not None else None,
        )

    def get_bulk_update_backend(self) -> BulkUpdatePersistenceBackend:
        """The backend of the run in progress (the one its ``BulkRequest`` names, as a worker
        would build it); outside a run, the view's configured backend, else the default."""
        if self._bulk_backend is not None:
            return self._bulk_backend
        return build_backend(
            self.bulk_update_persistence_backend_path, self.bulk_update_persistence_backend_config
        )

    def persist_bulk_update(
        self,
        *,
        queryset: models.QuerySet[Any],
        fields_to_update: Sequence[str],
        field_data: Mapping[str, Any],
        progress_callback: ProgressCallback | None = None,
    ) -> BulkResult | Mapping[str, Any]:
        """The sync bulk-update hook. Default: the configured backend (the async path's too).

        Only an override is called: without one, a sync run goes to the backend directly.
        """
        return self.get_bulk_update_backend().persist_bulk_update(
            queryset=queryset,
            bulk_fields=self.get_bulk_fields(),
            fields_to_update=fields_to_update,
            field_data=field_data,
            context=self.get_bulk_context(),
            progress_callback=progress_callback,
        )

    def _sync_hook(self, bulk_request: BulkRequest) -> Write | None:
        """The view's own write hook for ``bulk_request``, when the view overrides it."""
        view = type(self)
        if bulk_request.operation == "delete":
            if view.persist_bulk_delete is BulkMixin.persist_bulk_delete:
                return None
            return lambda rows: self.persist_bulk_delete(queryset=rows)
        if view.persist_bulk_update is BulkMixin.persist_bulk_update:
            return None
        return lambda rows: self.persist_bulk_update(
            queryset=rows,
            fields_to_update=list(bulk_request.fields_to_update),
            field_data=dict(bulk_request.field_data),
        )

    def run_in_request(
        self, bulk_request: BulkRequest, queryset: models.QuerySet[Any], size: int
    ) -> BulkResult:
        """Run ``bulk_request`` over ``queryset`` now, its rows held; raises ``LockConflict``.

        The backend is built from the request, as the worker builds it, once for the run. The
        run is recorded (``bulk_run``, on the task dashboard) in the same transaction.
        """
        user = self.request.user
        self._bulk_context = bulk_request.context(
            mode="sync", user_id=user.pk if user.is_authenticated else None, selection_size=size
        )
        self._bulk_backend = backend_for(bulk_request)
        try:
            with hold_selection(queryset):
                run = open_request_run(bulk_request, user=user, total=size)
                result, row_counts = run_recorded(
                    run,
                    bulk_request,
                    queryset=queryset,
                    keys=selection_keys(queryset),
                    context=self._bulk_context,
                    backend=self._bulk_backend,
                    write=self._sync_hook(bulk_request),
                )
                self.bulk_run = close_request_run(run, result, row_counts)
                return result
        finally:
            self._bulk_context = self._bulk_backend = None

    # ----- handlers ---------------------------------------------------------------------
    def show_bulk_form(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """The bulk-edit form; ``?from_run=<id>`` fills in the values of that earlier run."""
        try:
            from_run = single(request.GET, "from_run")
        except RepeatedParameter as exc:
            return self.bad_request(exc.message)
        if not from_run:
            return self.render_bulk_page({"form": self.get_bulk_form()})
        run = self.get_source_run(from_run)
        stored = run.stored_request
        initial = initial_for(self.model, stored) if stored is not None else {}
        return self.render_bulk_page({"form": self.get_bulk_form(initial=initial), "source_run": run})

    def get_source_run(self, run_id: str, kind: Operation = "update") -> BulkTask:
        """An earlier bulk edit (or delete) of this model that the user may see (own, or any for
        staff); else 404."""
        user = self.request.user
        runs = BulkTask.objects.filter(kind=kind, model_label=self.model._meta.label_lower)
        if not user.is_staff:
            runs = runs.filter(owner_id=user.pk)
        run = runs.filter(pk=int(run_id)).first() if run_id.isdigit() and len(run_id) < 19 else None
        if run is None:
            raise Http404("No such bulk run of yours.")
        return run

    def process_bulk_form(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if "undo_run" in request.POST:
            return self.process_undo(request)
        if "apply_run" in request.POST or "apply_passed" in request.POST:
            return self.process_apply(request)
        allowed = set(self.get_bulk_fields())
        for key in request.POST:
            if key.startswith(TOGGLE_PREFIX) and key[len(TOGGLE_PREFIX) :] not in allowed:
                return self.bad_request(
                    f"“{key[len(TOGGLE_PREFIX) :]}” cannot be changed in bulk here. "
                    f"Allowed fields: {', '.join(sorted(allowed))}."
                )
        queryset = self.get_selection_queryset()
        size = self.selection_size(queryset)
        if size == 0:
            return self.bad_request("No rows are selected. Select rows in the list first.")
        form = self.get_bulk_form(request.POST)
        try:
            refuse_repeated(request.POST, _single_value_names(form))
        except RepeatedParameter as exc:
            return self.bad_request(exc.message)
        from_run = single(request.POST, "from_run")
        source_run = self.get_source_run(from_run) if from_run else None  # 404 unless the user's
        if not form.is_valid():
            return self.render_bulk_page({"form": form, "source_run": source_run})
        fields = form.selected_fields()
        try:
            bulk_request = self.build_bulk_request(
                "update",
                fields_to_update=fields,
                field_data=to_field_data(self.model, fields, form.cleaned_data),
                dry_run=single(request.POST, "dry_run") == "1",
                reason=single(request.POST, "reason").strip(),
                retry_of=source_run.pk if source_run is not None else None,
            )
        except BulkInputError as exc:
            return self.bad_request(str(exc))
        return self.run_edit(bulk_request, queryset, size, form=form, source_run=source_run)

    def run_edit(
        self,
        bulk_request: BulkRequest,
        queryset: models.QuerySet[Any],
        size: int,
        *,
        form: BulkEditForm,
        source_run: BulkTask | None = None,
    ) -> HttpResponse:
        """Run a bulk edit in the request or on a worker by size, and answer as the modal expects."""
        try:
            if self.should_run_async(size):
                return self.launch_async(bulk_request, queryset, form=form)
            result = self.run_in_request(bulk_request, queryset, size)
        except BulkInputError as exc:
            return self.bad_request(str(exc))
        except LockConflict as exc:
            return self.render_bulk_page({"form": form, "conflict": str(exc)}, status=409)
        if result.success and not bulk_request.dry_run:
            return self.bulk_done_response(self.bulk_success_message("Updated", result), reselect=True)
        page = self.render_bulk_page({"form": form, "result": result, "source_run": source_run})
        return self.bulk_result_response(page, result)

    def process_apply(self, request: HttpRequest) -> HttpResponse:
        """Apply a finished check's values to its rows (``apply_run=<id>``), or an earlier run's
        values to the rows that passed it (``apply_passed=<id>``): the same values, no re-entry;
        the rows re-scoped through ``get_queryset()`` and held again."""
        passed_only = "apply_passed" in request.POST
        if passed_only and "apply_run" in request.POST:
            return self.bad_request("Send apply_run (every row of a check) or apply_passed, not both.")
        try:
            run = self.get_source_run(single(request.POST, "apply_passed" if passed_only else "apply_run"))
            reason = single(request.POST, "reason").strip()
        except RepeatedParameter as exc:
            return self.bad_request(exc.message)
        problem = apply_problem(run, passed_only=passed_only)
        if problem:
            return self.conflict(problem)
        queryset = self.get_queryset().filter(pk__in=rows_to_apply(run, self.model, passed_only=passed_only))
        size = self.selection_size(queryset)
        if size == 0:
            return self.conflict(messages.nothing_to_apply(run.pk))
        stored = run.read_request()
        try:
            bulk_request = self.rerun_request(run, "apply", reason=reason or stored.reason)
        except BulkInputError as exc:
            return self.bad_request(str(exc))
        form = self.get_bulk_form(initial=initial_for(self.model, stored))
        return self.run_edit(bulk_request, queryset, size, form=form, source_run=run)

    def process_undo(self, request: HttpRequest, kind: Operation = "update") -> HttpResponse:
        """Undo an earlier bulk edit or delete (``undo_run=<id>``, posted to the bulk edit or
        bulk delete screen). An edit: every row it changed gets its old values back, except
        rows changed since (conflicts). A delete: the rows it removed are re-created. A bulk
        run like any other: in the request or on a worker by size, rows held, recorded; answers
        with the undo's run page."""
        try:
            run = self.get_source_run(single(request.POST, "undo_run"), kind)  # 404 unless the user's
            reason = single(request.POST, "reason").strip() or f"Undo of run #{run.pk}"
        except RepeatedParameter as exc:
            return self.bad_request(exc.message)
        problem = undo_problem(run)
        if problem:
            return self.conflict(problem)
        queryset, keys, size = self.undo_rows(run)
        if size == 0:
            return self.conflict(messages.nothing_to_undo(run.pk))
        try:
            undo = self.rerun_request(run, "undo", reason=reason)
            if self.should_run_async(size):
                task = launch_bulk_task(undo, queryset, user=request.user, keys=keys)
                return self.run_page(task.pk, messages.undo_started(run.pk, task.pk))
            result = self.run_in_request(undo, queryset, size)
        except BulkInputError as exc:
            return self.bad_request(str(exc))
        except (LockConflict, LaunchError) as exc:
            return self.conflict(str(exc))
        assert self.bulk_run is not None
        return self.run_page(self.bulk_run.pk, messages.undo_done(run.pk, result.message), ok=result.success)

    def undo_rows(self, run: BulkTask) -> tuple[models.QuerySet[Any], models.QuerySet[Any] | None, int]:
        """What an undo of ``run`` works on: the rows (re-scoped through ``get_queryset()``), the
        keys to lock instead of them (a delete's: its rows are gone, the ledger names them) and
        how many rows."""
        if run.kind == BulkTask.Kind.DELETE:
            return self.get_queryset().none(), deleted_keys(run), int(run.row_counts.get("changed", 0))
        queryset = self.get_queryset().filter(pk__in=changed_rows(run, self.model))
        return queryset, None, queryset.count()

    def rerun_request(self, run: BulkTask, action: SourceAction, *, reason: str) -> BulkRequest:
        """The ``BulkRequest`` of a run made from ``run`` (an apply or an undo): this view's
        request for ``run``'s kind, fields and values, marked with ``run`` and ``action``."""
        stored = run.read_request()
        request = self.build_bulk_request(
            stored.operation,
            fields_to_update=stored.fields_to_update,
            field_data=stored.field_data,
            reason=reason,
        )
        return dataclasses.replace(request, source_run=run.pk, source_action=action)

    def run_page(self, run_id: int, message: str = "", *, ok: bool = True) -> HttpResponse:
        """Go to run ``run_id``'s page on the task dashboard (the list when there is none),
        where ``message`` shows as a toast."""
        if message:
            (django_messages.success if ok else django_messages.error)(self.request, message)
        try:
            url = reverse("powercrud:tasks-detail", args=[run_id])
        except NoReverseMatch:
            url = self.reverse(Role.LIST)
        if getattr(self.request, "htmx", False):
            return HttpResponseClientRedirect(url)
        return redirect(url)

    def conflict(self, message: str) -> HttpResponse:
        """A 409 whose body is the escaped message."""
        return HttpResponse(
            f'<div class="pc-alert pc-alert-error" role="alert">{escape(message)}</div>', status=409
        )

    delete_preview_size: ClassVar[int] = 10

    def confirm_bulk_delete(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """The confirmation: the count, and the first ``delete_preview_size`` rows by name."""
        rows = self.get_selection_queryset()
        if not rows.ordered:
            rows = rows.order_by("pk")
        preview = [str(obj) for obj in rows[: self.delete_preview_size]]
        return self.render_bulk_page({"delete_preview": preview})

    def process_bulk_delete(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if "undo_run" in request.POST:
            return self.process_undo(request, "delete")
        try:
            dry_run = single(request.POST, "dry_run") == "1"
            reason = single(request.POST, "reason").strip()
        except RepeatedParameter as exc:
            return self.bad_request(exc.message)
        queryset = self.get_selection_queryset()
        size = self.selection_size(queryset)
        if size == 0:
            return self.bad_request("No rows are selected. Select rows in the list first.")
        try:
            bulk_request = self.build_bulk_request("delete", dry_run=dry_run, reason=reason)
            if self.should_run_async(size):
                return self.launch_async(bulk_request, queryset)
            result = self.run_in_request(bulk_request, queryset, size)
        except BulkInputError as exc:
            return self.bad_request(str(exc))
        except LockConflict as exc:
            return self.render_bulk_page({"conflict": str(exc)}, status=409)
        if result.success and not bulk_request.dry_run:
            return self.bulk_done_response(self.bulk_success_message("Deleted", result), reselect=False)
        return self.bulk_result_response(self.render_bulk_page({"result": result}), result)

    # ----- async ----------------------------------------------------------------------------
    def get_bulk_min_async_records(self) -> int:
        if self.bulk_min_async_records is not None:
            return self.bulk_min_async_records
        return int(pc_settings.BULK_MIN_ASYNC_RECORDS)

    def get_bulk_chunk_size(self) -> int | None:
        """Rows per chunk job of a per-row background run; None for one job (always None for
        an all-or-nothing view: its run is one transaction)."""
        if self.bulk_atomic:
            return None
        size = self.bulk_chunk_size if self.bulk_chunk_size is not None else pc_settings.BULK_CHUNK_SIZE
        return int(size) if size else None

    def should_run_async(self, selection_size: int) -> bool:
        """Whether a run over ``selection_size`` rows goes to a worker."""
        return bool(self.bulk_async) and selection_size >= self.get_bulk_min_async_records()

    def selection_size(self, queryset: models.QuerySet[Any]) -> int:
        """How many rows ``queryset`` holds, as far as choosing the mode needs: the exact count
        below ``get_bulk_min_async_records()``, else that threshold (a lower bound; the worker
        counts the rows it locks). One query that reads at most the threshold's rows, so a
        submit of a million rows costs what one of a thousand does. Exact when the view runs
        everything in the request or decides the mode itself (an overridden
        ``should_run_async()``)."""
        threshold = self.get_bulk_min_async_records()
        decides_itself = type(self).should_run_async is not BulkMixin.should_run_async
        if not self.bulk_async or decides_itself or queryset.query.is_sliced:
            return queryset.count()
        return queryset.order_by()[: max(threshold, 1)].count()

    def launch_async(
        self,
        bulk_request: BulkRequest,
        queryset: models.QuerySet[Any],
        *,
        form: BulkEditForm | None = None,
    ) -> HttpResponse:
        """Queue the run on a worker and answer with its live progress; conflicts answer 409."""
        try:
            task = launch_bulk_task(
                bulk_request, queryset, user=self.request.user, chunk_size=self.get_bulk_chunk_size()
            )
        except LockConflict as exc:
            return self.render_bulk_page({"conflict": str(exc), "form": form}, status=409)
        except LaunchError as exc:
            return self.render_bulk_page({"conflict": str(exc), "form": form}, status=503)
        return self.render_page(
            {"task": task, "kind": bulk_request.operation},
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
    def bulk_done_response(self, message: str, *, reselect: bool) -> HttpResponse:
        """After a run in the request that wrote its rows: the selection is cleared (so the same
        change is not applied twice by accident) and the toast offers "Undo" (the run's page,
        where it can be undone) and, for an edit, "Reselect" (the selection put back)."""
        had_selection = not self.get_selection().is_empty
        self.save_selection(Selection())  # keeps a copy for "Reselect"
        if not self.get_partial_name():
            return self.success_response(message)
        detail: dict[str, Any] = {"message": message}
        if self.bulk_run is not None:
            with contextlib.suppress(NoReverseMatch):  # no task dashboard installed
                detail["undo_url"] = reverse("powercrud:tasks-detail", args=[self.bulk_run.pk])
        if reselect and had_selection:
            detail["reselect_url"] = self.reverse(Role.SELECTION)
        return trigger_client_event(HttpResponse(status=204), "pcSaved", detail)

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
        if result is not None:  # the first 50 errors, each with a link to its row
            context["error_rows"] = [(error, self.row_url(error.pk)) for error in result.errors[:50]]
        selection_context = self.get_selection_context()
        context = {
            **selection_context,
            "bulk_atomic": self.bulk_atomic,
            "bulk_runs_async": self.should_run_async(selection_context["selection_count"]),
            "bulk_chunk_size": self.get_bulk_chunk_size(),
            "bulk_run": self.bulk_run,
            "run_ledger": pc_settings.BULK_RUN_LEDGER,
            **context,
        }
        return self.render_page(context, status=status)
