"""Writes are POST only and need a CSRF token, on every endpoint that writes: create, update,
delete, selection, bulk edit and bulk delete (in the request and queued), task cancel and retry.
GET, HEAD and the other methods change nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from powercrud.models import BulkTask, RowLock
from tests.bulk_urls import book_snapshot
from tests.security.conftest import login, plant_ids, selection_key

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.security.urls")]

Catalogue = dict[str, Any]
EDIT = {"change_status": "1", "status": "out_of_print", "dry_run": "0"}

# name -> (url for the catalogue and a queued task, the POST data)
WRITES: dict[str, tuple[Callable[[Catalogue, BulkTask], str], Callable[[Catalogue], dict[str, Any]]]] = {
    "create": (
        lambda c, t: "/plain-books/new/",
        lambda c: {"title": "Forged", "author": c["authors"][0].pk, "status": "draft", "price": "1"},
    ),
    "update": (
        lambda c, t: f"/plain-books/{c['books'][1].pk}/edit/",
        lambda c: {"title": "Forged", "author": c["authors"][0].pk, "status": "draft", "price": "1"},
    ),
    "delete": (lambda c, t: f"/plain-books/{c['books'][1].pk}/delete/", lambda c: {}),
    "selection": (
        lambda c, t: "/plain-books/selection/",
        lambda c: {"action": "set", "checked": "1", "pk": [c["books"][9].pk]},
    ),
    "bulk edit": (lambda c, t: "/plain-books/bulk/edit/", lambda c: EDIT),
    "bulk edit, queued": (lambda c, t: "/async-books/bulk/edit/", lambda c: EDIT),
    "bulk delete": (lambda c, t: "/plain-books/bulk/delete/", lambda c: {}),
    "bulk delete, queued": (lambda c, t: "/async-books/bulk/delete/", lambda c: {}),
    "task cancel": (lambda c, t: f"/powercrud/tasks/{t.pk}/cancel/", lambda c: {}),
    "task retry": (lambda c, t: f"/powercrud/tasks/{failed_run(c, t).pk}/retry/", lambda c: {}),
}


def failed_run(c: Catalogue, queued: BulkTask) -> BulkTask:
    """A finished bulk edit of ``queued``'s owner whose one failed row can be retried."""
    from powercrud.bulk.request import BulkRequest

    request = BulkRequest(
        operation="update",
        model_label="testapp.book",
        fields_to_update=("price",),
        field_data={"price": "1.00"},
        bulk_fields=("price",),
        view_name="tests.bulk_urls.PlainBookView",
    )
    return BulkTask.objects.create(
        owner=queued.owner,
        kind="update",
        model_label="testapp.book",
        status="failed",
        failure_count=1,
        errors=[{"pk": c["books"][7].pk, "field": "price", "messages": ["No."]}],
        payload=request.to_dict(),
    )


SUCCESS = {
    "create": 302,
    "update": 302,
    "delete": 302,
    "selection": 200,
    "bulk edit": 302,
    "bulk edit, queued": 202,
    "bulk delete": 302,
    "bulk delete, queued": 202,
    "task cancel": 302,
    "task retry": 302,
}


@pytest.fixture
def setup(admin_user: Any, catalogue: Catalogue) -> tuple[Client, BulkTask]:
    """A queued task on books 20 and 21, and a selection of books 2 and 3 in both bulk views."""
    task = BulkTask.objects.create(owner=admin_user, kind="update", model_label="testapp.book", total=2)
    for book in catalogue["books"][20:22]:
        RowLock.objects.create(task=task, model_label="testapp.book", object_pk=str(book.pk))
    client = login(admin_user, enforce_csrf_checks=True)
    for base in ("plain-books", "async-books"):
        plant_ids(client, base, [b.pk for b in catalogue["books"][2:4]])
    return client, task


def state(client: Client) -> tuple[Any, ...]:
    return (
        book_snapshot(),
        sorted(BulkTask.objects.values_list("pk", "status")),
        sorted(RowLock.objects.values_list("object_pk", flat=True)),
        client.session.get(selection_key("plain-books")),
        client.session.get(selection_key("async-books")),
    )


@pytest.mark.parametrize("name", list(WRITES))
def test_every_write_needs_a_csrf_token(
    setup: tuple[Client, BulkTask], catalogue: Catalogue, django_capture_on_commit_callbacks: Any, name: str
) -> None:
    client, task = setup
    url, data = WRITES[name][0](catalogue, task), WRITES[name][1](catalogue)
    before = state(client)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, data)
    assert response.status_code == 403
    assert "CSRF verification failed" in response.content.decode()
    assert state(client) == before
    # The same post with the token the page hands out (as htmx sends it, in a header) goes through.
    client.get("/plain-books/")
    token = client.cookies["csrftoken"].value
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, data, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == SUCCESS[name]
    assert state(client) != before


@pytest.mark.parametrize("method", ["get", "head"])
@pytest.mark.parametrize("name", list(WRITES))
def test_get_and_head_with_write_parameters_change_nothing(
    setup: tuple[Client, BulkTask],
    catalogue: Catalogue,
    django_capture_on_commit_callbacks: Any,
    name: str,
    method: str,
) -> None:
    client, task = setup
    url, data = WRITES[name][0](catalogue, task), WRITES[name][1](catalogue)
    before = state(client)
    with django_capture_on_commit_callbacks(execute=True):
        response = getattr(client, method)(url, {**data, "action": "clear", "confirm": "yes"})
    assert response.status_code == (405 if name.startswith("task ") else 200)
    assert state(client) == before


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
@pytest.mark.parametrize("name", list(WRITES))
def test_other_methods_are_not_allowed(
    setup: tuple[Client, BulkTask], catalogue: Catalogue, name: str, method: str
) -> None:
    client, task = setup
    client.handler.enforce_csrf_checks = False  # the method, not the missing token, is refused
    url = WRITES[name][0](catalogue, task)
    before = state(client)
    response = getattr(client, method)(url)
    assert response.status_code == 405
    assert "post" in response["Allow"].lower()
    assert state(client) == before
