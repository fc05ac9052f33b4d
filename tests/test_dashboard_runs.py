"""The dashboard as the history of bulk runs: mode, check or apply, reason, and the filters.

A check is neutral everywhere: a "Check" badge, counts worded "would", never the success
styling; a run made in the request is finished, so it neither polls nor offers Cancel.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from powercrud.bulk.request import BulkRequest
from powercrud.models import BulkTask
from tests.bulk_urls import select
from tests.security.conftest import login

Status = BulkTask.Status
VIEW = "tests.security.views.BookCRUDView"


def run(owner: User | None, *, kind: str = "update", dry_run: bool = False, **values: Any) -> BulkTask:
    """A finished run record, made directly (no worker, no view)."""
    now = timezone.now()
    request = BulkRequest(
        operation=kind,  # type: ignore[arg-type]
        model_label="testapp.book",
        fields_to_update=("status",) if kind == "update" else (),
        field_data={"status": "published"} if kind == "update" else {},
        bulk_fields=("status",) if kind == "update" else (),
        dry_run=dry_run,
        view_name=VIEW,
        reason=values.get("reason", ""),
    )
    values.setdefault("mode", BulkTask.Mode.SYNC)
    values.setdefault("status", Status.SUCCEEDED)
    values.setdefault("total", 12)
    values.setdefault("done", values["total"])
    values.setdefault("success_count", values["total"])
    values.setdefault("started_at", now - datetime.timedelta(seconds=2))
    values.setdefault("finished_at", now)
    return BulkTask.objects.create(
        owner=owner,
        kind=kind,
        model_label="testapp.book",
        dry_run=dry_run,
        payload=request.to_dict(),
        **values,
    )


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def url(name: str, task: BulkTask | None = None) -> str:
    return reverse(f"powercrud:tasks-{name}", kwargs={"pk": task.pk} if task else None)


def row_of(html: str, task: BulkTask) -> str:
    """The list's ``<tr>`` of ``task``."""
    match = re.search(
        rf'<tr class="pc-task-row[^"]*">\s*<td class="pc-col-task">\s*'
        rf'<a class="pc-task-id" href="{url("detail", task)}">.*?</tr>',
        html,
        re.S,
    )
    assert match, f"no row for task #{task.pk}"
    return match.group(0)


