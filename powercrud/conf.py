"""One accessor for powercrud's settings, read from ``settings.POWERCRUD_SETTINGS``.

Every default is listed in ``DEFAULTS`` and documented in ``docs/reference/settings.md``.
The cache is cleared on ``setting_changed`` so ``override_settings`` works in tests.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    # The template every powercrud page extends; a view's ``base_template_path`` wins.
    "BASE_TEMPLATE": "powercrud/base.html",
    # Page sizes a user may choose from the list toolbar.
    "PAGE_SIZE_OPTIONS": (10, 25, 50, 100),
    # Used when a view sets no ``paginate_by``.
    "DEFAULT_PAGE_SIZE": 25,
    # A relation (foreign key or many-to-many) with more rows than this is shown, in forms,
    # filters and the bulk modal, as a search-as-you-type control instead of a select.
    "FILTER_SELECT_MAX_CHOICES": 200,
    # Most matches one request to a relation search endpoint returns (then ``more``).
    "RELATION_PAGE_SIZE": 20,
    # Query-string parameter names.
    "SORT_PARAM": "sort",
    "SEARCH_PARAM": "q",
    "PAGE_SIZE_PARAM": "page_size",
    # Most explicit ids any selection source may carry, checked before any query.
    "SELECTION_ID_CAP": 100_000,
    # Rows written per batch by the bulk services.
    "BULK_BATCH_SIZE": 1000,
    # Rows per statement of an all-or-nothing run in the request on the set-based path (no
    # per-row code): its keys go as one parameter, so larger batches cost no placeholders.
    "BULK_SET_BATCH_SIZE": 50_000,
    # Selections this large or larger run on a worker when a view sets ``bulk_async``.
    "BULK_MIN_ASYNC_RECORDS": 1000,
    # Seconds without a heartbeat after which a running bulk task counts as dead.
    "BULK_TASK_HEARTBEAT_TIMEOUT": 120,
    # Seconds a task may wait in the queue before cleanup checks that its job still exists.
    "BULK_TASK_QUEUED_TIMEOUT": 3600,
    # Record every row of every bulk run (the run ledger: undo, retry, full outcomes).
    "BULK_RUN_LEDGER": True,
    # Days the ledger rows of a finished run are kept; powercrud_cleanup prunes older ones.
    "BULK_RUN_ROWS_RETENTION_DAYS": 30,
    # Rows per chunk of a per-row background run, each chunk a job any worker may take (None:
    # one job per run). A view's ``bulk_chunk_size`` overrides it. Check E028.
    "BULK_CHUNK_SIZE": None,
    # Times a chunk whose worker died is run again before it fails.
    "BULK_CHUNK_ATTEMPTS": 3,
    # What queues background jobs: a class with enqueue() and waiting() (powercrud.jobs.runners).
    "BULK_RUNNER": "powercrud.jobs.runners.DjangoQRunner",
    # Largest file (bytes) an import accepts; a larger upload is refused before it is read.
    "IMPORT_MAX_BYTES": 20 * 1024 * 1024,
    # Where an uploaded import file waits between its screens (None: the system's temp folder).
    "IMPORT_UPLOAD_DIR": None,
    # The template the task dashboard extends; None means BASE_TEMPLATE.
    "TASK_DASHBOARD_BASE_TEMPLATE": None,
    # The JSON API's token authentication: a dotted path to ``callable(request) -> user | None``
    # (None: the session only). Checks E021/E022.
    "API_AUTHENTICATE": None,
}


class Settings:
    """Attribute access to powercrud settings with defaults; unknown names raise AttributeError."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] | None = None

    def _user_settings(self) -> dict[str, Any]:
        if self._cache is None:
            self._cache = dict(getattr(django_settings, "POWERCRUD_SETTINGS", None) or {})
        return self._cache

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in DEFAULTS:
            raise AttributeError(f"powercrud has no setting named {name!r}.")
        return self._user_settings().get(name, DEFAULTS[name])

    def unknown_names(self) -> list[str]:
        """Return keys in POWERCRUD_SETTINGS that powercrud does not know (for a system check)."""
        return sorted(set(self._user_settings()) - set(DEFAULTS))

    def reload(self) -> None:
        self._cache = None


settings = Settings()


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == "POWERCRUD_SETTINGS":
        settings.reload()


setting_changed.connect(_reload)
