"""The sample's one bulk rule runs in sync and async mode alike, and says so in its audit rows."""

from __future__ import annotations

import pytest
from django.test import override_settings

from powercrud.jobs.worker import run_bulk_task
from powercrud.models import BulkTask
from sample.models import Book, BulkAudit

pytestmark = pytest.mark.django_db


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
