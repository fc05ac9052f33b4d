"""Worker-safe bulk update backend for books: the same service for sync and async runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db.models import QuerySet

from powercrud.bulk import BulkContext, BulkResult
from powercrud.bulk.runner import ProgressCallback
from powercrud.bulk_persistence import BulkUpdatePersistenceBackend
from sample.services import BookBulkUpdateService


class BookBulkUpdateBackend(BulkUpdatePersistenceBackend):
    """Worker-safe backend used by the async bulk tutorial."""

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
        """Write the update through ``BookBulkUpdateService``; returns its result."""
        return BookBulkUpdateService().apply(
            queryset=queryset,
            bulk_fields=bulk_fields,
            fields_to_update=fields_to_update,
            field_data=field_data,
            context=context,
            progress_callback=progress_callback,
        )
