"""A bulk update service with a row rule and a side effect, for the package's tests.

Archived books keep their price (a per-row ``validate_row`` failure), and every applied run
(not a dry run) writes one ``BulkAudit`` row, so a test can count how often a run was applied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet

from powercrud.bulk import BulkContext, BulkResult, BulkUpdateService
from powercrud.bulk.runner import ProgressCallback
from tests.testapp.models import Book, BulkAudit


class BookBulkUpdateService(BulkUpdateService):
    row_fields = ("title", "status")

    def validate_row(self, instance: Model, new_values: Mapping[str, Any], context: BulkContext) -> None:
        assert isinstance(instance, Book)
        if (
            "price" in new_values
            and instance.status == Book.Status.ARCHIVED
            and instance.price != new_values["price"]
        ):
            raise ValidationError(
                {"price": f"“{instance.title}” is archived; archived books cannot be re-priced."}
            )

    def apply(
        self,
        *,
        queryset: QuerySet[Any],
        bulk_fields: Sequence[str],
        fields_to_update: Sequence[str],
        field_data: Mapping[str, Any],
        context: BulkContext,
        progress_callback: ProgressCallback | None = None,
    ) -> BulkResult:
        result = super().apply(
            queryset=queryset,
            bulk_fields=bulk_fields,
            fields_to_update=fields_to_update,
            field_data=field_data,
            context=context,
            progress_callback=progress_callback,
        )
        if not result.dry_run:
            BulkAudit.objects.create(
                mode=context.mode,
                task_name=context.task_name or "",
                user_id="" if context.user_id is None else str(context.user_id),
                model_label=context.model_label,
                fields=", ".join(fields_to_update),
                rows=result.success_records,
                failed=result.failed_records,
            )
        return result
