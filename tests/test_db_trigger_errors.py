"""A database trigger that refuses one row: that row's error, in both modes, sync and async.

PostgreSQL raises a plain ``RAISE EXCEPTION`` as SQLSTATE P0001, which Django gives as an
``InternalError`` (not an ``IntegrityError``); SQLite's ``RAISE(ABORT, ...)`` gives an
``IntegrityError``. Either way: per-row mode writes every other row and names the refused
one with the trigger's message; all-or-nothing writes nothing and says the same. A lost
connection is still the run's error, never a row's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.db import InterfaceError, OperationalError, connection, models, transaction
from django.test import override_settings

from powercrud.bulk import BulkContext, BulkDeleteService, BulkUpdateService, WriteStrategy, choose_strategy
from powercrud.bulk.request import BulkRequest
from powercrud.bulk.types import RowError
from powercrud.bulk_persistence import DefaultBulkUpdatePersistenceBackend, run_bulk_delete, run_bulk_update
from powercrud.jobs.launch import launch_bulk_task
from powercrud.jobs.worker import run_bulk_task
from powercrud.models import BulkTask, RowLock
from tests.bulk_urls import select
from tests.conftest import HtmxClient, make_user
from tests.testapp.models import Author, Book, Shelf

REFUSED = "this row is frozen"
REJECTED = f"The database rejected the change: {REFUSED}"
ROWS = 12
BATCH = 4


def refuse_in_trigger(model: type[models.Model], pk: Any, event: str = "UPDATE") -> None:
    """A ``BEFORE <event>`` trigger on ``model``'s table that refuses row ``pk`` (rolled back
    with the test's transaction)."""
    table = model._meta.db_table
    name = f"pc_refuse_{table}_{event.lower()}"
    old = "OLD" if event in ("UPDATE", "DELETE") else "NEW"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            returned = "OLD" if event == "DELETE" else "NEW"
            cursor.execute(  # a plain RAISE EXCEPTION: SQLSTATE P0001, not an integrity error
                f"CREATE FUNCTION {name}() RETURNS trigger AS $$ BEGIN "
                f"IF {old}.id = {int(pk)} THEN RAISE EXCEPTION '{REFUSED}'; END IF; "
                f"RETURN {returned}; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()"
            )
        else:
            cursor.execute(
                f"CREATE TRIGGER {name} BEFORE {event} ON {table} WHEN {old}.id = {int(pk)} "
                f"BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END"
            )


def make_rows(model: type[models.Model]) -> list[Any]:
    if model is Book:
        author = Author.objects.create(name="Trigger Author")
        return [
            Book.objects.create(title=f"Book {i:02d}", author=author, status="draft", price=Decimal("1.00"))
            for i in range(ROWS)
        ]
    return [Shelf.objects.create(name=f"Shelf {i:02d}", location="basement") for i in range(ROWS)]


# model, the field the bulk edit writes, its new value, the write strategy it takes
CASES = {
    "set-based": (Book, "status", "published", WriteStrategy.SET_BASED),
    "per-object": (Shelf, "location", "attic", WriteStrategy.PER_OBJECT),
}
MODES = {"all-or-nothing": True, "per-row": False}


@pytest.fixture(params=list(CASES))
def case(request: pytest.FixtureRequest, db: None) -> Iterator[dict[str, Any]]:
    """Twelve rows; the seventh (second batch of four) is refused by a trigger."""
    model, name, value, strategy = CASES[request.param]
    assert choose_strategy(model, [name]) is strategy
    rows = make_rows(model)
    frozen = rows[6]
    refuse_in_trigger(model, frozen.pk)
    yield {"model": model, "field": name, "value": value, "rows": rows, "frozen": frozen}


def values(case: dict[str, Any]) -> dict[Any, Any]:
    return dict(case["model"].objects.values_list("pk", case["field"]))


def context(model: type[models.Model], atomic: bool, operation: str = "update") -> BulkContext:
    return BulkContext(
        mode="sync",
        model_label=model._meta.label_lower,
        user_id=None,
        selection_size=ROWS,
        atomic=atomic,
        batch_size=BATCH,
        operation=operation,  # type: ignore[arg-type]
    )


