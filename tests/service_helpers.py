"""Helpers for the tests that call ``BulkUpdateService`` directly (test_bulk_service.py and the
module-named tests of its parts: test_bulk_plan.py, test_bulk_m2m.py, test_bulk_runner.py,
test_bulk_strategies.py). The ``shop`` fixture they share is in conftest.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import models
from django.db.models import QuerySet

from powercrud.bulk import BulkContext, BulkResult, BulkUpdateService
from tests.testapp.models import Book


def context_for(model: type[models.Model], size: int = 0, **overrides: Any) -> BulkContext:
    """A sync update context for ``model`` (``overrides``: any other BulkContext field)."""
    values: dict[str, Any] = {
        "mode": "sync",
        "model_label": model._meta.label_lower,
        "user_id": 1,
        "selection_size": size,
    }
    values.update(overrides)
    return BulkContext(**values)


def update(
    queryset: QuerySet[Any],
    field_data: Mapping[str, Any],
    *,
    service: BulkUpdateService | None = None,
    bulk_fields: Sequence[str] | None = None,
    progress: list[tuple[int, int]] | None = None,
    **overrides: Any,
) -> BulkResult:
    """Write ``field_data`` to ``queryset`` with ``service`` (default: ``BulkUpdateService``);
    ``bulk_fields`` defaults to the fields written, ``progress`` collects the callbacks."""
    fields = list(field_data)
    return (service or BulkUpdateService()).apply(
        queryset=queryset,
        bulk_fields=bulk_fields if bulk_fields is not None else fields,
        fields_to_update=fields,
        field_data=field_data,
        context=context_for(queryset.model, queryset.count(), **overrides),
        progress_callback=(lambda done, total: progress.append((done, total)))
        if progress is not None
        else None,
    )


def snapshot(model: type[models.Model]) -> list[dict[str, Any]]:
    """Every row of ``model`` as stored, in pk order."""
    return list(model.objects.order_by("pk").values())


def book_tags() -> set[tuple[int, int]]:
    """Every (book, tag) link in the through table."""
    return set(Book.tags.through.objects.values_list("book_id", "tag_id"))
