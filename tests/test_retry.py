"""Retry the failed rows of a bulk edit: those rows selected on the screen the run came from,
its bulk edit opened with the run's values filled in."""

from __future__ import annotations

from typing import Any

import pytest

from powercrud.bulk.request import BulkRequest
from powercrud.models import BulkTask
from tests.security.conftest import login, selection_key

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.security.urls")]

Catalogue = dict[str, Any]


def failed_run(owner: Any, pks: list[Any], **fields: Any) -> BulkTask:
    request = BulkRequest(
        operation="update",
        model_label="testapp.book",
        fields_to_update=("price", "status", "tags"),
        field_data={"price": "12.50", "status": "archived", "tags": {"op": "remove", "ids": [1]}},
        bulk_fields=("price", "status", "tags"),
        view_name="tests.bulk_urls.PlainBookView",
    )
    values: dict[str, Any] = {
        "kind": "update",
        "model_label": "testapp.book",
        "owner": owner,
        "status": "failed",
        "total": 10,
        "failure_count": len(pks),
        "errors": [{"pk": pk, "field": "price", "messages": ["No."]} for pk in pks],
        "payload": request.to_dict(),
    }
    values.update(fields)
    return BulkTask.objects.create(**values)


def test_retry_selects_the_failed_rows_and_fills_in_the_values(admin_user: Any, catalogue: Catalogue) -> None:
    pks = [catalogue["books"][2].pk, catalogue["books"][5].pk]
    run = failed_run(admin_user, pks)
    client = login(admin_user)
    page = client.get(f"/powercrud/tasks/{run.pk}/").content.decode()
    assert "Retry 2 failed rows</button>" in page
    response = client.post(f"/powercrud/tasks/{run.pk}/retry/")
    assert response.status_code == 302
    assert response["Location"] == f"/plain-books/bulk/edit/?from_run={run.pk}"
    assert client.session[selection_key("plain-books")]["ids"] == [str(pk) for pk in pks]
    form = client.get(response["Location"]).content.decode()
    assert "Edit 2 books" in form
    assert f"The values of run #{run.pk} are filled in." in form
    assert 'name="change_price" id="bulk_change_price" checked' in form
    assert 'name="price" value="12.50"' in form
    assert '<option value="archived" selected>' in form
    assert '<option value="remove" selected>' in form
    assert 'name="change_genre" id="bulk_change_genre" checked' not in form


def test_retry_over_htmx_redirects_the_page(admin_user: Any, catalogue: Catalogue) -> None:
    run = failed_run(admin_user, [catalogue["books"][2].pk])
    response = login(admin_user, htmx=True).post(f"/powercrud/tasks/{run.pk}/retry/")
    assert response["HX-Redirect"] == f"/plain-books/bulk/edit/?from_run={run.pk}"


@pytest.mark.parametrize(
    "fields",
    [
        {"errors_omitted": 3},  # not every failed row is named
        {"status": "running"},
        {"kind": "delete"},
        {"failure_count": 0, "errors": []},
    ],
)
def test_what_cannot_be_retried_is_refused(
    admin_user: Any, catalogue: Catalogue, fields: dict[str, Any]
) -> None:
    run = failed_run(admin_user, [catalogue["books"][2].pk], **fields)
    client = login(admin_user)
    assert (
        "failed row" not in client.get(f"/powercrud/tasks/{run.pk}/").content.decode().split("Row errors")[0]
    )
    response = client.post(f"/powercrud/tasks/{run.pk}/retry/")
    assert response.status_code == 409
    assert f"The failed rows of run #{run.pk} cannot be retried from here" in response.content.decode()
    assert selection_key("plain-books") not in client.session


def test_another_users_run_cannot_be_retried_or_filled_in(
    admin_user: Any, user_factory: Any, catalogue: Catalogue
) -> None:
    run = failed_run(admin_user, [catalogue["books"][2].pk])
    other = login(user_factory("someone", "view_book", "change_book"))
    assert other.post(f"/powercrud/tasks/{run.pk}/retry/").status_code == 404
    assert other.get(f"/plain-books/bulk/edit/?from_run={run.pk}").status_code == 404
    assert other.get("/plain-books/bulk/edit/?from_run=abc").status_code == 404
    assert other.get(f"/plain-books/bulk/edit/?from_run={run.pk}&from_run=1").status_code == 400


def test_applying_the_retried_form_records_which_run_it_retries(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    pks = [catalogue["books"][2].pk, catalogue["books"][5].pk]
    run = failed_run(admin_user, pks)
    client = login(admin_user, htmx=True)
    client.post(f"/powercrud/tasks/{run.pk}/retry/")
    form = client.get(f"/plain-books/bulk/edit/?from_run={run.pk}").content.decode()
    assert f'<input type="hidden" name="from_run" value="{run.pk}">' in form
    data = {"change_price": "1", "price": "3.33", "from_run": str(run.pk)}
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post("/plain-books/bulk/edit/", data).status_code == 204
    retry = BulkTask.objects.exclude(pk=run.pk).get()
    request = retry.read_request()
    assert (request.source_run, request.source_action) == (run.pk, "retry")
    page = login(admin_user).get(f"/powercrud/tasks/{retry.pk}/").content.decode()
    assert (
        f'the failed rows of <a class="pc-link" href="/powercrud/tasks/{run.pk}/">run #{run.pk}</a>' in page
    )


def test_a_retry_of_someone_elses_run_is_refused(
    admin_user: Any, user_factory: Any, catalogue: Catalogue
) -> None:
    run = failed_run(admin_user, [catalogue["books"][2].pk])
    other = login(user_factory("stranger", "view_book", "change_book"))
    other.post(
        "/plain-books/selection/", {"action": "set", "checked": "1", "pk": [str(catalogue["books"][2].pk)]}
    )
    data = {"change_price": "1", "price": "3.33", "from_run": str(run.pk)}
    assert other.post("/plain-books/bulk/edit/", data).status_code == 404
    assert BulkTask.objects.count() == 1
