"""A worker-safe bulk update backend (importable by dotted path) over ``BookBulkUpdateService``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db.models import QuerySet

from powercrud.bulk import BulkContext, BulkResult
from powercrud.bulk.runner import ProgressCallback
from powercrud.bulk_persistence import BulkUpdatePersistenceBackend
from tests.testapp.services import BookBulkUpdateService


class BookBulkUpdateBackend(BulkUpdatePersistenceBackend):
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
        return BookBulkUpdateService().apply(
            queryset=queryset,
            bulk_fields=bulk_fields,
            fields_to_update=fields_to_update,
            field_data=field_data,
            context=context,
            progress_callback=progress_callback,
        )
