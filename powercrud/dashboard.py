"""The task dashboard: async bulk tasks with live progress, their row errors, outcomes and cancel.

``BulkTaskView`` is powercrud's own list machinery over ``BulkTask`` (a ``CRUDView`` with the
LIST and DETAIL roles, filtered, sorted and paginated by ``PowerCRUDMixin``). Three task
*actions* share its scoping and permission check, so every URL of one task answers the same
way to the same user:

==========================  =========================  ============================================
URL (under the include)     name                       what
==========================  =========================  ============================================
``tasks/``                  ``powercrud:tasks-list``     the list, polling while a shown task is active
``tasks/<pk>/``             ``powercrud:tasks-detail``   one task: progress, changes, timings, errors
``tasks/<pk>/progress/``    ``powercrud:tasks-progress`` the ``task_progress.html`` fragment (modal, list)
``tasks/<pk>/outcomes.csv`` ``powercrud:tasks-outcomes`` ``pk,outcome,field,message`` rows, streamed
``tasks/<pk>/cancel/``      ``powercrud:tasks-cancel``   POST: cancel a queued task, stop a running one
==========================  =========================  ============================================

Who sees what: every signed-in user sees the tasks they started; staff see every task
(``get_queryset()``). A task outside that set is a 404 on every URL. Viewing needs no model
permission (``role_permissions`` relaxes LIST and DETAIL to "signed in"); cancelling needs to
own the task or hold ``powercrud.change_bulktask`` (``may_cancel()``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import django_filters
from django import forms
from django.contrib import messages
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.template.loader import render_to_string
from django.urls import URLPattern, path, reverse
from django.utils.text import capfirst
from django_htmx.http import HttpResponseStopPolling, trigger_client_event

from powercrud import progress
from powercrud.columns import format_value
from powercrud.conf import settings as pc_settings
from powercrud.mixins import PowerCRUDMixin
from powercrud.models import MAX_STORED_ERRORS, BulkTask
from powercrud.tasks import request_cancel
from powercrud.views import CRUDView, Role

__all__ = [
    "BulkTaskFilterSet",
    "BulkTaskView",
    "FieldChange",
    "RowErrorLine",
    "describe_changes",
    "format_duration",
    "model_display_name",
    "outcome_rows",
    "row_errors",
]

Status = BulkTask.Status
ACTIVE = (Status.QUEUED, Status.RUNNING)

PROGRESS_TEMPLATE = "powercrud/partials/task_progress.html"
"""The progress fragment: served by ``tasks/<pk>/progress/`` and included by the modal."""

LIST_POLL_SECONDS = 2
"""How often the list refreshes while a task it shows is queued or running."""

MAX_VALUES_SHOWN = 20
"""Many-to-many ids named one by one in a task's change summary; the rest are counted."""


# ----- display helpers -------------------------------------------------------------------------


def model_display_name(label: str) -> str:
    """``"Books"`` for ``"sample.book"``: the model's plural verbose name, or the label itself."""
    from django.apps import apps

    try:
        model = apps.get_model(label)
    except (LookupError, ValueError):
        return label
    return capfirst(str(model._meta.verbose_name_plural))


def format_duration(seconds: float | None) -> str:
    """``"0.4 s"``, ``"12 s"``, ``"3 min 05 s"``, ``"2 h 03 min"``; ``""`` for None."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _payload(task: BulkTask) -> Mapping[str, Any]:
    return task.payload if isinstance(task.payload, Mapping) else {}


def _field(model: type[models.Model] | None, name: str | None) -> Any:
    if model is None or not name:
        return None
    try:
        return model._meta.get_field(name)
    except FieldDoesNotExist:
        return None


def _field_label(model: type[models.Model] | None, name: str | None) -> str:
    field = _field(model, name)
    if field is None:
        return name or ""
    return capfirst(str(getattr(field, "verbose_name", name)))


@dataclass(frozen=True)
class RowErrorLine:
    """One stored row error, ready to show: ``pk`` may be None (a whole-task error)."""

    pk: Any
    field: str
    field_label: str
    messages: tuple[str, ...]


def row_errors(task: BulkTask) -> list[RowErrorLine]:
    """The task's stored row errors with readable field labels (bad entries are skipped)."""
    model = task.model_class
    lines = []
    for item in task.row_errors():
        if not isinstance(item, Mapping):
            continue
        raw = item.get("messages")
        texts = raw if isinstance(raw, list | tuple) else [] if raw is None else [raw]
        field = str(item.get("field") or "")
        lines.append(
            RowErrorLine(
                pk=item.get("pk"),
                field=field,
                field_label=_field_label(model, field),
                messages=tuple(str(text) for text in texts),
            )
        )
    return lines


@dataclass(frozen=True)
class FieldChange:
    """One field a bulk edit sets, as the operator chose it: ``"Status"``, ``"Published"``."""

    field: str
    label: str
    value: str


_M2M_OPS = {"add": "Add", "remove": "Remove", "replace": "Replace with"}


