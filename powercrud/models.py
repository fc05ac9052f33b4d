"""The async bulk task record and the row locks that freeze and protect its selection.

``BulkTask`` is everything a worker needs to run one bulk edit or delete (plain JSON in
``payload``) and everything the dashboard shows about it (status, progress, counts, errors,
times). ``RowLock`` rows are the task's frozen selection: one per selected row, unique per
(model, primary key), so two tasks (or a task and a form edit) never change the same row.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from powercrud.bulk.request import BulkRequest

MAX_STORED_ERRORS = 1000
"""At most this many row errors are kept on a task; the rest are only counted."""

SELECTION_KEY = "selection"
"""The ``payload`` key of a background run's stored selection (``jobs.freeze``), beside its request."""

CHUNK_SIZE_KEY = "chunk_size"
"""The ``payload`` key of a per-row background run's chunk size (``jobs.chunks``), beside its request."""


class BulkTask(models.Model):
    """One bulk run, from submit to its outcome: in the request or on a worker, a check or an apply."""

    class Kind(models.TextChoices):
        UPDATE = "update", "Bulk edit"
        DELETE = "delete", "Bulk delete"
        IMPORT = "import", "Import"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Mode(models.TextChoices):
        SYNC = "sync", "In the request"
        ASYNC = "async", "On a worker"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    kind = models.CharField(max_length=10, choices=Kind.choices)
    model_label = models.CharField(max_length=200, help_text="'app_label.model_name' of the rows.")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="powercrud_bulk_tasks",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    mode = models.CharField(max_length=5, choices=Mode.choices, default=Mode.ASYNC)
    dry_run = models.BooleanField(
        "check only", default=False, help_text="A check: the run reported what it would do and saved nothing."
    )
    reason = models.CharField(max_length=500, blank=True, help_text="Why the user ran it, as they typed it.")
    notified_at = models.DateTimeField(
        null=True, blank=True, help_text="When the owner was told that this background run ended."
    )
    total = models.PositiveIntegerField(default=0, help_text="Rows in the frozen selection.")
    done = models.PositiveIntegerField(default=0, help_text="Rows processed so far.")
    success_count = models.PositiveIntegerField(default=0)
    failure_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(
        default=list, blank=True, help_text="Row errors: [{'pk', 'field', 'messages'}, ...]."
    )
    errors_omitted = models.PositiveIntegerField(
        default=0,
        help_text=f"Failed rows whose errors are not stored (beyond the first {MAX_STORED_ERRORS}).",
    )
    row_counts = models.JSONField(
        default=dict,
        blank=True,
        help_text="The run's rows by outcome, counted from its ledger when it ended.",
    )
    message = models.TextField(blank=True, help_text="A readable summary of the outcome.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    payload = models.JSONField(
        default=dict,
        blank=True,
        help_text="The BulkRequest the worker runs, as BulkRequest.to_dict() stores it.",
    )
    result = models.JSONField(null=True, blank=True, help_text="BulkResult.to_dict() of the run.")
    q_task_id = models.CharField(max_length=64, blank=True, help_text="django-q2's id for the job.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="powercrud_task_status"),
            models.Index(fields=["owner", "-created_at"], name="powercrud_task_owner"),
            models.Index(fields=["-created_at"], name="powercrud_task_created"),
        ]
        verbose_name = "bulk task"

    def __str__(self) -> str:
        return f"Bulk task #{self.pk} ({self.get_kind_display().lower()} {self.model_label}, {self.status})"

    @property
    def task_name(self) -> str:
        """The name django-q2 and ``BulkContext.task_name`` know this task by."""
        return f"powercrud-bulk-{self.pk}"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def percent(self) -> int:
        """Progress as a whole percentage (0-100), for a progress bar."""
        if self.total <= 0:
            return 100 if self.status == self.Status.SUCCEEDED else 0
        return max(0, min(100, self.done * 100 // self.total))

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish (or to the last heartbeat while running)."""
        end = self.finished_at or self.heartbeat_at
        if self.started_at is None or end is None:
            return None
        return max(0.0, (end - self.started_at).total_seconds())

    @property
    def model_class(self) -> type[models.Model] | None:
        """The model the task writes, or None when it no longer exists."""
        from django.apps import apps

        try:
            return apps.get_model(self.model_label)
        except (LookupError, ValueError):
            return None

    def read_request(self) -> BulkRequest:
        """The ``BulkRequest`` this task runs; ``ValueError`` when the stored form is not valid."""
        stored = self.payload
        beside = (SELECTION_KEY, CHUNK_SIZE_KEY)  # the run's, not the request's
        if isinstance(stored, dict) and any(key in stored for key in beside):
            stored = {key: value for key, value in stored.items() if key not in beside}
        return BulkRequest.from_dict(stored, operation=self.kind, model_label=self.model_label)

    @property
    def stored_request(self) -> BulkRequest | None:
        """The ``BulkRequest`` for display, or None when the stored form cannot be read."""
        try:
            return self.read_request()
        except ValueError:
            return None

    def row_errors(self) -> list[dict[str, Any]]:
        """The stored row errors (at most ``MAX_STORED_ERRORS``)."""
        return list(self.errors or [])


class RowLock(models.Model):
    """One row held by one bulk task; unique per (model, primary key).

    ``object_pk`` is the database's own text form of the primary key (``CAST(pk AS text)``),
    so the same row always gives the same key, whatever its type.
    """

    task = models.ForeignKey(BulkTask, on_delete=models.CASCADE, related_name="locks")
    model_label = models.CharField(max_length=200)
    object_pk = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model_label", "object_pk"], name="powercrud_rowlock_unique_row"),
        ]
        verbose_name = "row lock"

    def __str__(self) -> str:
        return f"{self.model_label} {self.object_pk} locked by bulk task #{self.task_id}"


class RunRow(models.Model):
    """What one bulk run did to one row: the run ledger, written set-based as the run goes.

    ``object_pk`` is the row's key in the database's text form (as ``RowLock`` stores it).
    ``old`` and ``new`` map field names to plain JSON values (many-to-many: the related
    primary keys, sorted); a delete keeps every concrete field in ``old``. ``errors`` is
    ``[{'field', 'messages'}, ...]`` for a failed, skipped or conflicting row.
    """

    class Outcome(models.TextChoices):
        CHANGED = "changed", "Changed"
        UNCHANGED = "unchanged", "Unchanged"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        NOT_REACHED = "not_reached", "Not reached"
        CONFLICT = "conflict", "Conflict"
        CREATED = "created", "Created"

    # Indexed first in both indexes below (its own index only slowed every insert), and with no
    # database constraint: PostgreSQL checks a deferred foreign key once per inserted row at
    # commit, seconds for a run of a million rows. Deleting a run through the ORM still
    # deletes its rows (on_delete=CASCADE is Django's).
    run = models.ForeignKey(
        BulkTask, on_delete=models.CASCADE, related_name="rows", db_index=False, db_constraint=False
    )
    object_pk = models.CharField(max_length=255)
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    old = models.JSONField(null=True, blank=True)
    new = models.JSONField(null=True, blank=True)
    errors = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "object_pk"], name="powercrud_runrow_unique_row"),
        ]
        indexes = [models.Index(fields=["run", "outcome"], name="powercrud_runrow_outcome")]
        verbose_name = "run row"

    def __str__(self) -> str:
        return f"{self.object_pk}: {self.outcome} in bulk run #{self.run_id}"


class RunChunk(models.Model):
    """One chunk of a chunked per-row background run (``jobs.chunks``): a slice of its locked
    rows that one worker job writes in its own transaction.

    Its rows are the run's ``RowLock`` rows whose ``object_pk`` (the key's text form) lies from
    ``first_key`` to ``last_key`` in the database's order of that column. ``attempts`` counts
    claims; the claim that finishes the chunk must still be the latest one (cleanup may have
    re-queued it meanwhile).
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    run = models.ForeignKey(BulkTask, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    first_key = models.CharField(max_length=255)
    last_key = models.CharField(max_length=255)
    size = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    success_count = models.PositiveIntegerField(default=0)
    failure_count = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True, default="")
    errors = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "index"], name="powercrud_runchunk_unique_index"),
        ]
        verbose_name = "run chunk"

    def __str__(self) -> str:
        return f"chunk {self.index} of bulk run #{self.run_id} ({self.status})"


