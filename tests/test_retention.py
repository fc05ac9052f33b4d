"""Retention of the run ledger: ``prune_run_rows()`` and ``manage.py powercrud_cleanup`` delete
the ``RunRow`` entries of runs that ended more than ``BULK_RUN_ROWS_RETENTION_DAYS`` ago, run by
run in batches; the runs keep their counts, and their pages say the row details were removed."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from powercrud.jobs import retention
from powercrud.jobs.retention import prune_run_rows
from powercrud.models import BulkTask, RunRow

pytestmark = pytest.mark.django_db

Status = BulkTask.Status


def run_with_rows(rows: int, *, ended_days_ago: float | None, status: str = Status.SUCCEEDED) -> BulkTask:
    """A run whose ledger holds ``rows`` changed rows, ended that many days ago (None: still running)."""
    now = timezone.now()
    finished = None if ended_days_ago is None else now - datetime.timedelta(days=ended_days_ago)
    task = BulkTask.objects.create(
        kind="update",
        model_label="testapp.book",
        status=status,
        total=rows,
        done=rows,
        success_count=rows,
        row_counts={"changed": rows} if rows else {},
        payload={
            "fields_to_update": ["status"],
            "field_data": {"status": "archived"},
            "bulk_fields": ["status"],
        },
        started_at=(finished or now) - datetime.timedelta(seconds=5),
        finished_at=finished,
    )
    RunRow.objects.bulk_create(
        (
            RunRow(
                run=task,
                object_pk=str(i),
                outcome="changed",
                old={"status": "draft"},
                new={"status": "archived"},
            )
            for i in range(rows)
        ),
        batch_size=5000,
    )
    return task


def kept(task: BulkTask) -> int:
    return RunRow.objects.filter(run=task).count()


@pytest.fixture
def retention_days(settings: Any) -> Any:
    def set_days(days: float | None) -> None:
        settings.POWERCRUD_SETTINGS = {"BULK_RUN_ROWS_RETENTION_DAYS": days}
        from powercrud.conf import settings as pc_settings

        pc_settings._cache = None

    yield set_days
    from powercrud.conf import settings as pc_settings

    pc_settings._cache = None


def test_rows_of_runs_that_ended_before_the_retention_are_deleted(retention_days: Any) -> None:
    retention_days(30)
    old = run_with_rows(7, ended_days_ago=31)
    old_failed = run_with_rows(3, ended_days_ago=400, status=Status.FAILED)
    recent = run_with_rows(5, ended_days_ago=29)
    running = run_with_rows(4, ended_days_ago=None, status=Status.RUNNING)
    BulkTask.objects.filter(pk=running.pk).update(created_at=timezone.now() - datetime.timedelta(days=90))
    assert prune_run_rows() == 10
    assert (kept(old), kept(old_failed), kept(recent), kept(running)) == (0, 0, 5, 4)
    old.refresh_from_db()
    assert old.row_counts == {"changed": 7}  # the run and its counts stay
    assert prune_run_rows() == 0  # nothing left to prune


def test_days_given_override_the_setting_and_none_keeps_every_row(retention_days: Any) -> None:
    a_week = run_with_rows(2, ended_days_ago=8)
    retention_days(None)
    assert prune_run_rows() == 0 and kept(a_week) == 2
    assert prune_run_rows(days=7) == 2 and kept(a_week) == 0


def test_a_large_run_is_deleted_in_batches(monkeypatch: Any, retention_days: Any) -> None:
    retention_days(30)
    monkeypatch.setattr(retention, "DELETE_BATCH", 1000)
    big = run_with_rows(4500, ended_days_ago=60)
    with CaptureQueriesContext(connection) as queries:
        assert prune_run_rows() == 4500
    deletes = [q["sql"] for q in queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 5  # 1000 at a time
    assert kept(big) == 0


def test_the_cleanup_command_prunes_and_says_how_many(capsys: Any, retention_days: Any) -> None:
    retention_days(30)
    run_with_rows(12, ended_days_ago=45)
    recent = run_with_rows(3, ended_days_ago=1)
    call_command("powercrud_cleanup")
    assert capsys.readouterr().out == "Pruned 12 run row(s) of bulk runs that ended more than 30 days ago.\n"
    call_command("powercrud_cleanup")
    assert capsys.readouterr().out == ""  # quiet when there is nothing to do
    call_command("powercrud_cleanup", "--rows-older-than", "0.5")
    assert capsys.readouterr().out == "Pruned 3 run row(s) of bulk runs that ended more than 0.5 days ago.\n"
    assert kept(recent) == 0


@pytest.mark.urls("tests.security.urls")
def test_a_pruned_run_page_says_its_row_details_were_removed(retention_days: Any) -> None:
    retention_days(30)
    user = User.objects.create_user("alice", password="pw")
    task = run_with_rows(6, ended_days_ago=40)
    BulkTask.objects.filter(pk=task.pk).update(owner=user)
    client = Client()
    client.force_login(user)
    before = client.get(f"/powercrud/tasks/{task.pk}/").content.decode()
    assert "Row details were removed" not in before and "Showing <strong>1–6</strong>" in before
    prune_run_rows()
    after = client.get(f"/powercrud/tasks/{task.pk}/").content.decode()
    assert "Row details were removed after 30 days" in after
    assert "Changed <strong>6</strong>" in after