def assert_outcome(case: dict[str, Any], atomic: bool, errors: list[RowError], message: str) -> None:
    frozen = case["frozen"]
    assert errors == [RowError(pk=frozen.pk, field=None, messages=(REJECTED,))]
    written = {pk for pk, value in values(case).items() if value == case["value"]}
    if atomic:
        assert written == set()
        assert message == f"1 of {ROWS} rows failed, so nothing was saved (all-or-nothing)."
    else:
        assert written == {row.pk for row in case["rows"]} - {frozen.pk}
        assert message.startswith(f"1 of {ROWS} rows failed; updated {ROWS - 1:,}")


@pytest.mark.parametrize("atomic", list(MODES.values()), ids=list(MODES))
def test_sync_a_trigger_refusing_one_row_is_that_rows_error(case: dict[str, Any], atomic: bool) -> None:
    model = case["model"]
    result = run_bulk_update(
        DefaultBulkUpdatePersistenceBackend(),
        queryset=model.objects.all(),
        bulk_fields=[case["field"]],
        fields_to_update=[case["field"]],
        field_data={case["field"]: case["value"]},
        context=context(model, atomic),
    )
    assert not result.success
    assert result.success_records == (0 if atomic else ROWS - 1)
    assert_outcome(case, atomic, list(result.errors), result.message)


@pytest.mark.parametrize("atomic", list(MODES.values()), ids=list(MODES))
def test_async_a_trigger_refusing_one_row_is_that_rows_error(case: dict[str, Any], atomic: bool) -> None:
    model = case["model"]
    request = BulkRequest(
        operation="update",
        model_label=model._meta.label_lower,
        fields_to_update=(case["field"],),
        field_data={case["field"]: case["value"]},
        bulk_fields=(case["field"],),
        atomic=atomic,
        batch_size=BATCH,
    )
    task = launch_bulk_task(request, model.objects.all(), user=None)
    assert run_bulk_task(task.pk) == "failed"
    task.refresh_from_db()
    assert task.status == BulkTask.Status.FAILED
    errors = [RowError(pk=e["pk"], field=e["field"], messages=tuple(e["messages"])) for e in task.errors]
    assert_outcome(case, atomic, errors, task.message)
    assert (task.success_count, task.failure_count) == (0 if atomic else ROWS - 1, 1)
    assert not RowLock.objects.exists()


@pytest.mark.urls("tests.bulk_urls")
@override_settings(POWERCRUD_SETTINGS={"BULK_BATCH_SIZE": BATCH})
@pytest.mark.parametrize(
    ("url_base", "atomic"),
    [("plain-books", True), ("per-row-books", False)],
    ids=["all-or-nothing", "per-row"],
)
def test_through_the_view_a_trigger_refusing_one_book_is_shown_not_a_500(
    db: None, url_base: str, atomic: bool
) -> None:
    books = make_rows(Book)
    frozen = books[6]
    refuse_in_trigger(Book, frozen.pk)
    client = HtmxClient()
    client.force_login(make_user("ops", superuser=True))
    assert select(client, url_base, [b.pk for b in books]).status_code == 200
    response = client.post(f"/{url_base}/bulk/edit/", {"change_status": "1", "status": "published"})
    assert response.status_code == 200
    assert REJECTED in response.content.decode()
    published = set(Book.objects.filter(status="published").values_list("pk", flat=True))
    assert published == (set() if atomic else {b.pk for b in books} - {frozen.pk})


@pytest.mark.urls("tests.bulk_urls")
@override_settings(POWERCRUD_SETTINGS={"BULK_BATCH_SIZE": BATCH})
def test_through_the_view_a_trigger_refusing_one_shelf_is_shown_not_a_500(db: None) -> None:
    """The demo's shelves: per-row, per-object (a post_save receiver)."""
    shelves = make_rows(Shelf)
    frozen = shelves[6]
    refuse_in_trigger(Shelf, frozen.pk)
    client = HtmxClient()
    client.force_login(make_user("ops", superuser=True))
    assert select(client, "shelf", [s.pk for s in shelves]).status_code == 200
    response = client.post("/shelf/bulk/edit/", {"change_location": "1", "location": "attic"})
    assert response.status_code == 200
    assert REJECTED in response.content.decode()
    moved = set(Shelf.objects.filter(location="attic").values_list("pk", flat=True))
    assert moved == {s.pk for s in shelves} - {frozen.pk}


