"""A run's page offers what can be done next, as forms posted to the screen the run came
from: undo, apply a check, apply to the rows that passed, edit again, retry every failed row."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from powercrud.models import BulkTask
from tests.bulk_urls import select, selection_url
from tests.conftest import make_user
from tests.security.conftest import login, selection_key
from tests.testapp.models import Author, Book

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.security.urls")]

Catalogue = dict[str, Any]


def latest() -> BulkTask:
    run = BulkTask.objects.order_by("-pk").first()
    assert run is not None
    return run


def run_on(
    client: Any, base: str, pks: list[Any], data: dict[str, Any], capture: Any, action: str = "edit"
) -> BulkTask:
    client.post(selection_url(base), {"action": "clear"})
    select(client, base, pks)
    with capture(execute=True):
        client.post(f"/{base}/bulk/{action}/", data)
    return latest()


def form(page: str, name: str) -> tuple[str, str] | None:
    """(action, value) of the form whose button is named ``name``, if the page has one."""
    found = re.search(
        rf'<form method="post" action="([^"]+)">\s*<input type="hidden" name="csrfmiddlewaretoken"[^>]*>\s*'
        rf'<button type="submit" class="[^"]*" name="{name}" value="(\d+)">',
        page,
    )
    return (found.group(1), found.group(2)) if found else None


def test_an_applied_run_offers_undo_to_its_owner_and_the_form_undoes_it(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    owner = make_user("owner", "view_book", "change_book")
    client = login(owner)
    pks = [b.pk for b in catalogue["books"][:3]]
    run = run_on(
        client, "plain-books", pks, {"change_price": "1", "price": "9.99"}, django_capture_on_commit_callbacks
    )
    page = client.get(f"/powercrud/tasks/{run.pk}/").content.decode()
    assert form(page, "undo_run") == ("/plain-books/bulk/edit/", str(run.pk))
    assert form(page, "apply_run") is None and "Edit again" not in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/plain-books/bulk/edit/", {"undo_run": str(run.pk)})
    assert response.status_code == 302
    assert Decimal("9.99") not in set(Book.objects.filter(pk__in=pks).values_list("price", flat=True))
    undone = client.get(f"/powercrud/tasks/{run.pk}/").content.decode()
    assert form(undone, "undo_run") is None  # undone once; its undo offers the redo
    undo_page = client.get(f"/powercrud/tasks/{latest().pk}/").content.decode()
    assert form(undo_page, "undo_run") == ("/plain-books/bulk/edit/", str(latest().pk))
    assert (
        f'Undoes</dt><dd> <a class="pc-link" href="/powercrud/tasks/{run.pk}/">run #{run.pk}</a>' in undo_page
    )
    viewer = make_user("viewer", "view_book")
    staff_view = login(admin_user).get(f"/powercrud/tasks/{run.pk}/")
    assert staff_view.status_code == 200
    assert login(viewer).get(f"/powercrud/tasks/{run.pk}/").status_code == 404


def test_a_check_offers_apply_and_edit_again_on_its_page(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user)
    pks = [b.pk for b in catalogue["books"][:3]]
    check = run_on(
        client,
        "async-books",
        pks,
        {"change_price": "1", "price": "9.99", "dry_run": "1"},
        django_capture_on_commit_callbacks,
    )
    from powercrud.jobs.worker import run_bulk_task

    run_bulk_task(check.pk)
    page = client.get(f"/powercrud/tasks/{check.pk}/").content.decode()
    assert form(page, "apply_run") == ("/async-books/bulk/edit/", str(check.pk))
    assert f'href="/async-books/bulk/edit/?from_run={check.pk}">Edit again</a>' in page
    assert form(page, "undo_run") is None  # a check saved nothing


def test_a_failed_all_or_nothing_run_offers_apply_to_the_rows_that_passed(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user)
    books = catalogue["books"][:8]
    run = run_on(
        client,
        "rule-books",
        [b.pk for b in books],
        {"change_price": "1", "price": "9.99"},
        django_capture_on_commit_callbacks,
    )
    assert run.status == "failed"
    passed = sum(1 for b in books if b.status != "archived")
    page = client.get(f"/powercrud/tasks/{run.pk}/").content.decode()
    assert form(page, "apply_passed") == ("/rule-books/bulk/edit/", str(run.pk))
    assert f"Apply to the {passed} rows that passed" in page


def test_retry_names_every_failed_row_from_the_ledger_past_the_stored_thousand(
    admin_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    author = Author.objects.create(name="A")
    Book.objects.bulk_create(
        [Book(title=f"B{i}", author=author, price=Decimal("1.00"), status="archived") for i in range(1_200)]
        + [Book(title="ok", author=author, price=Decimal("1.00"), status="draft")]
    )
    client = login(admin_user)
    client.post(selection_url("per-row-books"), {"action": "all", "query": ""})
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/per-row-books/bulk/edit/", {"change_price": "1", "price": "9.99"})
    run = latest()
    assert run.row_counts == {"changed": 1, "failed": 1_200} and run.errors_omitted == 200
    page = client.get(f"/powercrud/tasks/{run.pk}/").content.decode()
    assert "Retry 1,200 failed rows</button>" in page
    response = client.post(f"/powercrud/tasks/{run.pk}/retry/")
    assert response.status_code == 302
    selected = client.session[selection_key("per-row-books")]["ids"]
    assert len(selected) == 1_200
    assert set(map(int, selected)) == set(Book.objects.filter(status="archived").values_list("pk", flat=True))


def test_a_delete_run_offers_undo_on_the_bulk_delete_screen(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user)
    pks = [b.pk for b in catalogue["books"][:2]]
    run = run_on(client, "plain-books", pks, {}, django_capture_on_commit_callbacks, action="delete")
    page = client.get(f"/powercrud/tasks/{run.pk}/").content.decode()
    assert form(page, "undo_run") == ("/plain-books/bulk/delete/", str(run.pk))


def test_a_one_row_run_is_headed_in_the_singular(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user)
    run = run_on(
        client,
        "plain-books",
        [catalogue["books"][0].pk],
        {"change_price": "1", "price": "9.99"},
        django_capture_on_commit_callbacks,
    )
    page = client.get(f"/powercrud/tasks/{run.pk}/").content.decode()
    assert "<h1>Bulk edit of 1 book <span" in page