def _related_names(field: Any, ids: Sequence[Any]) -> list[str]:
    """``str()`` of the related rows ``ids`` name, in the given order; gone rows say so."""
    if not ids:
        return []
    model = field.related_model
    try:
        found = {str(obj.pk): str(obj) for obj in model._base_manager.filter(pk__in=list(ids))}
    except (ValueError, TypeError, ValidationError):
        found = {}
    return [found.get(str(pk), f"#{pk} (no longer exists)") for pk in ids]


def _plain_value(field: Any, raw: Any) -> str:
    if raw is None or raw == "":
        return "(empty)"
    if isinstance(raw, bool):
        return "Yes" if raw else "No"
    if field is None:
        return str(raw)
    choices = dict(getattr(field, "flatchoices", None) or ())
    if raw in choices:
        return str(choices[raw])
    try:
        value = field.to_python(raw)
    except (ValidationError, TypeError, ValueError):
        return str(raw)
    return str(format_value(value))


def describe_changes(task: BulkTask) -> list[FieldChange]:
    """What a bulk edit sets, field by field, in words: labels for choices, names for relations."""
    payload = _payload(task)
    data = payload.get("field_data")
    data = data if isinstance(data, Mapping) else {}
    model = task.model_class
    changes = []
    for name in payload.get("fields_to_update") or ():
        name = str(name)
        field = _field(model, name)
        raw = data.get(name)
        if field is not None and field.many_to_many and isinstance(raw, Mapping):
            ids = list(raw.get("ids") or ())
            names = _related_names(field, ids[:MAX_VALUES_SHOWN])
            more = len(ids) - len(names)
            listed = ", ".join(names) + (f" and {more} more" if more > 0 else "")
            op = _M2M_OPS.get(str(raw.get("op")), str(raw.get("op")))
            value = f"{op}: {listed}" if listed else f"{op}: (nothing)"
        elif field is not None and field.is_relation and raw is not None:
            value = _related_names(field, [raw])[0]
        else:
            value = _plain_value(field, raw)
        changes.append(FieldChange(field=name, label=_field_label(model, name), value=value))
    return changes


