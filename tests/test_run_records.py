"""Every bulk run leaves a run record: in the request as on a worker, a check as an apply.

A run in the request is recorded in its own transaction, already finished, with the same
fields a background run gets (kind, mode, check, reason, counts, errors, the request); a
request refused before it runs (a conflict, bad input) leaves no record.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from powercrud.models import BulkTask
from tests.bulk_urls import select
from tests.security.conftest import login
from tests.testapp.models import Book

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.security.urls")]

Catalogue = dict[str, Any]


def edit(client: Any, base: str, data: dict[str, str], capture: Any) -> Any:
    with capture(execute=True):
        return client.post(f"/{base}/bulk/edit/", data)


def test_a_run_in_the_request_is_recorded_with_its_reason(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user, htmx=True)
    books = catalogue["books"][:3]
    select(client, "plain-books", [b.pk for b in books])
    data = {"change_price": "1", "price": "7.77", "reason": "  Spring catalogue  "}
    response = edit(client, "plain-books", data, django_capture_on_commit_callbacks)
    assert response.status_code == 204
    run = BulkTask.objects.get()
    assert (run.mode, run.kind, run.status, run.dry_run) == ("sync", "update", "succeeded", False)
    assert (run.total, run.done, run.success_count, run.failure_count) == (3, 3, 3, 0)
    assert run.reason == "Spring catalogue" and run.owner == admin_user
    assert run.started_at <= run.finished_at and run.is_finished
    request = run.read_request()
    assert (request.fields_to_update, dict(request.field_data), request.reason) == (
        ("price",),
        {"price": "7.77"},
        "Spring catalogue",
    )
    assert run.message == "Updated 3 of 3 rows (3 changed)."
    assert set(Book.objects.filter(pk__in=[b.pk for b in books]).values_list("price", flat=True)) == {
        Decimal("7.77")
    }
    listed = client.get("/powercrud/tasks/").content.decode()
    assert f"#{run.pk}" in listed  # on the user's dashboard


def test_a_check_in_the_request_is_recorded_as_a_check(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user, htmx=True)
    select(client, "plain-books", [b.pk for b in catalogue["books"][:2]])
    response = edit(
        client,
        "plain-books",
        {"change_price": "1", "price": "7.77", "dry_run": "1"},
        django_capture_on_commit_callbacks,
    )
    assert response.status_code == 200
    run = BulkTask.objects.get()
    assert (run.mode, run.dry_run, run.status) == ("sync", True, "succeeded")
    assert run.message.startswith("Check only, nothing was saved")


def test_a_failed_all_or_nothing_run_is_recorded_failed_with_its_errors(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user, htmx=True)
    select(client, "plain-books", [b.pk for b in catalogue["books"][:2]])
    response = edit(
        client, "plain-books", {"change_price": "1", "price": "-1"}, django_capture_on_commit_callbacks
    )
    assert response.status_code == 200  # the modal shows the form error: nothing ran
    assert not BulkTask.objects.exists()


def test_a_background_run_carries_its_reason_and_check_flag(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user, htmx=True)
    select(client, "async-books", [b.pk for b in catalogue["books"][:2]])
    data = {"change_status": "1", "status": "archived", "dry_run": "1", "reason": "Checking the archive"}
    assert edit(client, "async-books", data, django_capture_on_commit_callbacks).status_code == 202
    run = BulkTask.objects.get()
    assert (run.mode, run.dry_run, run.reason) == ("async", True, "Checking the archive")


@pytest.mark.parametrize(
    ("data", "status"),
    [
        ({"change_status": "1", "status": "archived", "reason": "x" * 501}, 400),
        ({"change_status": "1", "status": "archived", "reason": ["a", "b"]}, 400),
    ],
)
def test_a_refused_run_leaves_no_record(
    admin_user: Any,
    catalogue: Catalogue,
    django_capture_on_commit_callbacks: Any,
    data: dict[str, Any],
    status: int,
) -> None:
    client = login(admin_user, htmx=True)
    select(client, "plain-books", [b.pk for b in catalogue["books"][:2]])
    response = edit(client, "plain-books", data, django_capture_on_commit_callbacks)
    assert response.status_code == status
    assert not BulkTask.objects.exists()


def test_a_bulk_delete_in_the_request_is_recorded(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user, htmx=True)
    pks = [b.pk for b in catalogue["books"][:2]]
    select(client, "plain-books", pks)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/plain-books/bulk/delete/", {"reason": "Duplicates"})
    assert response.status_code == 204
    run = BulkTask.objects.get()
    assert (run.kind, run.mode, run.status, run.success_count, run.reason) == (
        "delete",
        "sync",
        "succeeded",
        2,
        "Duplicates",
    )
    assert not Book.objects.filter(pk__in=pks).exists()


def test_the_modals_offer_a_reason(admin_user: Any, catalogue: Catalogue) -> None:
    client = login(admin_user, htmx=True)
    select(client, "plain-books", [catalogue["books"][0].pk])
    for url in ("/plain-books/bulk/edit/", "/plain-books/bulk/delete/"):
        html = client.get(url).content.decode()
        assert '<input type="text" id="bulk_reason" name="reason" maxlength="500"' in html, url


def test_tasks_of_an_earlier_release_learn_they_were_checks() -> None:
    """The migration reads ``dry_run`` from the payloads of tasks made before it existed."""
    import importlib

    from django.apps import apps
    from django.db import connection

    migration = importlib.import_module("powercrud.migrations.0003_run_mode_check_and_reason")
    check = BulkTask.objects.create(kind="update", model_label="testapp.book", payload={"dry_run": True})
    apply = BulkTask.objects.create(kind="update", model_label="testapp.book", payload={"dry_run": False})
    odd = BulkTask.objects.create(kind="update", model_label="testapp.book", payload=["not", "a", "dict"])

    class Editor:
        pass

    editor = Editor()
    editor.connection = connection  # type: ignore[attr-defined]
    migration.checks_from_payload(apps, editor)
    assert [
        t.dry_run for t in BulkTask.objects.filter(pk__in=[check.pk, apply.pk, odd.pk]).order_by("pk")
    ] == [
        True,
        False,
        False,
    ]


def test_a_run_and_its_record_commit_together(
    admin_user: Any, catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record that cannot be written takes the run's writes with it: no unrecorded run."""
    from powercrud.mixins import bulk as bulk_mixin

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the record could not be written")

    monkeypatch.setattr(bulk_mixin, "close_request_run", broken)
    client = login(admin_user, htmx=True, raise_request_exception=False)
    books = catalogue["books"][:2]
    select(client, "plain-books", [b.pk for b in books])
    before = sorted(Book.objects.filter(pk__in=[b.pk for b in books]).values_list("price", flat=True))
    response = client.post("/plain-books/bulk/edit/", {"change_price": "1", "price": "7.77"})
    assert response.status_code == 500
    assert sorted(Book.objects.filter(pk__in=[b.pk for b in books]).values_list("price", flat=True)) == before
    assert not BulkTask.objects.exists()


