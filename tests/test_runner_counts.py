"""Failed rows are counted, never inferred from the capped list of row errors.

A service keeps at most ``max_reported_errors`` row errors (10,000 by default); a run where
12,262 rows fail must still say 12,262, in its result, its message and its task record. A
cap of 3 with 7 failing rows shows the same thing quickly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import models

from powercrud.bulk import BulkContext, BulkDeleteService, BulkUpdateService
from powercrud.bulk.runner import BatchOutcome, Isolation, run_batches
from powercrud.bulk.types import RowError
from powercrud.bulk_persistence import BulkUpdatePersistenceBackend
from tests.testapp.models import Author, Book

pytestmark = pytest.mark.django_db

CAP = 3
ROWS = 12
FAILING = 7  # more than CAP


class CappedService(BulkUpdateService):
    """Refuses the first seven books (titles "Book 00" to "Book 06"); keeps three errors."""

    max_reported_errors = CAP

    def validate_row(
        self, instance: models.Model, new_values: Mapping[str, Any], context: BulkContext
    ) -> None:
        if int(instance.title[-2:]) < FAILING:  # type: ignore[attr-defined]
            raise ValidationError({"status": "Not this one."})


class CappedBackend(BulkUpdatePersistenceBackend):
    def persist_bulk_update(self, **kwargs: Any) -> Any:
        return CappedService().apply(**kwargs)


class CappedDelete(BulkDeleteService):
    max_reported_errors = CAP


def run_capped_task(*, atomic: bool) -> Any:
    """A background run of ``CappedBackend`` over every book, run to its end; returns the task."""
    from powercrud.bulk.request import BulkRequest
    from powercrud.jobs.launch import launch_bulk_task
    from powercrud.jobs.worker import run_bulk_task

    request = BulkRequest(
        operation="update",
        model_label="testapp.book",
        fields_to_update=("status",),
        field_data={"status": "published"},
        bulk_fields=("status",),
        atomic=atomic,
        batch_size=5,
        backend_path=f"{__name__}.CappedBackend",
    )
    task = launch_bulk_task(request, Book.objects.all(), user=None)
    assert run_bulk_task(task.pk) == "failed"
    task.refresh_from_db()
    return task


def books() -> list[Book]:
    author = Author.objects.create(name="Counted")
    return [
        Book.objects.create(title=f"Book {i:02d}", author=author, status="draft", price=Decimal("1.00"))
        for i in range(ROWS)
    ]


def context(model: type[models.Model], atomic: bool, operation: str = "update") -> BulkContext:
    return BulkContext(
        mode="sync",
        model_label=model._meta.label_lower,
        user_id=None,
        selection_size=ROWS,
        atomic=atomic,
        batch_size=5,
        operation=operation,  # type: ignore[arg-type]
    )


def update(atomic: bool) -> Any:
    return CappedService().apply(
        queryset=Book.objects.all(),
        bulk_fields=["status"],
        fields_to_update=["status"],
        field_data={"status": "published"},
        context=context(Book, atomic),
    )


def test_the_runner_counts_every_failed_row_past_the_cap() -> None:
    def process(batch: Sequence[Any], isolation: Isolation) -> BatchOutcome:
        out = BatchOutcome()
        for pk in batch:
            if pk < FAILING:
                out.fail(pk, [RowError(pk=pk, field=None, messages=("No.",))])
            else:
                out.succeeded += 1
        return out

    outcome = run_batches(
        pks=list(range(ROWS)),
        context=context(Book, atomic=False),
        using="default",
        process=process,
        retry_on=(),
        describe_error=str,
        max_errors=CAP,
    )
    assert (outcome.failed, len(outcome.errors), outcome.succeeded) == (FAILING, CAP, ROWS - FAILING)


@pytest.mark.parametrize("atomic", [True, False], ids=["all-or-nothing", "per-row"])
def test_the_update_result_message_counts_past_the_cap(atomic: bool) -> None:
    books()
    result = update(atomic)
    assert len({e.pk for e in result.errors}) == CAP
    assert result.message.startswith(f"{FAILING} of {ROWS} rows failed")
    assert result.message.endswith(f"Only the first {CAP} errors are listed.")


@pytest.mark.parametrize("atomic", [True, False], ids=["all-or-nothing", "per-row"])
def test_the_update_result_counts_every_failed_row_past_the_cap(atomic: bool) -> None:
    books()
    result = update(atomic)
    assert not result.success
    assert len(result.errors) == CAP
    assert result.failed_records == FAILING
    assert result.success_records == (0 if atomic else ROWS - FAILING)


@pytest.mark.parametrize("atomic", [True, False], ids=["all-or-nothing", "per-row"])
def test_the_delete_result_counts_every_failed_row_past_the_cap(atomic: bool) -> None:
    authors = [Author.objects.create(name=f"Author {i:02d}") for i in range(ROWS)]
    for author in authors[:FAILING]:  # PROTECT: these cannot be deleted
        Book.objects.create(title="Keeps it", author=author, price=Decimal("1.00"))
    result = CappedDelete().apply(queryset=Author.objects.all(), context=context(Author, atomic, "delete"))
    assert len(result.errors) == CAP
    assert result.failed_records == FAILING
    assert result.message.startswith(f"{FAILING} of {ROWS} rows failed")


@pytest.mark.parametrize("atomic", [True, False], ids=["all-or-nothing", "per-row"])
def test_a_tasks_failure_count_counts_every_failed_row_past_the_cap(atomic: bool) -> None:
    from powercrud.models import BulkTask

    books()
    task = run_capped_task(atomic=atomic)
    assert task.status == BulkTask.Status.FAILED
    assert len(task.errors) == CAP
    assert task.failure_count == FAILING
    assert task.success_count == (0 if atomic else ROWS - FAILING)


@pytest.mark.parametrize("atomic", [True, False], ids=["all-or-nothing", "per-row"])
def test_the_delete_message_says_only_some_errors_are_listed(atomic: bool) -> None:
    authors = [Author.objects.create(name=f"Author {i:02d}") for i in range(ROWS)]
    for author in authors[:FAILING]:
        Book.objects.create(title="Keeps it", author=author, price=Decimal("1.00"))
    result = CappedDelete().apply(queryset=Author.objects.all(), context=context(Author, atomic, "delete"))
    assert result.message.startswith(f"{FAILING} of {ROWS} rows failed")
    assert result.message.endswith(f"Only the first {CAP} errors are listed.")


def test_the_task_page_says_how_many_errors_it_lists(
    admin_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Errors stored on a task are capped, but the page lists every failed row from the ledger."""
    from powercrud.jobs import monitor

    monkeypatch.setattr(monitor, "MAX_STORED_ERRORS", 2)
    books()
    task = run_capped_task(atomic=False)
    assert (len(task.errors), task.failure_count, task.errors_omitted) == (2, FAILING, FAILING - 2)
    html = admin_client.get(f"/powercrud/tasks/{task.pk}/").content.decode()
    assert f'<span class="pc-pill">{FAILING} failed</span>' in html
    assert f"Showing <strong>1–{FAILING}</strong> of <strong>{FAILING}</strong>" in html
    assert "more failed rows are counted but not listed" not in html