# ----- the outcomes CSV ------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run as a formula (text starting with = + - @)."""
    if value is None:
        return ""
    if isinstance(value, int | float):
        return value
    text = str(value)
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def _rows_word(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def outcome_rows(task: BulkTask) -> Iterator[tuple[Any, str, str, str]]:
    """``(pk, outcome, field, message)`` for each stored row error, then what the record knows.

    A task keeps the primary keys only of the rows that failed. The rows that succeeded, and
    those left unchanged, are summary lines with an empty ``pk``: once a task ends, its
    selection (the row locks) is released and their ids are no longer stored anywhere.
    """
    done_word = "deleted" if task.kind == BulkTask.Kind.DELETE else "updated"
    payload = _payload(task)
    for error in row_errors(task):
        yield error.pk, "failed", error.field, " ".join(error.messages)
    if task.errors_omitted:
        yield (
            None,
            "failed",
            "",
            f"{_rows_word(task.errors_omitted)} more failed; only the first {MAX_STORED_ERRORS} "
            "row errors are stored with a task.",
        )
    if task.status in ACTIVE:
        state = task.get_status_display().lower()
        yield None, "pending", "", f"The task is {state}: {task.done} of {_rows_word(task.total)} processed."
        return
    if payload.get("dry_run"):
        yield None, "checked", "", f"A check only; nothing was written. {task.message}".strip()
        return
    # The worker commits a task's writes with its outcome: all of them when it succeeded, the
    # valid rows of a per-row task that failed, and nothing when it was cancelled.
    committed = task.status == Status.SUCCEEDED or (
        task.status == Status.FAILED and not payload.get("atomic", True)
    )
    saved = task.success_count if committed else 0
    if saved:
        yield (
            None,
            done_word,
            "",
            f"{_rows_word(saved)} {done_word}; a task does not store the ids of rows that succeeded.",
        )
    unchanged = task.total - saved - task.failure_count
    if unchanged > 0:
        outcome = "cancelled" if task.status == Status.CANCELLED else "not changed"
        reason = f" {task.message}" if task.message and task.status != Status.SUCCEEDED else ""
        yield None, outcome, "", f"{_rows_word(unchanged)} not {done_word}.{reason}"


class _Echo:
    """A file-like object whose ``write`` hands back the line, for streaming ``csv.writer``."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(("pk", "outcome", "field", "message"))
    for row in rows:
        yield writer.writerow([_cell(value) for value in row])


# ----- filters ---------------------------------------------------------------------------------


class _ChoiceFilter(django_filters.ChoiceFilter):
    """A choice filter whose "no filter" option is an ordinary first choice, labelled "Any"."""

    field_class = forms.ChoiceField


def _any(choices: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [("", "Any"), *choices]


class BulkTaskFilterSet(django_filters.FilterSet):
    """Status, kind and model; the model choices are the models among the tasks the user sees."""

    status = _ChoiceFilter(choices=_any(Status.choices), label="Status")
    kind = _ChoiceFilter(choices=_any(BulkTask.Kind.choices), label="Kind")
    model_label = _ChoiceFilter(choices=_any([]), label="Model")

    class Meta:
        model = BulkTask
        fields = ["status", "kind", "model_label"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        labels = self.queryset.order_by().values_list("model_label", flat=True).distinct()
        named = sorted(((label, model_display_name(label)) for label in labels), key=lambda c: c[1])
        self.filters["model_label"].extra["choices"] = _any(named)


# ----- the view --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskRow:
    """One line of the task list."""

    task: BulkTask
    model_name: str
    detail_url: str
    duration: str


# Task actions: extra endpoints of the DETAIL role, each ``{http method: handler}``.
_ACTIONS: dict[str, dict[str, str]] = {
    "progress": {"get": "progress"},
    "outcomes": {"get": "outcomes"},
    "cancel": {"post": "cancel"},
}
_ACTION_ROUTES = {
    "progress": "{pk}/progress/",
    "outcomes": "{pk}/outcomes.csv",
    "cancel": "{pk}/cancel/",
}

# List columns: (key, label, sortable field or None, alignment).
_LIST_COLUMNS = (
    ("task", "Task", "id", "start"),
    ("status", "Status", "status", "start"),
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

    model = BulkTask  # type: ignore[misc]  # BulkMixin declares ``model: Any`` as an instance variable
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
            patterns.append(path(f"{base}/{route.format(pk='<int:pk>')}", view, name=f"{base}-{action}"))
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
            urls[action] = reverse(f"{prefix}{base}-{action}", kwargs={"pk": task.pk})
        return urls

    def get_task_context(self, task: BulkTask, **extra: Any) -> dict[str, Any]:
        """What the detail page and the progress fragment show about ``task``."""
        context = {
            "object": task,
            "task": task,
            "task_urls": self.task_urls(task),
            "model_name": model_display_name(task.model_label),
            "duration": format_duration(task.duration),
            "can_cancel": task.status in ACTIVE and self.may_cancel(task),
            "cancelling": task.status == Status.RUNNING and task.cancel_requested,
            "sees_all": self.sees_all_tasks(),
        }
        context.update(extra)
        return context

    def detail_context(self, task: BulkTask, **extra: Any) -> dict[str, Any]:
        payload = _payload(task)
        return self.get_task_context(
            task,
            changes=describe_changes(task) if task.kind == BulkTask.Kind.UPDATE else [],
            errors=row_errors(task),
            atomic=bool(payload.get("atomic", True)),
            dry_run=bool(payload.get("dry_run", False)),
            **extra,
        )

    def detail(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.object = task = self.get_object()
        return self.render_page(self.detail_context(task))

    def progress(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """The progress fragment; to an HTMX poll of a finished task, 286 stops the polling."""
        self.object = task = self.get_object()
        context = self.get_context_data(**self.get_task_context(task))
        html = render_to_string(PROGRESS_TEMPLATE, context, request=request)
        if getattr(request, "htmx", False) and task.is_finished:
            # The poll that sees the end also refreshes any list on the page (pcRefresh).
            return trigger_client_event(HttpResponseStopPolling(html), "pcRefresh")
        return HttpResponse(html)

    def outcomes(self, request: HttpRequest, *args: Any, **kwargs: Any) -> StreamingHttpResponse:
        """``pk,outcome,field,message`` for the task, streamed as a CSV download."""
        task = self.get_object()
        response = StreamingHttpResponse(
            _csv_lines(outcome_rows(task)), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="task-{task.pk}-outcomes.csv"'
        response["Cache-Control"] = "no-store"
        return response

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
            message = f"Task #{task.pk} was cancelled before it started; nothing was changed."
        elif task.status == Status.RUNNING and task.cancel_requested:
            # The worker writes a task in one transaction: a cancelled run saves nothing.
            message = f"Task #{task.pk} will stop at its next batch; nothing it did will be saved."
        else:
            ended = task.get_status_display().lower()
            error = f"Task #{task.pk} has already ended ({ended}), so there is nothing to cancel."
            return self.render_page(self.detail_context(task, error=error), status=409)
        if self.get_partial_name():
            response = self.render_page(self.detail_context(task))
            return trigger_client_event(response, "pcSaved", {"message": message})
        messages.success(request, message, fail_silently=True)
        return HttpResponseRedirect(self.reverse(Role.DETAIL, task))

    def get_base_template_path(self) -> str:
        """``base_template_path``, else ``TASK_DASHBOARD_BASE_TEMPLATE``, else ``BASE_TEMPLATE``."""
        return self.base_template_path or _dashboard_base_template() or pc_settings.BASE_TEMPLATE


def _dashboard_base_template() -> str | None:
    try:
        return getattr(pc_settings, "TASK_DASHBOARD_BASE_TEMPLATE")  # noqa: B009
    except AttributeError:  # not a known setting in this version of powercrud.conf
        return None
