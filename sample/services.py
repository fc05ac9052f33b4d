"""The sample app's bulk rules, on top of powercrud's default bulk update service."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet

from powercrud.bulk import BulkContext, BulkResult, BulkUpdateService
from powercrud.bulk.runner import ProgressCallback
from sample.models import Book

audit_logger = logging.getLogger("sample.audit")


class BookBulkUpdateService(BulkUpdateService):
    """Books: archived books keep their price, and every applied run is audited."""

    row_fields = ("title", "status")

    def validate_row(self, instance: Model, new_values: Mapping[str, Any], context: BulkContext) -> None:
        """Fail the row when it is an archived book being re-priced."""
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
        """Apply the update, then record it in the audit trail unless it was a dry run."""
        result = super().apply(
            queryset=queryset,
            bulk_fields=bulk_fields,
            fields_to_update=fields_to_update,
            field_data=field_data,
            context=context,
            progress_callback=progress_callback,
        )
        if not result.dry_run:
            self.audit(context, result)
        return result

    def audit(self, context: BulkContext, result: BulkResult) -> None:
        """Record one applied run: who, how (mode, task), and how many rows."""
        audit_logger.info(
            "Bulk update of %s by user %s (%s%s): %s of %s rows written, %s failed.",
            context.model_label,
            context.user_id,
            context.mode,
            f", task {context.task_name}" if context.task_name else "",
            result.success_records,
            result.total,
            result.failed_records,
            extra={
                "bulk_mode": context.mode,
                "bulk_task_name": context.task_name,
                "bulk_user_id": context.user_id,
                "bulk_model": context.model_label,
                "bulk_success": result.success,
                "bulk_count": result.success_records,
                "bulk_failed": result.failed_records,
            },
        )
