"""The sample app's bulk rules, on top of powercrud's default bulk update service."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet

from powercrud.bulk import BulkContext, BulkResult, BulkUpdateService
from powercrud.bulk.runner import ProgressCallback
from sample.models import Book, BulkAudit

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
            self.audit(context, result, fields_to_update)
        return result

    def audit(self, context: BulkContext, result: BulkResult, fields: Sequence[str] = ()) -> None:
        """Record one applied run (who, how: mode and task, how many rows) as a BulkAudit row."""
        BulkAudit.objects.create(
            mode=context.mode,
            task_name=context.task_name or "",
            user_id="" if context.user_id is None else str(context.user_id),
            model_label=context.model_label,
            fields=", ".join(fields),
            rows=result.success_records,
            failed=result.failed_records,
        )
        audit_logger.info(
            "Bulk update of %s by user %s (%s%s): %s of %s rows written, %s failed.",
            context.model_label,
            context.user_id,
            context.mode,
            f", task {context.task_name}" if context.task_name else "",
            result.success_records,
            result.total,
            result.failed_records,
        )
