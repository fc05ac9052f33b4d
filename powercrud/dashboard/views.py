"""The task dashboard views: list, detail, live progress, outcomes CSV and cancel.

The list is the history of a user's bulk runs: in the request or on a worker, checks and
applied runs, each with its kind, status, counts, reason and timings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import django_filters
from django import forms
from django.contrib import messages
from django.db import models
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.template.loader import render_to_string
from django.urls import URLPattern, path, reverse
from django.views.decorators.csrf import csrf_exempt
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling, trigger_client_event

from powercrud.bulk import messages as bulk_messages
from powercrud.bulk.selection import Selection
from powercrud.conf import settings as pc_settings
from powercrud.dashboard.api import BadPage, cancel_run, json_error, run_document
from powercrud.dashboard.describe import (
    ACTIVE,
    describe_changes,
    describe_import,
    done_verb,
    format_duration,
    model_display_name,
    retry_count,
    retry_target,
    row_errors,
    rows_noun,
    source_of,
    source_view,
    view_class_name,
)
from powercrud.dashboard.next_steps import next_steps
from powercrud.dashboard.outcomes import (
    csv_lines,
    has_ledger_rows,
    ledger_csv,
    ledger_jsonl,
    outcome_rows,
    run_fields,
    summary_jsonl,
)
from powercrud.dashboard.runrows import UnknownOutcome, outcome_counts, read_outcome, rows_page
from powercrud.jobs import progress
from powercrud.jobs.monitor import request_cancel
from powercrud.jsonapi import ApiError, api_user
from powercrud.mixins import PowerCRUDMixin
from powercrud.models import MAX_STORED_ERRORS, BulkTask
from powercrud.notices import mark_seen
from powercrud.params import RepeatedParameter, single
from powercrud.views import CRUDView, Role, htmx_details

Status = BulkTask.Status

PROGRESS_TEMPLATE = "powercrud/partials/task_progress.html"
"""The progress fragment: served by ``tasks/<pk>/progress/`` and included by the modal."""

LIST_POLL_SECONDS = 2
"""How often the list refreshes while a task it shows is queued or running."""


class _ChoiceFilter(django_filters.ChoiceFilter):
    """A choice filter whose "no filter" option is an ordinary first choice, labelled "Any"."""

    field_class = forms.ChoiceField


def _any(choices: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [("", "Any"), *choices]


CHECK_CHOICES = (("check", "Checks"), ("apply", "Applied runs"))
"""The "Check or apply" filter: ``?check=check`` lists checks, ``?check=apply`` the others."""


class BulkTaskFilterSet(django_filters.FilterSet):
    """Status, kind, model, mode and check or apply.

    The model choices are the models among the tasks the user sees.
    """

    status = _ChoiceFilter(choices=_any(Status.choices), label="Status")
    kind = _ChoiceFilter(choices=_any(BulkTask.Kind.choices), label="Kind")
    model_label = _ChoiceFilter(choices=_any([]), label="Model")
    mode = _ChoiceFilter(choices=_any(BulkTask.Mode.choices), label="Mode")
    check = _ChoiceFilter(choices=_any(CHECK_CHOICES), label="Check or apply", method="filter_check")

    class Meta:
        model = BulkTask
        fields = ["status", "kind", "model_label", "mode", "check"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        labels = self.queryset.order_by().values_list("model_label", flat=True).distinct()
        named = sorted(((label, model_display_name(label)) for label in labels), key=lambda c: c[1])
        self.filters["model_label"].extra["choices"] = _any(named)

    def filter_check(self, queryset: models.QuerySet[Any], name: str, value: str) -> models.QuerySet[Any]:
        if value not in dict(CHECK_CHOICES):
            return queryset
        return queryset.filter(dry_run=value == "check")


# ----- the view --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskRow:
    """One line of the task list."""

    task: BulkTask
    model_name: str
    detail_url: str
    duration: str
    verb: str
    """``"updated"`` or ``"deleted"``: what the run did (or, for a check, would do) to a row."""


# Task actions: extra endpoints of the DETAIL role, each ``{http method: handler}``.
_ACTIONS: dict[str, dict[str, str]] = {
    "progress": {"get": "progress"},
    "outcomes": {"get": "outcomes"},
    "outcomes_json": {"get": "outcomes_json"},
    "run_json": {"get": "run_json"},
    "cancel": {"post": "cancel"},
    "cancel_json": {"post": "cancel_json"},
    "retry": {"post": "retry"},
}
_ACTION_ROUTES = {
    "progress": "{pk}/progress/",
    "outcomes": "{pk}/outcomes.csv",
    "outcomes_json": "{pk}/outcomes.jsonl",
    "run_json": "{pk}/run.json",
    "cancel": "{pk}/cancel/",
    "cancel_json": "{pk}/cancel.json",
    "retry": "{pk}/retry/",
}
# The actions for programs (``dashboard/api.py``): JSON answers, the API's authentication.
_JSON_ACTIONS = ("run_json", "cancel_json")


def _url_name(base: str, action: str) -> str:
    """``tasks-outcomes-json`` for the action ``outcomes_json``."""
    return f"{base}-{action.replace('_', '-')}"


# List columns: (key, label, sortable field or None, alignment).
_LIST_COLUMNS = (
    ("task", "Task", "id", "start"),
    ("status", "Status", "status", "start"),  # the mode is on a second line
    ("model", "Model", "model_label", "start"),
    ("owner", "Owner", None, "start"),
    ("progress", "Progress", None, "start"),
    ("result", "Result", "total", "start"),
    ("created", "Created", "created_at", "start"),
    ("started", "Started", "started_at", "start"),
    ("finished", "Finished", "finished_at", "start"),
    ("duration", "Duration", None, "end"),
)


class BulkTaskView(PowerCRUDMixin, CRUDView):
    """The task dashboard (list and detail) and the progress, outcomes and cancel actions."""

    model = BulkTask
    announce_runs = False  # the dashboard lists the runs themselves
    namespace = "powercrud"
    url_base = "tasks"
    fields = [
        "id",
        "status",
        "kind",
        "model_label",
        "owner",
        "total",
        "created_at",
        "started_at",
        "finished_at",
    ]
    filterset_class = BulkTaskFilterSet
    ordering = ["-created_at"]
    paginate_by = 25
    # Seeing your own tasks needs only a sign-in (``has_role_permission`` refuses anonymous
    # users); a host can demand a permission here, e.g. {"list": ["powercrud.view_bulktask"]}.
    role_permissions: ClassVar[Mapping[str, Sequence[str]] | None] = {"list": (), "detail": ()}
    # Set by ``as_view(role=Role.DETAIL, action=...)`` for the task actions.
    action: ClassVar[str | None] = None

    @classmethod
    def get_roles(cls) -> list[Role]:
        """A list and a detail page; tasks are created by bulk views, never by hand."""
        return [Role.LIST, Role.DETAIL]

    @classmethod
    def get_urls(cls, roles: Sequence[Role] | None = None) -> list[URLPattern]:
        """The LIST and DETAIL patterns, then ``<url_base>-progress``, ``-outcomes``, ``-cancel``."""
        patterns = super().get_urls(roles)
        base = cls.get_url_base()
        for action, route in _ACTION_ROUTES.items():
            view = cls.as_view(role=Role.DETAIL, action=action)
            if action in _JSON_ACTIONS:  # CSRF is checked by jsonapi.api_user(), answering JSON
                view = csrf_exempt(view)
            patterns.append(path(f"{base}/{route.format(pk='<int:pk>')}", view, name=_url_name(base, action)))
        return patterns

    def setup(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        super().setup(request, *args, **kwargs)
        if self.action is None:
            return
        # An action replaces the DETAIL role's handlers with its own.
        for method in ("get", "head", "post"):
            self.__dict__.pop(method, None)
        for method, handler in _ACTIONS[self.action].items():
            setattr(self, method, getattr(self, handler))
        if "get" in _ACTIONS[self.action]:
            self.head = getattr(self, _ACTIONS[self.action]["get"])

    # ----- scoping and permissions ------------------------------------------------------
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        """The JSON actions first find who is asking (``jsonapi.api_user()``: the token hook, else
        the session under Django's CSRF rule) and refuse as JSON (401, 403)."""
        if self.action in _JSON_ACTIONS:
            try:
                api_user(request)
            except ApiError as exc:
                return exc.response()
        response: HttpResponseBase = super().dispatch(request, *args, **kwargs)
        return response

    def has_role_permission(self, role: Role) -> bool:
        """Signed-in users only, then ``role_permissions`` (none by default)."""
        return bool(self.request.user.is_authenticated) and super().has_role_permission(role)

    def sees_all_tasks(self) -> bool:
        """Whether the user sees every user's tasks (staff), not only their own."""
        return bool(self.request.user.is_staff)

    def get_queryset(self) -> models.QuerySet[Any]:
        """The tasks this user may see: their own, or all of them for staff."""
        queryset = BulkTask.objects.select_related("owner")
        if self.sees_all_tasks():
            return queryset
        return queryset.filter(owner_id=self.request.user.pk)

    def may_cancel(self, task: BulkTask) -> bool:
        """Whether the user may cancel ``task``: its owner, or a holder of ``change_bulktask``."""
        user = self.request.user
        return (task.owner_id is not None and task.owner_id == user.pk) or user.has_perm(
            "powercrud.change_bulktask"
        )

    def get_object(self) -> BulkTask:
        """The task in the URL (404 outside ``get_queryset()``), with its live progress."""
        task = cast(BulkTask, super().get_object())
        progress.live_progress([task])
        return task

    # ----- list -------------------------------------------------------------------------
    def paginate(self, queryset: models.QuerySet[Any], per_page: int) -> Any:
        """The page, with running tasks brought up to date from the live progress store."""
        page = super().paginate(queryset, per_page)
        page.object_list = progress.live_progress(page.object_list)
        return page

    def build_rows(self, objects: Any, columns: Sequence[Any]) -> list[dict[str, Any]]:
        return []  # the task list renders its own rows (``task_rows``)

    def get_list_context(self) -> dict[str, Any]:
        context = super().get_list_context()
        headers = {header["column"].name: header for header in context["headers"]}
        names: dict[str, str] = {}
        rows = []
        for task in context["page_obj"].object_list:
            if task.model_label not in names:
                names[task.model_label] = model_display_name(task.model_label)
            rows.append(
                TaskRow(
                    task=task,
                    model_name=names[task.model_label],
                    detail_url=self.reverse(Role.DETAIL, task),
                    duration=format_duration(task.duration),
                    verb=done_verb(task),
                )
            )
        context.update(
            {
                "task_rows": rows,
                "any_active": any(row.task.status in ACTIVE for row in rows),
                "poll_seconds": LIST_POLL_SECONDS,
                "sees_all": self.sees_all_tasks(),
                "list_columns": [
                    {
                        "key": key,
                        "label": label,
                        "align": align,
                        "header": headers.get(sort) if sort else None,
                    }
                    for key, label, sort, align in _LIST_COLUMNS
                ],
            }
        )
        return context

    # ----- detail and actions -------------------------------------------------------------
    def task_urls(self, task: BulkTask) -> dict[str, str]:
        """Every URL of one task, by action name (plus ``detail``)."""
        prefix = f"{self.namespace}:" if self.namespace else ""
        base = self.get_url_base()
        urls = {"detail": self.reverse(Role.DETAIL, task)}
        for action in _ACTIONS:
            urls[action] = reverse(f"{prefix}{_url_name(base, action)}", kwargs={"pk": task.pk})
        return urls

    def get_task_context(self, task: BulkTask, **extra: Any) -> dict[str, Any]:
        """What the detail page and the progress fragment show about ``task``."""
        context = {
            "object": task,
            "task": task,
            "task_urls": self.task_urls(task),
            "model_name": model_display_name(task.model_label),
            "rows_noun": rows_noun(task),
            "duration": format_duration(task.duration),
            "verb": done_verb(task),
            "can_cancel": task.status in ACTIVE and self.may_cancel(task),
            "cancelling": task.status == Status.RUNNING and task.cancel_requested,
            "sees_all": self.sees_all_tasks(),
            "run_counts": outcome_counts(task),
        }
        context.update(extra)
        return context

    def detail_context(self, task: BulkTask, **extra: Any) -> dict[str, Any]:
        stored = task.stored_request  # read once: the helpers below share it
        view = source_view(stored)
        errors = row_errors(task, view)
        return self.get_task_context(
            task,
            changes=(
                describe_import(task, stored)
                if task.kind == BulkTask.Kind.IMPORT
                else describe_changes(task, stored)
                if task.kind == BulkTask.Kind.UPDATE
                else []
            ),
            errors=errors,
            retry_count=retry_count(task, view, errors),
            **source_of(stored),
            max_stored_errors=MAX_STORED_ERRORS,
            atomic=stored.atomic if stored else True,
            dry_run=task.dry_run,
            view_class=view_class_name(stored.view_name if stored else ""),
            next=next_steps(task, stored, view, self.request),
            **extra,
        )

    def detail(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """The task page; with ledger rows, one page of them (``?outcome=``, ``?page=``)."""
        self.object = task = self.get_object()
        if not task.row_counts or not task.is_finished:
            return self.render_page(self.detail_context(task))
        try:
            outcome = read_outcome(request.GET, task)
            page = single(request.GET, "page")
        except (RepeatedParameter, UnknownOutcome) as exc:
            return self.render_page(self.detail_context(task, error=exc.message), status=400)
        stored = task.stored_request
        rows = rows_page(
            task, outcome=outcome, page=page, fields=run_fields(task, stored), view=source_view(stored)
        )
        return self.render_page(self.detail_context(task, **rows))

    def progress(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """The progress fragment; to an HTMX poll of a finished task, 286 stops the polling."""
        self.object = task = self.get_object()
        context = self.get_context_data(**self.get_task_context(task))
        html = render_to_string(PROGRESS_TEMPLATE, context, request=request)
        if htmx_details(request) and task.is_finished:
            mark_seen(task, request.user)  # the owner watched it end: no toast for it later
            # The poll that sees the end also refreshes any list on the page (pcRefresh).
            return trigger_client_event(HttpResponseStopPolling(html), "pcRefresh")
        return HttpResponse(html)

    def outcomes(self, request: HttpRequest, *args: Any, **kwargs: Any) -> StreamingHttpResponse:
        """Every row of the run from its ledger (``pk, outcome, <field> before, <field> after,
        ..., error field, error messages``), streamed as a CSV download; a run without ledger
        rows gives ``pk,outcome,field,message`` from its record."""
        task = self.get_object()
        if has_ledger_rows(task):
            lines = ledger_csv(task, task.stored_request)
        else:
            lines = csv_lines(outcome_rows(task))
        return _download(lines, "text/csv; charset=utf-8", f"task-{task.pk}-outcomes.csv")

    def outcomes_json(self, request: HttpRequest, *args: Any, **kwargs: Any) -> StreamingHttpResponse:
        """The same outcomes as JSON Lines (one object per line), streamed as a download."""
        task = self.get_object()
        lines = ledger_jsonl(task) if has_ledger_rows(task) else summary_jsonl(task)
        return _download(lines, "application/jsonl; charset=utf-8", f"task-{task.pk}-outcomes.jsonl")

    def run_json(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """The run as JSON for programs (``dashboard/api.py``): its record and one page of its
        rows (``?outcome=``, ``?page=``); errors as JSON, never an HTML page."""
        try:
            self.object = task = self.get_object()
        except Http404:
            return json_error(f"No bulk run #{kwargs.get('pk')} that you may see.", status=404)
        try:
            outcome = read_outcome(request.GET, task)
            page = single(request.GET, "page").strip()
            document = run_document(task, outcome=outcome, page=page, urls=self.task_urls(task))
        except RepeatedParameter as exc:
            return json_error(exc.message, status=400, field=exc.name)
        except UnknownOutcome as exc:
            return json_error(exc.message, status=400, field="outcome")
        except BadPage as exc:
            return json_error(exc.message, status=400, field="page")
        return JsonResponse(document)

    def cancel_json(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """Cancel the run, for programs (``dashboard/api.py``): JSON answers only."""
        try:
            self.object = task = self.get_object()
        except Http404:
            return json_error(f"No bulk run #{kwargs.get('pk')} that you may see.", status=404)
        if not self.may_cancel(task):
            return json_error(f"You may not cancel run #{task.pk}: only its owner can.", status=403)
        return cancel_run(task, url=self.task_urls(task)["run_json"])

    def handle_no_permission(self) -> HttpResponse:
        """A program asking for a run as JSON gets JSON (403), not the login page."""
        if self.action in _JSON_ACTIONS:
            return json_error("You do not have permission to read bulk runs.", status=403)
        return super().handle_no_permission()

    def retry(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """Select the run's failed rows on the screen it came from and open its bulk edit there,
        with the run's values filled in; 409 when they cannot all be named."""
        self.object = task = self.get_object()
        view = source_view(task.stored_request)
        target = retry_target(task, view, row_errors(task, view))
        if target is None:
            error = bulk_messages.cannot_retry(task.pk)
            return self.render_page(self.detail_context(task, error=error), status=409)
        view_class, pks = target
        source = view_class(role=Role.BULK_EDIT)
        source.setup(request)
        source.save_selection(Selection(mode="ids", ids=tuple(pks)))
        url = f"{source.reverse(Role.BULK_EDIT)}?from_run={task.pk}"
        if htmx_details(request):
            return HttpResponseClientRedirect(url)
        return HttpResponseRedirect(url)

    def cancel(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """Cancel a queued task now, or ask a running one to stop; 409 once it has ended."""
        self.object = task = self.get_object()
        if not self.may_cancel(task):
            return self.render_page(
                {"message": f"You may not cancel task #{task.pk}: only its owner can."},
                templates=["powercrud/denied.html"],
                status=403,
            )
        was = task.status
        if was in ACTIVE:
            try:
                task = request_cancel(task)
            except BulkTask.DoesNotExist:
                raise Http404("No such task.") from None
            progress.live_progress([task])
            self.object = task
        if was == Status.QUEUED and task.status == Status.CANCELLED:
            message = bulk_messages.cancel_notice(task.pk, task.kind, started=False)
        elif task.status == Status.RUNNING and task.cancel_requested:
            # The worker writes a task in one transaction: a cancelled run saves nothing.
            message = bulk_messages.cancel_notice(task.pk, task.kind, started=True)
        else:
            ended = task.get_status_display().lower()
            error = bulk_messages.nothing_to_cancel(task.pk, ended)
            return self.render_page(self.detail_context(task, error=error), status=409)
        if self.get_partial_name():
            response = self.render_page(self.detail_context(task))
            return trigger_client_event(response, "pcSaved", {"message": message})
        messages.success(request, message, fail_silently=True)
        return HttpResponseRedirect(self.reverse(Role.DETAIL, task))

    def get_base_template_path(self) -> str:
        """``base_template_path``, else ``TASK_DASHBOARD_BASE_TEMPLATE``, else ``BASE_TEMPLATE``."""
        return self.base_template_path or _dashboard_base_template() or pc_settings.BASE_TEMPLATE


def _download(lines: Iterable[str], content_type: str, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(lines, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def _dashboard_base_template() -> str | None:
    try:
        return getattr(pc_settings, "TASK_DASHBOARD_BASE_TEMPLATE")  # noqa: B009
    except AttributeError:  # not a known setting in this version of powercrud.conf
        return None