@pytest.mark.parametrize("atomic", list(MODES.values()), ids=list(MODES))
def test_a_delete_trigger_refusing_one_row_is_that_rows_error(db: None, atomic: bool) -> None:
    books = make_rows(Book)
    frozen = books[6]
    refuse_in_trigger(Book, frozen.pk, "DELETE")
    result = run_bulk_delete(queryset=Book.objects.all(), context=context(Book, atomic, "delete"))
    assert not result.success
    assert list(result.errors) == [RowError(pk=frozen.pk, field=None, messages=(REJECTED,))]
    left = set(Book.objects.values_list("pk", flat=True))
    assert left == ({b.pk for b in books} if atomic else {frozen.pk})


# --- a lost connection is the run's error -------------------------------------------------------


def failing_write(error: Exception) -> Callable[..., Any]:
    def write(*args: Any, **kwargs: Any) -> Any:
        raise error

    return write


CONNECTION_LOST = {
    "server closed": OperationalError("server closed the connection unexpectedly"),
    "terminated": OperationalError("terminating connection due to administrator command"),
    "closed": InterfaceError("connection already closed"),
}


@pytest.mark.parametrize("atomic", list(MODES.values()), ids=list(MODES))
@pytest.mark.parametrize("lost", list(CONNECTION_LOST))
def test_a_lost_connection_in_a_rows_write_is_the_runs_error_not_the_rows(
    db: None, monkeypatch: pytest.MonkeyPatch, atomic: bool, lost: str
) -> None:
    make_rows(Shelf)
    error = CONNECTION_LOST[lost]
    monkeypatch.setattr(Shelf, "save", failing_write(error))
    with pytest.raises(type(error)), transaction.atomic():
        BulkUpdateService().apply(
            queryset=Shelf.objects.all(),
            bulk_fields=["location"],
            fields_to_update=["location"],
            field_data={"location": "attic"},
            context=context(Shelf, atomic),
        )


@pytest.mark.parametrize("atomic", list(MODES.values()), ids=list(MODES))
def test_a_lost_connection_in_a_deletes_batch_is_the_runs_error(
    db: None, monkeypatch: pytest.MonkeyPatch, atomic: bool
) -> None:
    make_rows(Book)
    error = OperationalError("server closed the connection unexpectedly")
    monkeypatch.setattr(BulkDeleteService, "_delete", failing_write(error))
    with pytest.raises(OperationalError), transaction.atomic():
        BulkDeleteService().apply(queryset=Book.objects.all(), context=context(Book, atomic, "delete"))


def test_which_database_errors_are_the_runs() -> None:
    from django.db import DatabaseError, DataError, IntegrityError, InternalError, ProgrammingError

    from powercrud.bulk.db_errors import is_run_error

    def with_sqlstate(exc: Exception, sqlstate: str) -> Exception:
        cause = Exception()
        cause.sqlstate = sqlstate  # type: ignore[attr-defined]
        exc.__cause__ = cause
        return exc

    for lost in CONNECTION_LOST.values():
        assert is_run_error(lost)
    assert is_run_error(OperationalError("database is locked"))  # SQLite: the 503, not a row
    read_only = InternalError("cannot execute UPDATE in a read-only transaction")
    assert is_run_error(with_sqlstate(read_only, "25006"))
    assert is_run_error(with_sqlstate(InternalError("current transaction is aborted"), "25P02"))
    assert not is_run_error(with_sqlstate(ProgrammingError(REFUSED), "P0001"))  # RAISE EXCEPTION
    assert not is_run_error(with_sqlstate(InternalError("assertion failed"), "P0004"))
    assert not is_run_error(IntegrityError("CHECK constraint failed: x"))
    assert not is_run_error(DataError("value too long"))
    assert not is_run_error(DatabaseError("Save with update_fields did not affect any rows."))
