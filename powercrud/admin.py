"""Django admin for bulk tasks and row locks: read-only views of what the workers do.

Tasks are created by bulk views and changed only by workers, so the admin never adds or edits
them. It can cancel queued or running tasks (an action, for holders of
``powercrud.change_bulktask``) and delete finished ones. Row locks
are read-only: they are released with their task, or by ``manage.py powercrud_cleanup``.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from powercrud.jobs.monitor import request_cancel
from powercrud.models import SELECTION_KEY, BulkTask, RowLock, ViewPreference

ACTIVE = (BulkTask.Status.QUEUED, BulkTask.Status.RUNNING)


@admin.register(BulkTask)
class BulkTaskAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "kind",
        "model_label",
        "owner",
        "status",
        "progress",
        "success_count",
        "failure_count",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "kind", "model_label", "cancel_requested", "created_at")
    search_fields = ("=id", "model_label", "owner__username", "message")
    date_hierarchy = "created_at"
    list_select_related = ("owner",)
    ordering = ("-created_at", "-id")
    actions = ("cancel_tasks",)
    readonly_fields = (
        "dashboard_link",
        "kind",
        "model_label",
        "owner",
        "status",
        "total",
        "done",
        "success_count",
        "failure_count",
        "errors",
        "errors_omitted",
        "message",
        "created_at",
        "started_at",
        "finished_at",
        "heartbeat_at",
        "attempts",
        "cancel_requested",
        "stored_request",
        "result",
        "q_task_id",
    )
    fieldsets = (
        (None, {"fields": ("dashboard_link", "kind", "model_label", "owner", "status", "message")}),
        ("Progress", {"fields": ("total", "done", "success_count", "failure_count", "cancel_requested")}),
        ("Times", {"fields": ("created_at", "started_at", "finished_at", "heartbeat_at", "attempts")}),
        ("Row errors", {"fields": ("errors", "errors_omitted"), "classes": ("collapse",)}),
        ("Job", {"fields": ("stored_request", "result", "q_task_id"), "classes": ("collapse",)}),
    )

    @admin.display(description="Progress")
    def progress(self, task: BulkTask) -> str:
        return f"{task.done} / {task.total} ({task.percent}%)"

    @admin.display(description="Payload")
    def stored_request(self, task: BulkTask) -> str:
        """The stored request, without a queued run's stored selection: a pickled query, which
        holds whatever objects the view filtered by (a user row, say, password hash included).
        The worker removes it once it has locked the rows."""
        payload = task.payload if isinstance(task.payload, dict) else {}
        shown = {key: value for key, value in payload.items() if key != SELECTION_KEY}
        text = json.dumps(shown, indent=2, sort_keys=True, default=str)
        if SELECTION_KEY in payload:
            text += "\n(and a stored selection, not shown: the worker locks its rows and removes it)"
        return text

    @admin.display(description="Dashboard")
    def dashboard_link(self, task: BulkTask) -> str:
        try:
            url = reverse("powercrud:tasks-detail", kwargs={"pk": task.pk})
        except NoReverseMatch:  # the host project did not include powercrud.urls
            return "—"
        return format_html('<a href="{}">Open task #{} in the task dashboard</a>', url, task.pk)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Read-only: only workers write a task (a save here could overwrite their progress).
        return False

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        """The cancel action: holders of ``powercrud.change_bulktask`` (as on the dashboard)."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Finished tasks only: deleting a live task would free its rows under a running worker."""
        if obj is not None and obj.status in ACTIVE:
            return False
        return super().has_delete_permission(request, obj)

    @admin.action(description="Cancel selected queued or running tasks", permissions=["cancel"])
    def cancel_tasks(self, request: HttpRequest, queryset: QuerySet[BulkTask]) -> None:
        cancelled = stopping = 0
        for task in queryset.filter(status__in=ACTIVE):
            task = request_cancel(task)
            if task.status == BulkTask.Status.CANCELLED:
                cancelled += 1
            elif task.cancel_requested:
                stopping += 1
        self.message_user(
            request,
            f"{cancelled} task(s) cancelled; {stopping} running task(s) will stop at their next batch.",
            messages.SUCCESS,
        )


@admin.register(RowLock)
class RowLockAdmin(admin.ModelAdmin):
    list_display = ("model_label", "object_pk", "task", "created_at")
    list_filter = ("model_label",)
    search_fields = ("object_pk", "=task__id")
    list_select_related = ("task",)
    raw_id_fields = ("task",)
    show_full_result_count = False  # a task can hold a million locks

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ViewPreference)
class ViewPreferenceAdmin(admin.ModelAdmin):
    """Users' column choices and saved views: listed to help them, deleted to reset them."""

    list_display = ("id", "user", "view_key", "kind", "name", "updated_at")
    list_filter = ("kind", "view_key")
    search_fields = ("user__username", "view_key", "name")
    readonly_fields = ("user", "view_key", "kind", "created_at", "updated_at")
