"""A background run that ended is announced once to its owner; every ended run sends a signal."""

from __future__ import annotations

import html
from typing import Any

import pytest

from powercrud.models import BulkTask
from powercrud.signals import bulk_run_finished
from tests.bulk_urls import select
from tests.security.conftest import login

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.security.urls")]

Catalogue = dict[str, Any]


def ended(owner: Any, **fields: Any) -> BulkTask:
    values: dict[str, Any] = {
        "kind": "update",
        "model_label": "testapp.book",
        "owner": owner,
        "status": BulkTask.Status.SUCCEEDED,
        "message": "Updated 2,000 of 2,000 rows.",
    }
    values.update(fields)
    return BulkTask.objects.create(**values)


def toasts(client: Any, url: str = "/plain-books/") -> str:
    """The toast container of a full page (rendered on one line by ``powercrud/messages.html``)."""
    page = client.get(url).content.decode()
    (line,) = [line for line in page.splitlines() if 'id="pc-toasts"' in line]
    return html.unescape(line)


def test_the_next_page_announces_each_ended_background_run_once(admin_user: Any, user_factory: Any) -> None:
    other = user_factory("someone-else", "view_book")
    done = ended(admin_user)
    failed = ended(admin_user, status=BulkTask.Status.FAILED, message="3 of 10 rows failed.", dry_run=True)
    running = ended(admin_user, status=BulkTask.Status.RUNNING)
    in_request = ended(admin_user, mode=BulkTask.Mode.SYNC)
    theirs = ended(other)
    client = login(admin_user)
    first = toasts(client)
    assert f"Bulk edit #{done.pk} succeeded: Updated 2,000 of 2,000 rows." in first
    assert f'<a href="/powercrud/tasks/{done.pk}/">Open run #{done.pk}</a>' in first
    assert f"Check of a bulk edit #{failed.pk} failed: 3 of 10 rows failed." in first
    for quiet in (running, in_request, theirs):
        assert f"#{quiet.pk} " not in first
    assert f"#{done.pk}" not in toasts(client)  # once only
    assert BulkTask.objects.get(pk=theirs.pk).notified_at is None


def test_a_run_watched_to_its_end_is_not_announced_again(admin_user: Any) -> None:
    run = ended(admin_user)
    client = login(admin_user, htmx=True)
    assert client.get(f"/powercrud/tasks/{run.pk}/progress/").status_code == 286
    run.refresh_from_db()
    assert run.notified_at is not None
    assert f"#{run.pk}" not in toasts(login(admin_user))


def test_only_the_owner_watching_marks_it_seen(admin_user: Any, user_factory: Any) -> None:
    staff = user_factory("the-boss", "view_book")
    staff.is_staff = True
    staff.save()
    run = ended(admin_user)
    assert login(staff, htmx=True).get(f"/powercrud/tasks/{run.pk}/progress/").status_code == 286
    run.refresh_from_db()
    assert run.notified_at is None


def test_every_ended_run_sends_bulk_run_finished_after_commit(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    from powercrud.jobs.worker import run_bulk_task

    seen: list[tuple[int, str, str]] = []

    def receiver(sender: Any, run: BulkTask, **kwargs: Any) -> None:
        assert sender is BulkTask
        seen.append((run.pk, run.mode, run.status))

    bulk_run_finished.connect(receiver)
    try:
        client = login(admin_user, htmx=True)
        select(client, "plain-books", [catalogue["books"][0].pk])
        with django_capture_on_commit_callbacks(execute=True):
            assert (
                client.post(
                    "/plain-books/bulk/edit/", {"change_status": "1", "status": "archived"}
                ).status_code
                == 204
            )
        sync_run = BulkTask.objects.get()
        select(client, "async-books", [catalogue["books"][1].pk])
        with django_capture_on_commit_callbacks(execute=True):
            assert (
                client.post(
                    "/async-books/bulk/edit/", {"change_status": "1", "status": "archived"}
                ).status_code
                == 202
            )
        queued = BulkTask.objects.get(mode="async")
        assert seen == [(sync_run.pk, "sync", "succeeded")]  # not for a run that has not ended
        with django_capture_on_commit_callbacks(execute=True):
            assert run_bulk_task(queued.pk) == "succeeded"
        assert seen == [(sync_run.pk, "sync", "succeeded"), (queued.pk, "async", "succeeded")]
    finally:
        bulk_run_finished.disconnect(receiver)


def test_runs_that_ended_before_the_upgrade_are_not_announced(admin_user: Any) -> None:
    import importlib

    from django.apps import apps
    from django.db import connection
    from django.utils import timezone

    migration = importlib.import_module("powercrud.migrations.0004_run_notified_at")
    old = ended(admin_user, finished_at=timezone.now())
    queued = ended(admin_user, status=BulkTask.Status.QUEUED)

    class Editor:
        pass

    editor = Editor()
    editor.connection = connection  # type: ignore[attr-defined]
    migration.earlier_runs_were_seen(apps, editor)
    old.refresh_from_db()
    queued.refresh_from_db()
    assert (old.notified_at, queued.notified_at) == (old.finished_at, None)


def test_each_owner_gets_their_own_runs_oldest_end_first_five_a_page(
    admin_user: Any, user_factory: Any
) -> None:
    """The unseen-runs statement is prepared once and reused for every owner: each owner still
    gets only their own runs, by the time they ended, five a page."""
    import datetime

    from django.utils import timezone

    other = user_factory("someone-else", "view_book")
    start = timezone.now()
    mine = [ended(admin_user, finished_at=start + datetime.timedelta(seconds=9 - n)) for n in range(7)]
    theirs = ended(other, finished_at=start)
    admin_page = toasts(login(admin_user))
    shown = [run for run in mine if f"#{run.pk} " in admin_page]
    assert shown == mine[2:]  # the five that ended first; the two latest wait for the next page
    other_page = toasts(login(other))
    assert f"#{theirs.pk} " in other_page
    assert not any(f"#{run.pk} " in other_page for run in mine)
    next_page = toasts(login(admin_user))
    assert all(f"#{run.pk} " in next_page for run in mine[:2])
