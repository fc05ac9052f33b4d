"""The demo's one bulk rule (archived books keep their price) runs in sync and async mode alike,
through its backend and its service, and says so in its audit rows and its audit log."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest
from django.test import override_settings

from powercrud.bulk import BulkContext, BulkResult, RowError
from powercrud.bulk_persistence import BulkUpdatePersistenceBackend, resolve_backend_class, run_bulk_update
from powercrud.jobs.worker import run_bulk_task
from powercrud.models import BulkTask
from sample.backends import BookBulkUpdateBackend
from sample.models import Author, Book, BulkAudit
from sample.services import BookBulkUpdateService

pytestmark = [pytest.mark.demo, pytest.mark.django_db, pytest.mark.urls("sample.urls")]


def select_books(client, books):
    response = client.post("/book/selection/", {"action": "set", "checked": "1", "pk": [b.pk for b in books]})
    assert response.status_code == 200


def test_a_sync_bulk_edit_is_audited_as_sync(htmx_client, admin_user, catalogue):
    select_books(htmx_client, catalogue["books"][:2])
    response = htmx_client.post("/book/bulk/edit/", {"change_status": "on", "status": "published"})
    assert response.status_code == 204
    [entry] = BulkAudit.objects.all()
    assert (entry.mode, entry.task_name, entry.user_id, entry.rows) == ("sync", "", str(admin_user.pk), 2)


def test_an_async_bulk_edit_runs_the_same_rule_and_is_audited_as_async(
    htmx_client, admin_user, catalogue, django_capture_on_commit_callbacks
):
    books = catalogue["books"][:4]  # the fourth (index 3) is archived in the catalogue fixture
    assert books[3].status == Book.Status.ARCHIVED
    select_books(htmx_client, books)
    with (
        override_settings(POWERCRUD_SETTINGS={"BULK_MIN_ASYNC_RECORDS": 1}),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = htmx_client.post("/book/bulk/edit/", {"change_price": "on", "price": "99.00"})
    assert response.status_code == 202
    task = BulkTask.objects.get()
    run_bulk_task(task.pk)
    task.refresh_from_db()
    # All-or-nothing: the archived book's rule fails the run in the worker exactly as in the request.
    assert task.status == BulkTask.Status.FAILED
    assert "archived books cannot be re-priced" in str(task.errors)
    assert not Book.objects.filter(price="99.00").exists()
    assert not BulkAudit.objects.exists()  # rolled back with the run

    select_books(htmx_client, books)  # drop the archived book from the selection, run again
    htmx_client.post("/book/selection/", {"action": "set", "checked": "0", "pk": [books[3].pk]})
    with (
        override_settings(POWERCRUD_SETTINGS={"BULK_MIN_ASYNC_RECORDS": 1}),
        django_capture_on_commit_callbacks(execute=True),
    ):
        htmx_client.post("/book/bulk/edit/", {"change_price": "on", "price": "99.00"})
    second = BulkTask.objects.latest("pk")
    run_bulk_task(second.pk)
    second.refresh_from_db()
    assert second.status == BulkTask.Status.SUCCEEDED
    [entry] = BulkAudit.objects.all()
    assert entry.mode == "async"
    assert entry.task_name == second.task_name
    assert str(second.pk) in entry.task_name
    assert entry.user_id == str(admin_user.pk)
    assert entry.rows == 3


# ----- the backend and service, called directly ----------------------------------------------------


@pytest.fixture
def books(db: None) -> list[Book]:
    author = Author.objects.create(name="Morrison")
    Book.objects.bulk_create(
        Book(title=f"Book {i}", author=author, price=Decimal("10.00"), status=status)
        for i, status in enumerate(["draft", "draft", "published", "archived"])
    )
    return list(Book.objects.order_by("pk"))


def persist(
    backend: BulkUpdatePersistenceBackend, field_data: Mapping[str, Any], **overrides: Any
) -> BulkResult:
    context = {"mode": "async", "model_label": "sample.book", "user_id": 5, "selection_size": 4, **overrides}
    return run_bulk_update(
        backend,
        queryset=Book.objects.all(),
        bulk_fields=["status", "price", "genre"],
        fields_to_update=list(field_data),
        field_data=field_data,
        context=BulkContext(**context),
    )


def prices() -> list[Decimal]:
    return list(Book.objects.order_by("pk").values_list("price", flat=True))


def test_the_backend_refuses_to_reprice_archived_books(books: list[Book], caplog: pytest.LogCaptureFixture):
    resolve_backend_class.cache_clear()
    backend = resolve_backend_class("sample.backends.BookBulkUpdateBackend")()
    archived = books[3]
    with caplog.at_level(logging.INFO, logger="sample.audit"):
        result = persist(backend, {"price": "12.00"}, atomic=False, task_name="bulk-7")
    assert result.errors == (
        RowError(
            pk=archived.pk,
            field="price",
            messages=("“Book 3” is archived; archived books cannot be re-priced.",),
        ),
    )
    assert prices() == [Decimal("12.00")] * 3 + [Decimal("10.00")]
    [record] = [r for r in caplog.records if r.name == "sample.audit"]
    assert record.getMessage() == (
        "Bulk update of sample.book by user 5 (async, task bulk-7): 3 of 4 rows written, 1 failed."
    )
    [entry] = BulkAudit.objects.all()
    assert (entry.mode, entry.task_name, entry.user_id, entry.fields, entry.rows, entry.failed) == (
        "async",
        "bulk-7",
        "5",
        "price",
        3,
        1,
    )


def test_the_service_allows_other_edits_of_archived_books(
    books: list[Book], caplog: pytest.LogCaptureFixture
):
    with caplog.at_level(logging.INFO, logger="sample.audit"):
        check = persist(BookBulkUpdateBackend(), {"price": "12.00"}, dry_run=True)
        result = persist(BookBulkUpdateBackend(), {"status": "draft", "price": "10.00"})
    assert check.dry_run and not check.success and len(check.errors) == 1
    assert (result.success, result.changed) == (True, 2)
    assert [r.getMessage() for r in caplog.records if r.name == "sample.audit"] == [
        "Bulk update of sample.book by user 5 (async): 4 of 4 rows written, 0 failed."
    ]
    assert BookBulkUpdateService.row_fields == ("title", "status")
