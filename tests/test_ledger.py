"""The run ledger: one ``RunRow`` per row of every bulk run, exact whatever happened.

Runs are made the way the view and the worker make them (``run_recorded()``), so these
tests see the same rows a user's run leaves: changed and unchanged rows with their old and
new values, failed rows with their errors, and rows an all-or-nothing rollback, a cancel or a
dead worker never reached.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction

from powercrud.bulk.ledger import stored_value
from powercrud.bulk.request import BulkRequest
from powercrud.jobs.ledger import counts, pk_text, run_recorded, selection_keys
from powercrud.jobs.monitor import close_request_run, fail_stale_tasks, open_request_run, request_cancel
from powercrud.jobs.worker import run_bulk_task
from powercrud.models import BulkTask, RunRow
from tests.async_helpers import freeze_now, launch_books, make_books
from tests.testapp.models import Book, Tag

pytestmark = pytest.mark.django_db

REFUSE = "tests.async_helpers.RefuseTitlesBackend"


def run_sync(queryset: Any, data: dict[str, Any], **fields: Any) -> tuple[BulkTask, Any]:
    """Run an edit of ``data`` (or a delete with ``operation="delete"``) over ``queryset`` in the
    request's way; returns the run record and the result."""
    operation = fields.pop("operation", "update")
    names = tuple(data)
    request = BulkRequest(
        operation=operation,
        model_label=queryset.model._meta.label_lower,
        fields_to_update=names,
        field_data=data,
        bulk_fields=names,
        **fields,
    )
    with transaction.atomic():
        run = open_request_run(request, user=None, total=queryset.count())
        context = request.context(mode="sync", user_id=None, selection_size=run.total)
        result, row_counts = run_recorded(
            run, request, queryset=queryset, keys=selection_keys(queryset), context=context
        )
        close_request_run(run, result, row_counts)  # as the view does
    run.refresh_from_db()
    assert run.row_counts == counts(run)  # whether the run's counts were read or known
    return run, result


def outcomes(run: BulkTask) -> dict[str, str]:
    return dict(RunRow.objects.filter(run=run).values_list("object_pk", "outcome"))


def entry(run: BulkTask, pk: Any) -> RunRow:
    return RunRow.objects.get(run=run, object_pk=pk_text(Book, pk))


def test_set_based_edit_records_changed_and_unchanged_rows_with_old_and_new_values() -> None:
    books = make_books(5)
    Book.objects.filter(pk=books[0].pk).update(price=Decimal("12.50"))
    old_prices = {b.pk: Book.objects.get(pk=b.pk).price for b in books}
    run, result = run_sync(Book.objects.all(), {"price": "12.50"})
    assert result.changed == 4
    assert outcomes(run) == {
        pk_text(Book, b.pk): ("unchanged" if b.pk == books[0].pk else "changed") for b in books
    }
    for book in books:
        row = entry(run, book.pk)
        assert stored_value(Book, "price", row.old["price"]) == old_prices[book.pk]
        assert stored_value(Book, "price", row.new["price"]) == Decimal("12.50")
    assert run.row_counts == {"changed": 4, "unchanged": 1} == counts(run)