def test_a_runs_row_errors_link_to_their_rows(admin_user: Any, catalogue: Catalogue) -> None:
    """On the run's page each failed row links to the row's page on the screen the run came from."""
    from powercrud.bulk.request import BulkRequest

    book = catalogue["books"][0]
    errors = [{"pk": book.pk, "field": "price", "messages": ["No."]}]

    def run_from(view_name: str) -> BulkTask:
        request = BulkRequest(
            operation="update",
            model_label="testapp.book",
            fields_to_update=("price",),
            field_data={"price": "1.00"},
            bulk_fields=("price",),
            view_name=view_name,
        )
        return BulkTask.objects.create(
            kind="update",
            model_label="testapp.book",
            owner=admin_user,
            status="failed",
            errors=errors,
            failure_count=1,
            payload=request.to_dict(),
        )

    linked = run_from("tests.bulk_urls.PlainBookView")
    unknown = run_from("nowhere.GoneView")
    client = login(admin_user)
    page = client.get(f"/powercrud/tasks/{linked.pk}/").content.decode()
    assert f'<a class="pc-link" href="/plain-books/{book.pk}/">#{book.pk}</a>' in page
    page = client.get(f"/powercrud/tasks/{unknown.pk}/").content.decode()
    assert f">#{book.pk}</td>" in page and f'href="/plain-books/{book.pk}/"' not in page
