"""Check, then apply: a finished check's values applied to its frozen rows with no re-entry,
and an all-or-nothing check or run that found failing rows applied to the rows that passed."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from powercrud.jobs.worker import run_bulk_task
from powercrud.models import BulkTask
from tests.bulk_urls import select, selection_url
from tests.conftest import make_user
from tests.security.conftest import login
from tests.testapp.models import Book

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.security.urls")]

Catalogue = dict[str, Any]
PRICE = {"change_price": "1", "price": "9.99"}


def latest() -> BulkTask:
    run = BulkTask.objects.order_by("-pk").first()
    assert run is not None
    return run


def post(client: Any, base: str, data: dict[str, Any], capture: Any, pks: list[Any] | None = None) -> Any:
    if pks is not None:
        client.post(selection_url(base), {"action": "clear"})
        select(client, base, pks)
    with capture(execute=True):
        response = client.post(f"/{base}/bulk/edit/", data)
    run = latest()
    if run.mode == "async" and run.status == "queued":
        run_bulk_task(run.pk)
    return response


def prices(pks: list[Any]) -> dict[Any, Decimal]:
    return dict(Book.objects.filter(pk__in=pks).values_list("pk", "price"))


def test_a_sync_check_offers_apply_and_apply_writes_the_checked_rows_and_values(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user, htmx=True)
    pks = [b.pk for b in catalogue["books"][:4]]
    response = post(client, "plain-books", {**PRICE, "dry_run": "1"}, django_capture_on_commit_callbacks, pks)
    check = latest()
    page = response.content.decode()
    assert f'name="apply_run" value="{check.pk}"' in page and "Apply these changes" in page
    assert set(prices(pks).values()) != {Decimal("9.99")}
    select(client, "plain-books", [catalogue["books"][10].pk])  # the selection moved on meanwhile
    response = post(
        client,
        "plain-books",
        {"apply_run": str(check.pk), "reason": "as checked"},
        django_capture_on_commit_callbacks,
    )
    assert response.status_code == 204
    applied = latest()
    assert set(prices(pks).values()) == {Decimal("9.99")}
    outside = catalogue["books"][10].pk
    assert prices([outside])[outside] != Decimal("9.99")  # only the checked rows were written
    request = applied.read_request()
    assert (request.source_action, request.source_run, request.dry_run) == ("apply", check.pk, False)
    assert applied.reason == "as checked" and applied.row_counts == {"changed": 4}


def test_a_background_check_is_applied_by_its_run_id(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user)
    pks = [b.pk for b in catalogue["books"][:3]]
    post(client, "async-books", {**PRICE, "dry_run": "1"}, django_capture_on_commit_callbacks, pks)
    check = latest()
    assert check.mode == "async" and check.dry_run and check.row_counts == {"changed": 3}
    post(client, "async-books", {"apply_run": str(check.pk)}, django_capture_on_commit_callbacks)
    applied = latest()
    assert applied.mode == "async" and applied.status == "succeeded"
    assert set(prices(pks).values()) == {Decimal("9.99")}


def test_an_all_or_nothing_check_with_failures_offers_apply_to_the_rows_that_passed(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user, htmx=True)
    books = catalogue["books"][:8]  # statuses cycle, so some are archived: those cannot be re-priced
    archived = [b.pk for b in books if b.status == "archived"]
    others = [b.pk for b in books if b.status != "archived"]
    assert archived and others
    response = post(
        client,
        "rule-books",
        {**PRICE, "dry_run": "1"},
        django_capture_on_commit_callbacks,
        [b.pk for b in books],
    )
    check = latest()
    page = response.content.decode()
    assert f'name="apply_passed" value="{check.pk}"' in page
    assert f"Apply to the {len(others)} rows that passed" in page
    assert 'name="apply_run"' not in page  # all of them would fail again
    post(client, "rule-books", {"apply_passed": str(check.pk)}, django_capture_on_commit_callbacks)
    assert set(prices(others).values()) == {Decimal("9.99")}
    assert Decimal("9.99") not in prices(archived).values()


def test_a_failed_all_or_nothing_run_on_a_worker_can_be_applied_to_the_rows_that_passed(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user)
    books = catalogue["books"][:8]
    post(client, "async-rule-books", PRICE, django_capture_on_commit_callbacks, [b.pk for b in books])
    failed = latest()
    assert failed.status == "failed" and set(failed.row_counts) == {"failed", "not_reached"}
    post(client, "async-rule-books", {"apply_passed": str(failed.pk)}, django_capture_on_commit_callbacks)
    assert latest().status == "succeeded"
    assert {b.pk for b in Book.objects.filter(pk__in=[b.pk for b in books], price=Decimal("9.99"))} == {
        b.pk for b in books if b.status != "archived"
    }


def test_apply_refuses_what_is_not_a_finished_check_and_other_users_runs(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user)
    pks = [catalogue["books"][0].pk]
    post(client, "plain-books", PRICE, django_capture_on_commit_callbacks, pks)
    applied = latest()
    refused = post(client, "plain-books", {"apply_run": str(applied.pk)}, django_capture_on_commit_callbacks)
    assert refused.status_code == 409 and "was not a check" in refused.content.decode()
    both = client.post("/plain-books/bulk/edit/", {"apply_run": "1", "apply_passed": "1"})
    assert both.status_code == 400
    post(client, "plain-books", {**PRICE, "dry_run": "1"}, django_capture_on_commit_callbacks, pks)
    check = latest()
    other = login(make_user("other", "view_book", "change_book"))
    assert other.post("/plain-books/bulk/edit/", {"apply_run": str(check.pk)}).status_code == 404