def text(html: str) -> str:
    """The visible words of ``html``, tags dropped and spaces collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice", password="pw")


# ----- the list ---------------------------------------------------------------------------------


def test_the_list_shows_mode_check_and_reason(alice: User) -> None:
    check = run(alice, dry_run=True, mode=BulkTask.Mode.ASYNC, total=98599, reason="Archive the 2019 stock")
    applied = run(alice, reason="")
    html = client_for(alice).get(url("list")).content.decode()
    assert "<h1>Bulk runs</h1>" in html

    check_row = row_of(html, check)
    mode = '<span class="pc-mode pc-mode-{}"><span class="pc-visually-hidden">Mode: </span>{}</span>'
    assert mode.format("async", "On a worker") in check_row
    assert ">Check</span>" in check_row and "pc-task-row-check" in check_row
    assert (
        '<span class="pc-task-reason" title="Archive the 2019 stock">'
        '<span class="pc-visually-hidden">Reason: </span>Archive the 2019 stock</span>'
    ) in check_row
    assert "98,599 would update" in text(check_row)
    # Neutral: no success styling, no "updated" anywhere in the row.
    assert "pc-count-ok" not in check_row and "updated" not in check_row
    assert "pc-badge-succeeded pc-badge-of-check" in check_row

    applied_row = row_of(html, applied)
    assert mode.format("sync", "In the request") in applied_row
    assert ">Check</span>" not in applied_row and "pc-task-reason" not in applied_row
    assert "pc-count pc-count-ok" in applied_row and "12 updated" in text(applied_row)
    assert "would" not in applied_row


def test_a_delete_check_says_would_delete_and_would_fail(alice: User) -> None:
    check = run(alice, kind="delete", dry_run=True, total=10, success_count=7, failure_count=3)
    row = text(row_of(client_for(alice).get(url("list")).content.decode(), check))
    assert "7 would delete 3 would fail of 10" in row
    assert "deleted" not in row


def test_a_long_reason_is_cut_on_screen_and_whole_on_hover(alice: User) -> None:
    reason = "Spring clean-up of the catalogue " * 10
    task = run(alice, reason=reason.strip())
    row = row_of(client_for(alice).get(url("list")).content.decode(), task)
    assert f'title="{reason.strip()}"' in row  # the whole reason; CSS ellipsis cuts the line


def test_the_reason_is_escaped(alice: User) -> None:
    task = run(alice, reason="<script>alert(1)</script>")
    client = client_for(alice)
    for page in (url("list"), url("detail", task)):
        html = client.get(page).content.decode()
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, {"sync_check", "sync_apply", "async_check", "async_apply"}),
        ({"mode": "sync"}, {"sync_check", "sync_apply"}),
        ({"mode": "async"}, {"async_check", "async_apply"}),
        ({"check": "check"}, {"sync_check", "async_check"}),
        ({"check": "apply"}, {"sync_apply", "async_apply"}),
        ({"mode": "async", "check": "check"}, {"async_check"}),
        # An unknown choice is shown as a form error and otherwise ignored, as in every list.
        ({"check": "bogus"}, {"sync_check", "sync_apply", "async_check", "async_apply"}),
    ],
)
def test_the_mode_and_check_filters(alice: User, query: dict[str, str], expected: set[str]) -> None:
    tasks = {
        "sync_check": run(alice, dry_run=True),
        "sync_apply": run(alice),
        "async_check": run(alice, dry_run=True, mode=BulkTask.Mode.ASYNC),
        "async_apply": run(alice, mode=BulkTask.Mode.ASYNC),
    }
    html = client_for(alice).get(url("list"), query).content.decode()
    shown = {name for name, task in tasks.items() if f'href="{url("detail", task)}"' in html}
    if query.get("check") == "bogus":
        assert "Select a valid choice" in html
    assert shown == expected


def test_the_filters_are_offered_with_their_labels(alice: User) -> None:
    html = client_for(alice).get(url("list")).content.decode()
    assert '<label for="filter_mode">Mode</label>' in html
    assert '<label for="filter_check">Check or apply</label>' in html
    for option in (
        '<option value="sync">In the request</option>',
        '<option value="async">On a worker</option>',
        '<option value="check">Checks</option>',
        '<option value="apply">Applied runs</option>',
    ):
        assert option in html


# ----- the detail page --------------------------------------------------------------------------


def test_the_detail_of_a_sync_check(alice: User) -> None:
    task = run(
        alice,
        dry_run=True,
        total=98599,
        reason="Archive the 2019 stock",
        message="Check only, nothing was saved: 98,599 of 98,599 rows would be updated.",
    )
    html = client_for(alice).get(url("detail", task)).content.decode()
    words = text(html)
    assert "Check of 98,599 books" in words
    assert f"Task #{task.pk} · a check of a bulk edit: nothing was saved" in words
    assert "Mode In the request" in words
    assert "Check or apply Check — reports what it would do; nothing was saved" in words
    assert "Reason Archive the 2019 stock" in words
    assert '<dt>View</dt><dd><span class="pc-mono">BookCRUDView</span></dd>' in html
    assert VIEW not in html  # the module path is an internal
    assert "98,599 would be updated" in words
    assert "pc-count-ok" not in html and "98,599 updated" not in words
    assert "pc-task-message pc-task-message-check" in html
    assert "pc-task-message-succeeded" not in html
    assert "Changes checked" in words
    # Finished in the request: no polling, no Cancel, and its timings.
    assert "hx-trigger" not in html
    assert "Cancel task" not in html
    assert "2.0 s" in words
    assert "Download outcomes (CSV)" in words


def test_the_detail_of_an_applied_run(alice: User) -> None:
    task = run(alice, mode=BulkTask.Mode.ASYNC, total=5, message="Updated 5 of 5 rows.")
    html = client_for(alice).get(url("detail", task)).content.decode()
    words = text(html)
    assert "Bulk edit of 5 books" in words and "Check of" not in words
    assert f"Task #{task.pk} · on a worker" in words
    assert "Mode On a worker" in words and "Check or apply Applied" in words
    assert "Reason" not in words
    assert "5 updated" in words and "pc-count pc-count-ok" in html
    assert "would" not in words


def test_the_detail_of_a_delete_check(alice: User) -> None:
    task = run(alice, kind="delete", dry_run=True, total=4)
    words = text(client_for(alice).get(url("detail", task)).content.decode())
    assert "Check of 4 books" in words and "a check of a bulk delete" in words
    assert "Would delete the 4 selected books." in words
    assert "4 would be deleted" in words and "4 deleted" not in words


def test_a_running_check_on_a_worker_polls_and_says_checked(alice: User) -> None:
    task = run(
        alice,
        dry_run=True,
        mode=BulkTask.Mode.ASYNC,
        status=Status.RUNNING,
        total=1000,
        done=400,
        success_count=0,
        finished_at=None,
    )
    html = client_for(alice).get(url("progress", task)).content.decode()
    assert "<strong>400</strong> of 1,000 rows checked" in html
    assert 'hx-trigger="every 1s"' in html
    assert "pc-progress-check" in html


# ----- real runs: the list after a run in the request, the modal of a background check ---------


@pytest.mark.django_db
@pytest.mark.urls("tests.security.urls")
def test_a_real_sync_run_is_listed_and_its_page_is_final(
    admin_user: User, catalogue: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user, htmx=True)
    select(client, "plain-books", [b.pk for b in catalogue["books"][:2]])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/plain-books/bulk/edit/", {"change_price": "1", "price": "3.50", "reason": "Sale"}
        )
    assert response.status_code == 204
    task = BulkTask.objects.get()
    page = Client()
    page.force_login(admin_user)
    row = row_of(page.get(url("list")).content.decode(), task)
    assert "In the request" in row and "Sale" in row and ">Check</span>" not in row
    html = page.get(url("detail", task)).content.decode()
    assert "hx-trigger" not in html and "Cancel task" not in html
    assert task.stored_request is not None
    view_class = task.stored_request.view_name.rsplit(".", 1)[-1]
    assert f'<span class="pc-mono">{view_class}</span>' in html


@pytest.mark.django_db
@pytest.mark.urls("tests.security.urls")
def test_the_modal_of_a_background_check_says_check_of(
    admin_user: User, catalogue: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user, htmx=True)
    select(client, "async-books", [b.pk for b in catalogue["books"][:2]])
    data = {"change_status": "1", "status": "archived", "dry_run": "1"}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/async-books/bulk/edit/", data)
    assert response.status_code == 202
    task = BulkTask.objects.get()
    words = text(response.content.decode())
    assert "Check of the selected books" in words  # counted by the worker, not the submit
    assert "Bulk edit of" not in words
    assert f"This check of a bulk edit runs in the background as task #{task.pk} and saves nothing." in words


@pytest.mark.django_db
@pytest.mark.urls("tests.security.urls")
def test_the_modal_of_a_background_apply_says_bulk_edit_of(
    admin_user: User, catalogue: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user, htmx=True)
    select(client, "async-books", [b.pk for b in catalogue["books"][:2]])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/async-books/bulk/edit/", {"change_status": "1", "status": "archived"})
    assert response.status_code == 202
    words = text(response.content.decode())
    assert "Bulk edit of the selected books" in words and "Check of" not in words


def test_the_progress_of_a_finished_background_check_is_neutral(alice: User) -> None:
    task = run(
        alice,
        dry_run=True,
        mode=BulkTask.Mode.ASYNC,
        total=98599,
        message="Check only, nothing was saved: 98,599 of 98,599 rows would be updated.",
    )
    html = client_for(alice).get(url("progress", task)).content.decode()
    assert '<span class="pc-count pc-count-would">98,599 would be updated</span>' in html
    assert "pc-count-ok" not in html and "98,599 updated" not in html
    assert "pc-task-message-succeeded" not in html
    assert "<strong>98,599</strong> of 98,599 rows checked" in html
