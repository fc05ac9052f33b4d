"""Chunked per-row runs in one process: the view attribute and its check (E028), what the launch
stores, a split run's chunks run one by one (duplicates skipped, exact counts and ledger), and
undo of a chunked run. The runs on real workers are in test_chunked_workers.py."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from powercrud.checks import check_view
from powercrud.jobs.chunks import CHUNK_FUNCTION, run_chunk
from powercrud.jobs.worker import run_bulk_task
from powercrud.models import CHUNK_SIZE_KEY, BulkTask, RowLock, RunChunk, RunRow
from tests.async_helpers import RecordingRunner, launch_books, make_books
from tests.bulk_urls import select, selection_url
from tests.security.conftest import login
from tests.security.urls import AsyncBooksView
from tests.testapp.models import Book

pytestmark = pytest.mark.django_db

HERE = __name__


@pytest.fixture(autouse=True)
def _runner() -> Any:
    RecordingRunner.jobs = []
    values = {**getattr(settings, "POWERCRUD_SETTINGS", {}), "BULK_RUNNER": f"{HERE}.RecordingRunner"}
    with override_settings(POWERCRUD_SETTINGS=values):
        yield


def chunk_jobs() -> list[int]:
    return [int(args[0]) for job, args, _name in RecordingRunner.jobs if job == CHUNK_FUNCTION]


def e028(view: type[Any]) -> list[str]:
    return [str(error.msg) for error in check_view(view) if error.id == "powercrud.E028"]


def test_e028_refuses_a_chunk_size_on_an_all_or_nothing_view_or_below_one() -> None:
    atomic = type("AtomicChunked", (AsyncBooksView,), {"bulk_chunk_size": 100})
    zero = type("ZeroChunk", (AsyncBooksView,), {"bulk_chunk_size": 0, "bulk_atomic": False})
    fine = type("FineChunk", (AsyncBooksView,), {"bulk_chunk_size": 100, "bulk_atomic": False})
    assert e028(atomic) == [
        "AtomicChunked.bulk_chunk_size is set, but the view is all-or-nothing (bulk_atomic = True), "
        "whose run is one transaction on one worker and is never split."
    ]
    assert e028(zero) == ["ZeroChunk.bulk_chunk_size is 0; it must be a whole number of rows, 1 or more."]
    assert e028(fine) == [] and e028(AsyncBooksView) == []
    assert fine().get_bulk_chunk_size() == 100 and atomic().get_bulk_chunk_size() is None


def test_the_launch_stores_a_chunk_size_for_a_per_row_run_only() -> None:
    from powercrud.jobs.launch import launch_bulk_task

    make_books(6)
    per_row = launch_books(Book.objects.all(), atomic=False)
    assert CHUNK_SIZE_KEY not in per_row.payload  # no chunk size asked: one job, as before
    atomic = launch_books(Book.objects.filter(pk__lt=0), atomic=True)
    request = atomic.read_request()
    chunked = launch_bulk_task(
        dataclasses.replace(request, atomic=False), Book.objects.all(), user=None, chunk_size=2
    )
    assert chunked.payload[CHUNK_SIZE_KEY] == 2
    assert chunked.read_request() == dataclasses.replace(request, atomic=False)  # the request reads as it was
    refused = launch_bulk_task(request, Book.objects.all(), user=None, chunk_size=2)
    assert CHUNK_SIZE_KEY not in refused.payload  # all-or-nothing is never split


def test_a_split_run_ends_with_its_last_chunk_with_exact_counts_and_ledger(
    django_capture_on_commit_callbacks: Any,
) -> None:
    from powercrud.jobs.launch import launch_bulk_task

    make_books(7)
    request = launch_books(Book.objects.filter(pk__lt=0), atomic=False).read_request()
    with django_capture_on_commit_callbacks(execute=True):
        run = launch_bulk_task(request, Book.objects.all(), user=None, chunk_size=3)
    with django_capture_on_commit_callbacks(execute=True):
        assert run_bulk_task(run.pk) == "chunked"
    ids = chunk_jobs()
    chunks = list(RunChunk.objects.filter(run=run).order_by("index"))
    assert [c.pk for c in chunks] == ids and [c.size for c in chunks] == [3, 3, 1]
    assert RowLock.objects.filter(task=run).count() == 7
    assert run_chunk(ids[0]) == "succeeded"
    assert run_chunk(ids[0]) == "skipped"  # delivered again: claimed once
    run.refresh_from_db()
    assert run.status == "running" and RowLock.objects.filter(task=run).count() == 7
    assert [run_chunk(i) for i in ids[1:]] == ["succeeded", "succeeded"]
    run.refresh_from_db()
    assert (run.status, run.success_count, run.failure_count, run.done, run.total) == (
        "succeeded", 7, 0, 7, 7,
    )  # fmt: skip
    assert run.message == "Updated 7 of 7 rows." and run.row_counts == {"changed": 7}
    assert RunRow.objects.filter(run=run).count() == 7
    assert RowLock.objects.count() == 0
    assert set(Book.objects.values_list("status", flat=True)) == {"archived"}
    assert [c.attempts for c in RunChunk.objects.filter(run=run)] == [1, 1, 1]


def test_a_cancel_before_a_chunk_starts_ends_the_run_cancelled_keeping_finished_chunks(
    django_capture_on_commit_callbacks: Any,
) -> None:
    from powercrud.jobs.launch import launch_bulk_task
    from powercrud.jobs.monitor import request_cancel

    make_books(4)
    request = launch_books(Book.objects.filter(pk__lt=0), atomic=False).read_request()
    with django_capture_on_commit_callbacks(execute=True):
        run = launch_bulk_task(request, Book.objects.all(), user=None, chunk_size=2)
    with django_capture_on_commit_callbacks(execute=True):
        run_bulk_task(run.pk)
    first, second = chunk_jobs()
    assert run_chunk(first) == "succeeded"
    request_cancel(run.pk)
    assert run_chunk(second) == "cancelled"
    run.refresh_from_db()
    assert run.status == "cancelled" and run.row_counts == {"changed": 2, "not_reached": 2}
    assert Book.objects.filter(status="archived").count() == 2 and RowLock.objects.count() == 0


@pytest.mark.urls("tests.security.urls")
def test_undo_of_a_chunked_run_restores_every_row(
    admin_user: Any, catalogue: Any, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    monkeypatch.setattr(AsyncBooksView, "bulk_atomic", False)
    monkeypatch.setattr(AsyncBooksView, "bulk_chunk_size", 2)
    client = login(admin_user)
    pks = [b.pk for b in catalogue["books"][:5]]
    before = dict(Book.objects.filter(pk__in=pks).values_list("pk", "price"))
    select(client, "async-books", pks)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/async-books/bulk/edit/", {"change_price": "1", "price": "2.50"})
    assert response.status_code in (202, 204, 302), response.content
    run = BulkTask.objects.order_by("-pk").first()
    assert run is not None and run.payload[CHUNK_SIZE_KEY] == 2
    with django_capture_on_commit_callbacks(execute=True):
        assert run_bulk_task(run.pk) == "chunked"
    assert [run_chunk(i) for i in chunk_jobs()] == ["succeeded"] * 3
    run.refresh_from_db()
    assert run.status == "succeeded" and run.row_counts == {"changed": 5}
    assert set(Book.objects.filter(pk__in=pks).values_list("price", flat=True)) == {Decimal("2.50")}
    client.post(selection_url("async-books"), {"action": "clear"})
    with django_capture_on_commit_callbacks(execute=True):
        undone = client.post("/async-books/bulk/edit/", {"undo_run": str(run.pk)})
    assert undone.status_code == 302
    undo = BulkTask.objects.order_by("-pk").first()
    assert undo is not None and undo.pk != run.pk
    with django_capture_on_commit_callbacks(execute=True):
        assert run_bulk_task(undo.pk) in ("succeeded", "chunked")
    for chunk_id in chunk_jobs():
        run_chunk(chunk_id)  # the undo's chunks, if it was split (finished chunks are skipped)
    undo.refresh_from_db()
    assert undo.status == "succeeded" and undo.row_counts == {"changed": 5}
    assert dict(Book.objects.filter(pk__in=pks).values_list("pk", "price")) == before


def test_cleanup_queues_a_dead_chunk_again_then_fails_it_after_its_attempts(
    django_capture_on_commit_callbacks: Any,
) -> None:
    import datetime

    from django.utils import timezone

    from powercrud.jobs import progress
    from powercrud.jobs.launch import launch_bulk_task
    from powercrud.jobs.monitor import fail_stale_tasks

    make_books(4)
    request = launch_books(Book.objects.filter(pk__lt=0), atomic=False).read_request()
    with django_capture_on_commit_callbacks(execute=True):
        run = launch_bulk_task(request, Book.objects.all(), user=None, chunk_size=2)
    with django_capture_on_commit_callbacks(execute=True):
        run_bulk_task(run.pk)
    first, second = chunk_jobs()
    assert run_chunk(first) == "succeeded"
    long_ago = timezone.now() - datetime.timedelta(seconds=600)
    BulkTask.objects.filter(pk=run.pk).update(heartbeat_at=long_ago)
    progress.forget(run)  # the first chunk's live heartbeat (SQLite's side file), as if long ago
    for attempt in (1, 2, 3):  # a worker takes the chunk and dies, three times
        RecordingRunner.jobs = []
        RunChunk.objects.filter(pk=second).update(status="running", attempts=attempt, started_at=long_ago)
        assert fail_stale_tasks(older_than_seconds=60) == []  # a chunked run is not failed whole
        chunk = RunChunk.objects.get(pk=second)
        if attempt < 3:
            assert chunk.status == "queued" and chunk_jobs() == [second]  # queued again
        else:
            assert chunk.status == "failed" and chunk_jobs() == []
    run.refresh_from_db()
    assert run.status == "failed", run.message
    assert run.row_counts == {"changed": 2, "not_reached": 2}
    assert Book.objects.filter(status="archived").count() == 2 and RowLock.objects.count() == 0


@pytest.mark.urls("tests.security.urls")
def test_a_json_api_run_on_a_worker_is_chunked_as_the_modals_is(
    admin_user: Any, catalogue: Any, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    monkeypatch.setattr(AsyncBooksView, "bulk_atomic", False)
    monkeypatch.setattr(AsyncBooksView, "bulk_chunk_size", 2)
    pks = [b.pk for b in catalogue["books"][:5]]
    document = {"operation": "update", "selection": {"ids": pks}, "values": {"price": "3.50"}}
    with django_capture_on_commit_callbacks(execute=True):
        response = login(admin_user).post(
            "/async-books/bulk/api/", data=json.dumps(document), content_type="application/json"
        )
    assert response.status_code == 202, response.content
    run = BulkTask.objects.get(pk=response.json()["run"])
    assert run.payload[CHUNK_SIZE_KEY] == 2
    with django_capture_on_commit_callbacks(execute=True):
        assert run_bulk_task(run.pk) == "chunked"
    assert [run_chunk(i) for i in chunk_jobs()] == ["succeeded"] * 3
    run.refresh_from_db()
    assert run.status == "succeeded" and run.row_counts == {"changed": 5}
    assert set(Book.objects.filter(pk__in=pks).values_list("price", flat=True)) == {Decimal("3.50")}


@pytest.mark.urls("tests.security.urls")
def test_the_modal_says_how_a_background_run_is_shared_out(
    admin_user: Any, catalogue: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = login(admin_user)
    select(client, "async-books", [b.pk for b in catalogue["books"][:5]])
    atomic = client.get("/async-books/bulk/edit/").content.decode()
    assert "in one transaction on one worker" in atomic and "in chunks of" not in atomic
    monkeypatch.setattr(AsyncBooksView, "bulk_atomic", False)
    monkeypatch.setattr(AsyncBooksView, "bulk_chunk_size", 2)
    chunked = client.get("/async-books/bulk/edit/").content.decode()
    assert "in chunks of 2 rows that several workers share" in chunked