class ViewPreference(models.Model):
    """One user's choices on one list screen: their columns, or one of their saved views; or
    their display settings, which hold on every screen.

    ``kind`` says which. A ``columns`` row (at most one per user and view) holds the columns
    the user shows, in order. A ``saved`` row is a named state of the list: its query string
    (filters, search, sort, page size) and its columns. A ``display`` row (at most one per
    user, ``view_key`` empty) holds the row density and theme in ``display``. All three are
    read in one query per list page. ``columns`` may name columns the view no longer has, and
    ``display`` values it does not know; they are ignored when read.
    """

    DISPLAY_KEY = ""
    """The ``view_key`` of a ``display`` row: it belongs to no one list."""

    class Kind(models.TextChoices):
        COLUMNS = "columns", "Column choice"
        SAVED = "saved", "Saved view"
        DISPLAY = "display", "Display settings"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="powercrud_view_preferences"
    )
    view_key = models.CharField(max_length=200, help_text="Which list: '<app.model>:<url base>'.")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.COLUMNS)
    name = models.CharField(
        max_length=100, blank=True, help_text="A saved view's name, as the user typed it."
    )
    query = models.CharField(
        max_length=2000,
        blank=True,
        help_text="A saved view's query string: filters, search, sort, page size.",
    )
    columns = models.JSONField(
        default=list, blank=True, help_text="The columns shown, in order; empty for the view's own."
    )
    display = models.JSONField(
        default=dict,
        blank=True,
        help_text="Display settings (kind 'display'): {'density': 'compact'|'comfortable', "
        "'theme': 'auto'|'light'|'dark'}.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "view_key"],
                condition=models.Q(kind="columns"),
                name="powercrud_viewpref_one_column_choice",
            ),
            models.UniqueConstraint(
                fields=["user"], condition=models.Q(kind="display"), name="powercrud_viewpref_one_display"
            ),
        ]
        indexes = [models.Index(fields=["user", "view_key"], name="powercrud_viewpref_user_view")]
        verbose_name = "view preference"

    def __str__(self) -> str:
        if self.kind == self.Kind.SAVED:
            return f"Saved view “{self.name}” of {self.view_key}"
        if self.kind == self.Kind.DISPLAY:
            return "Display settings"
        return f"Columns of {self.view_key}"