@pytest.mark.parametrize("atomic", [True, False], ids=["all-or-nothing", "per-row"])
def test_a_set_based_run_knows_its_counts_without_reading_the_ledger(atomic: bool) -> None:
    """Every entry came from the snapshots and the ``UPDATE`` counted the changed rows: the
    run's counts are the result's, checked here against the ledger itself."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    books = make_books(7)
    Book.objects.filter(pk__in=[books[1].pk, books[5].pk]).update(status="archived")
    with CaptureQueriesContext(connection) as queries:
        run, result = run_sync(Book.objects.all(), {"status": "archived"}, batch_size=3, atomic=atomic)
    assert result.changed == 5
    assert run.row_counts == {"changed": 5, "unchanged": 2} == counts(run)
    read = [q for q in queries.captured_queries if "GROUP BY" in q["sql"]]
    assert len(read) == 1  # run_sync's own check that the record agrees with the ledger


@pytest.mark.parametrize("replayed", [False, True], ids=["batches in order", "a batch taken again"])
def test_counts_are_added_up_from_snapshots_only_when_no_batch_was_taken_again(replayed: bool) -> None:
    """A batch the database refused is replayed after its snapshot was rolled back: the second
    snapshot of the same keys must not be counted on top of the first."""
    from django.db.models import Q

    from powercrud.bulk.types import BulkResult
    from powercrud.jobs.ledger import Recorder, settle_result

    books = make_books(4)
    pks = [b.pk for b in books]
    request = BulkRequest(
        operation="update",
        model_label="testapp.book",
        fields_to_update=("status",),
        field_data={"status": "archived"},
        bulk_fields=("status",),
    )
    with transaction.atomic():
        run = open_request_run(request, user=None, total=4)
        recorder = Recorder(run, Book, check=False)

        def snapshot(keys: list[int]) -> None:
            rows = Book.objects.filter(pk__in=keys)
            recorder.snapshot(
                rows, old=["status"], new={"status": "archived"}, unchanged=Q(status="archived"), pks=keys
            )

        if replayed:
            refused = transaction.savepoint()
            snapshot(pks[:2])
            transaction.savepoint_rollback(refused)  # the refused batch's snapshot is gone
        snapshot(pks[:2])
        snapshot(pks[2:])
        result = BulkResult(success=True, success_records=4, total=4, changed=4)
        known = recorder.snapshot_counts(result)
        found = settle_result(recorder, selection_keys(Book.objects.all()), result, atomic=False, total=4)
    assert known == (None if replayed else {"changed": 4})
    assert found == {"changed": 4} == counts(run)


def test_an_edit_that_reads_its_rows_records_many_to_many_before_and_after() -> None:
    books = make_books(3)
    red, blue = Tag.objects.create(name="red"), Tag.objects.create(name="blue")
    books[0].tags.add(red)
    run, _ = run_sync(Book.objects.all(), {"status": "archived", "tags": {"op": "add", "ids": [blue.pk]}})
    first = entry(run, books[0].pk)
    assert first.outcome == "changed"
    assert first.old == {"status": "draft", "tags": [red.pk]}
    assert first.new == {"status": "archived", "tags": sorted([red.pk, blue.pk])}
    assert entry(run, books[1].pk).old["tags"] == []


def test_a_check_records_what_it_would_do_and_writes_nothing() -> None:
    books = make_books(4)
    run, result = run_sync(Book.objects.all(), {"status": "archived"}, dry_run=True)
    assert result.dry_run and run.dry_run
    assert set(outcomes(run).values()) == {"changed"}
    assert entry(run, books[2].pk).new == {"status": "archived"}
    assert set(Book.objects.values_list("status", flat=True)) == {"draft"}


def test_all_or_nothing_failing_on_the_last_row_leaves_no_changed_rows() -> None:
    books = make_books(25)
    last = books[-1]
    run, result = run_sync(
        Book.objects.all(),
        {"status": "archived"},
        backend_path=REFUSE,
        backend_config={"refuse": [last.title]},
        batch_size=10,
    )
    assert not result.success
    assert run.row_counts == {"failed": 1, "not_reached": 24}
    failed = entry(run, last.pk)
    assert failed.outcome == "failed"
    assert failed.errors == [{"field": "status", "messages": [f"“{last.title}” may not change."]}]
    assert set(Book.objects.values_list("status", flat=True)) == {"draft"}


def test_per_row_mode_records_the_failed_rows_and_the_written_ones() -> None:
    books = make_books(12)
    refused = {books[3].title, books[10].title}
    run, result = run_sync(
        Book.objects.all(),
        {"status": "archived"},
        backend_path=REFUSE,
        backend_config={"refuse": sorted(refused)},
        atomic=False,
        batch_size=5,
    )
    assert result.failed == 2
    assert run.row_counts == {"changed": 10, "failed": 2}
    assert {RunRow.objects.get(run=run, object_pk=k).outcome for k in (pk_text(Book, books[3].pk),)} == {
        "failed"
    }
    changed = RunRow.objects.filter(run=run, outcome="changed").values_list("object_pk", flat=True)
    assert set(changed) == {pk_text(Book, b.pk) for b in books if b.title not in refused}


def test_a_delete_records_every_field_of_each_deleted_row() -> None:
    books = make_books(3)
    before = {row["id"]: row for row in Book.objects.values()}
    run, result = run_sync(Book.objects.all(), {}, operation="delete")
    assert result.success and not Book.objects.exists()
    for book in books:
        old = entry(run, book.pk).old
        assert old["title"] == before[book.pk]["title"]
        assert old["author"] == before[book.pk]["author_id"]
        assert stored_value(Book, "price", old["price"]) == before[book.pk]["price"]
    assert run.row_counts == {"changed": 3}


def test_a_background_run_records_its_rows_in_the_worker() -> None:
    books = make_books(30)
    task = launch_books(Book.objects.all(), batch_size=7)
    assert run_bulk_task(task.pk) == "succeeded"
    task.refresh_from_db()
    assert task.row_counts == {"changed": 30}
    assert entry(task, books[29].pk).old == {"status": "draft"}


def test_counts_are_exact_with_12000_failing_rows() -> None:
    make_books(12_500)
    Book.objects.filter(pk__in=Book.objects.order_by("pk").values("pk")[:12_000]).update(title="No 1")
    task = launch_books(
        Book.objects.all(), config={"prefix": "No "}, backend=REFUSE, atomic=False, batch_size=1000
    )
    run_bulk_task(task.pk)
    task.refresh_from_db()
    assert task.row_counts == {"changed": 500, "failed": 12_000}
    assert task.failure_count == 12_000
    assert RunRow.objects.filter(run=task, outcome="failed", errors__isnull=False).count() == 12_000


def test_a_cancelled_run_never_reached_its_rows() -> None:
    make_books(6)
    task = freeze_now(launch_books(Book.objects.all()))  # its rows locked, as its worker's first step
    request_cancel(task)
    task.refresh_from_db()
    assert task.status == "cancelled"
    assert task.row_counts == {"not_reached": 6}


def test_a_run_whose_worker_died_never_reached_its_rows() -> None:
    make_books(4)
    task = freeze_now(launch_books(Book.objects.all()))
    BulkTask.objects.filter(pk=task.pk).update(status="running", heartbeat_at=None, started_at=None)
    assert fail_stale_tasks(older_than_seconds=0) == [task.pk]
    task.refresh_from_db()
    assert task.row_counts == {"not_reached": 4}
    assert set(Book.objects.values_list("status", flat=True)) == {"draft"}


def test_the_ledger_and_the_core_name_the_same_outcomes() -> None:
    from powercrud.bulk import ledger

    assert set(ledger.OUTCOMES) == set(RunRow.Outcome.values)


def test_each_batch_records_its_own_rows_when_the_statement_is_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run's batches share one compiled snapshot (compiling costs about half the statement's
    own time); each batch must still record its own rows."""
    from powercrud.jobs import ledger as jobs_ledger

    compiled: list[Any] = []
    real = jobs_ledger.insert_statement
    monkeypatch.setattr(jobs_ledger, "insert_statement", lambda *a, **k: compiled.append(1) or real(*a, **k))
    books = make_books(11)  # batches of 3, 3, 3 and 2 (per-row mode: all-or-nothing writes one)
    old_prices = {b.pk: Book.objects.get(pk=b.pk).price for b in books}
    run, _ = run_sync(Book.objects.all(), {"price": "99.00"}, batch_size=3, atomic=False)
    assert RunRow.objects.filter(run=run).count() == 11
    for book in books:
        assert stored_value(Book, "price", entry(run, book.pk).old["price"]) == old_prices[book.pk]
    assert len(compiled) == 1


def test_the_ledger_has_no_database_foreign_key_yet_deleting_a_run_deletes_its_rows() -> None:
    """No foreign-key constraint on ``RunRow.run``: PostgreSQL would check it once per inserted
    row at commit (seconds for a million rows). The ORM's cascade still removes a run's rows."""
    from django.db import connection

    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, RunRow._meta.db_table)
    assert not [name for name, c in constraints.items() if c["foreign_key"]]
    run, _ = run_sync(Book.objects.filter(pk__in=[b.pk for b in make_books(3)]), {"price": "1.00"})
    assert RunRow.objects.filter(run=run).count() == 3
    run.delete()
    assert not RunRow.objects.filter(run_id=run.pk).exists()
