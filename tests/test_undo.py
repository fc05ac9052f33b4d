"""Undo of a bulk edit: a bulk run that writes back, row by row, what the run's ledger says
each row held before, except rows changed since (conflicts); itself recorded and undoable."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from powercrud.jobs.worker import run_bulk_task
from powercrud.models import BulkTask, RunRow
from tests.bulk_urls import select, selection_url
from tests.conftest import make_user
from tests.security.conftest import login
from tests.testapp.models import Book

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.security.urls")]

Catalogue = dict[str, Any]


def state(pks: list[Any]) -> dict[Any, tuple[str, Decimal, tuple[int, ...]]]:
    books = Book.objects.filter(pk__in=pks).prefetch_related("tags")
    return {b.pk: (b.status, b.price, tuple(sorted(t.pk for t in b.tags.all()))) for b in books}


def edit(client: Any, base: str, pks: list[Any], data: dict[str, Any], capture: Any) -> BulkTask:
    client.post(selection_url(base), {"action": "clear"})
    select(client, base, pks)
    with capture(execute=True):
        response = client.post(f"/{base}/bulk/edit/", data)
    assert response.status_code in (202, 204, 302), response.content
    run = BulkTask.objects.order_by("-pk").first()
    assert run is not None
    if run.mode == "async":
        run_bulk_task(run.pk)
        run.refresh_from_db()
    return run


def undo(client: Any, base: str, run: BulkTask, capture: Any, **data: Any) -> Any:
    with capture(execute=True):
        return client.post(f"/{base}/bulk/edit/", {"undo_run": str(run.pk), **data})


def latest() -> BulkTask:
    run = BulkTask.objects.order_by("-pk").first()
    assert run is not None
    return run


def test_undo_of_a_sync_edit_restores_every_changed_row_and_is_recorded(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user)
    pks = [b.pk for b in catalogue["books"][:6]]
    before = state(pks)
    run = edit(
        client,
        "plain-books",
        pks,
        {"change_price": "1", "price": "9.99", "change_status": "1", "status": "archived"},
        django_capture_on_commit_callbacks,
    )
    assert state(pks) != before
    response = undo(client, "plain-books", run, django_capture_on_commit_callbacks)
    undo_run = latest()
    assert response.status_code == 302
    assert response["Location"] == f"/powercrud/tasks/{undo_run.pk}/"
    assert state(pks) == before
    request = undo_run.read_request()
    assert (request.source_action, request.source_run) == ("undo", run.pk)
    assert undo_run.reason == f"Undo of run #{run.pk}"
    assert undo_run.status == "succeeded" and undo_run.row_counts == {"changed": 6}
    page = client.get(f"/powercrud/tasks/{undo_run.pk}/").content.decode()
    toast = f"Undo of run #{run.pk}: Updated 6 of 6 rows (6 changed)."
    assert toast in page  # once
    assert toast not in client.get(f"/powercrud/tasks/{undo_run.pk}/").content.decode()
    assert f"<h1>Undo of run #{run.pk}: Bulk edit of 6 books" in page


def test_rows_changed_since_are_conflicts_left_alone_naming_the_later_run(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user)
    books = catalogue["books"][:4]
    pks = [b.pk for b in books]
    before = state(pks)
    run = edit(
        client, "plain-books", pks, {"change_price": "1", "price": "9.99"}, django_capture_on_commit_callbacks
    )
    later = edit(
        client,
        "plain-books",
        [pks[1]],
        {"change_price": "1", "price": "1.00"},
        django_capture_on_commit_callbacks,
    )
    Book.objects.filter(pk=pks[2]).update(price=Decimal("3.00"))  # outside powercrud: no run knows
    undo(client, "plain-books", run, django_capture_on_commit_callbacks)
    undo_run = latest()
    after = state(pks)
    assert after[pks[0]] == before[pks[0]] and after[pks[3]] == before[pks[3]]
    assert after[pks[1]][1] == Decimal("1.00") and after[pks[2]][1] == Decimal("3.00")
    assert undo_run.row_counts == {"changed": 2, "conflict": 2}
    conflicts = dict(
        RunRow.objects.filter(run=undo_run, outcome="conflict").values_list("object_pk", "errors")
    )
    assert conflicts[str(pks[1])][0]["messages"] == [
        f"Changed since run #{run.pk} by run #{later.pk} (price); left as it is."
    ]
    assert conflicts[str(pks[2])][0]["messages"] == [f"Changed since run #{run.pk} (price); left as it is."]
    assert "2 rows were changed since run" in undo_run.message


def test_undo_of_an_undo_applies_the_run_again_and_a_second_undo_is_refused(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user)
    pks = [b.pk for b in catalogue["books"][:3]]
    run = edit(
        client,
        "plain-books",
        pks,
        {"change_status": "1", "status": "archived"},
        django_capture_on_commit_callbacks,
    )
    edited = state(pks)
    undo(client, "plain-books", run, django_capture_on_commit_callbacks)
    first_undo = latest()
    again = undo(client, "plain-books", run, django_capture_on_commit_callbacks)
    assert again.status_code == 409
    assert f"already undone by run #{first_undo.pk}" in again.content.decode()
    undo(client, "plain-books", first_undo, django_capture_on_commit_callbacks)
    assert state(pks) == edited


def test_undo_restores_many_to_many_links_after_add_remove_and_replace(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user)
    award, signed = catalogue["tags"]
    pks = [b.pk for b in catalogue["books"][:3]]  # book 0 has both tags, the others none
    for op, ids in (("add", [signed.pk]), ("remove", [award.pk]), ("replace", [signed.pk])):
        before = state(pks)
        data = {"change_tags": "1", "tags__op": op, "tags": [str(i) for i in ids]}
        run = edit(client, "plain-books", pks, data, django_capture_on_commit_callbacks)
        assert state(pks) != before, op
        undo(client, "plain-books", run, django_capture_on_commit_callbacks)
        assert state(pks) == before, op


def test_undo_of_a_background_run_runs_on_a_worker_too(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user)
    pks = [b.pk for b in catalogue["books"][:5]]
    before = state(pks)
    run = edit(
        client, "async-books", pks, {"change_price": "1", "price": "2.50"}, django_capture_on_commit_callbacks
    )
    assert run.mode == "async" and run.row_counts == {"changed": 5}
    response = undo(client, "async-books", run, django_capture_on_commit_callbacks)
    undo_task = latest()
    assert response.status_code == 302 and undo_task.mode == "async"
    assert run_bulk_task(undo_task.pk) == "succeeded"
    assert state(pks) == before


def test_undo_of_a_per_object_model_saves_each_row(
    admin_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from tests.testapp.models import Shelf, ShelfEvent

    shelves = [Shelf.objects.create(name=f"S{i}", capacity=10 + i) for i in range(3)]
    client = login(admin_user)
    pks = [s.pk for s in shelves]
    select(client, "async-shelves", pks)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/async-shelves/bulk/edit/", {"change_capacity": "1", "capacity": "99"})
    run = latest()
    if run.mode == "async":
        run_bulk_task(run.pk)
    events = ShelfEvent.objects.count()
    undo(client, "async-shelves", run, django_capture_on_commit_callbacks)
    undo_run = latest()
    if undo_run.mode == "async":
        run_bulk_task(undo_run.pk)
    assert sorted(Shelf.objects.values_list("capacity", flat=True)) == [10, 11, 12]
    assert ShelfEvent.objects.count() == events + 3  # save() and its receiver ran for each row


def test_another_users_run_is_404_and_undo_needs_the_change_permission(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    owner = make_user("owner", "view_book", "change_book")
    run = edit(
        login(owner),
        "plain-books",
        [catalogue["books"][0].pk],
        {"change_price": "1", "price": "9.99"},
        django_capture_on_commit_callbacks,
    )
    other = make_user("other", "view_book", "change_book")
    assert undo(login(other), "plain-books", run, django_capture_on_commit_callbacks).status_code == 404
    viewer = make_user("viewer", "view_book")
    assert undo(login(viewer), "plain-books", run, django_capture_on_commit_callbacks).status_code == 403
    repeated = login(owner).post("/plain-books/bulk/edit/", {"undo_run": [str(run.pk), str(run.pk)]})
    assert repeated.status_code == 400
    staff = undo(login(admin_user), "plain-books", run, django_capture_on_commit_callbacks)
    assert staff.status_code == 302  # staff may undo anyone's run
    assert Book.objects.get(pk=catalogue["books"][0].pk).price == Decimal("5.00")


def test_a_check_cannot_be_undone(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user)
    select(client, "plain-books", [catalogue["books"][0].pk])
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/plain-books/bulk/edit/", {"change_price": "1", "price": "9.99", "dry_run": "1"})
    response = undo(client, "plain-books", latest(), django_capture_on_commit_callbacks)
    assert response.status_code == 409
    assert "was a check and saved nothing" in response.content.decode()


def delete_run(client: Any, base: str, pks: list[Any], capture: Any) -> BulkTask:
    client.post(selection_url(base), {"action": "clear"})
    select(client, base, pks)
    with capture(execute=True):
        response = client.post(f"/{base}/bulk/delete/", {})
    assert response.status_code in (202, 204, 302), response.content
    run = latest()
    if run.mode == "async":
        run_bulk_task(run.pk)
        run.refresh_from_db()
    return run


def undo_delete(client: Any, base: str, run: BulkTask, capture: Any) -> Any:
    with capture(execute=True):
        return client.post(f"/{base}/bulk/delete/", {"undo_run": str(run.pk)})


def full_rows(pks: list[Any]) -> list[tuple[Any, ...]]:
    rows = Book.objects.filter(pk__in=pks).order_by("pk").prefetch_related("tags")
    return [
        (
            b.pk,
            b.title,
            b.author_id,
            b.genre_id,
            b.status,
            b.price,
            b.published_date,
            b.pages,
            b.is_available,
            tuple(sorted(t.pk for t in b.tags.all())),
        )
        for b in rows
    ]


@pytest.mark.parametrize("base", ["plain-books", "async-books"])
def test_undo_of_a_delete_recreates_the_rows_with_their_keys_values_and_links(
    base: str, admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user)
    pks = [b.pk for b in catalogue["books"][:5]]  # book 0 is linked to both tags
    before = full_rows(pks)
    run = delete_run(client, base, pks, django_capture_on_commit_callbacks)
    assert not Book.objects.filter(pk__in=pks).exists() and run.row_counts == {"changed": 5}
    response = undo_delete(client, base, run, django_capture_on_commit_callbacks)
    undo_run = latest()
    assert response.status_code == 302
    if undo_run.mode == "async":
        assert run_bulk_task(undo_run.pk) == "succeeded"
        undo_run.refresh_from_db()
    assert full_rows(pks) == before
    assert undo_run.row_counts == {"changed": 5} and undo_run.kind == "delete"
    again = undo_delete(client, base, run, django_capture_on_commit_callbacks)
    assert again.status_code == 409 and "already undone" in again.content.decode()
    restore_undo = undo_delete(client, base, undo_run, django_capture_on_commit_callbacks)
    assert restore_undo.status_code == 409 and "restored deleted rows" in restore_undo.content.decode()


def test_a_row_whose_key_is_in_use_again_is_a_conflict_of_the_restore(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user)
    books = catalogue["books"][:3]
    pks = [b.pk for b in books]
    run = delete_run(client, "plain-books", pks, django_capture_on_commit_callbacks)
    Book.objects.create(pk=pks[1], title="Taken", author=catalogue["authors"][0], price=Decimal("1.00"))
    undo_delete(client, "plain-books", run, django_capture_on_commit_callbacks)
    undo_run = latest()
    assert undo_run.row_counts == {"changed": 2, "conflict": 1}
    assert Book.objects.get(pk=pks[1]).title == "Taken"
    assert set(Book.objects.filter(pk__in=pks).values_list("title", flat=True)) == {
        books[0].title,
        "Taken",
        books[2].title,
    }


def test_a_delete_whose_cascade_removed_other_rows_is_not_undone(
    admin_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from tests.testapp.models import Shelf, ShelfEvent

    shelves = [Shelf.objects.create(name=f"S{i}") for i in range(2)]  # each save leaves an event
    client = login(admin_user)
    run = delete_run(client, "async-shelves", [s.pk for s in shelves], django_capture_on_commit_callbacks)
    assert run.row_counts == {"changed": 2, "cascaded": 2} and not ShelfEvent.objects.exists()
    response = undo_delete(client, "async-shelves", run, django_capture_on_commit_callbacks)
    assert response.status_code == 409
    assert "also removed 2 related rows through cascades" in response.content.decode()
    assert not Shelf.objects.exists()


def test_undo_of_a_delete_saves_rows_one_by_one_where_signals_watch(
    admin_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from tests.testapp.models import Shelf, ShelfEvent

    shelves = [Shelf.objects.create(name=f"S{i}", capacity=20 + i) for i in range(3)]
    ShelfEvent.objects.all().delete()
    client = login(admin_user)
    run = delete_run(client, "async-shelves", [s.pk for s in shelves], django_capture_on_commit_callbacks)
    assert run.row_counts == {"changed": 3}
    undo_delete(client, "async-shelves", run, django_capture_on_commit_callbacks)
    undo_run = latest()
    assert undo_run.mode == "async" and run_bulk_task(undo_run.pk) == "succeeded"
    assert sorted(Shelf.objects.values_list("pk", "capacity")) == [(s.pk, s.capacity) for s in shelves]
    assert sorted(ShelfEvent.objects.values_list("message", flat=True)) == [
        "S0 created",
        "S1 created",
        "S2 created",
    ]


def test_undo_writes_only_rows_the_screen_it_is_posted_to_shows(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    """An undo is re-scoped like any selection: posted to a screen that hides some of the
    run's rows, it leaves those rows alone."""
    client = login(admin_user)
    books = catalogue["books"][:8]
    pks = [b.pk for b in books]
    before = state(pks)
    run = edit(
        client, "plain-books", pks, {"change_price": "1", "price": "9.99"}, django_capture_on_commit_callbacks
    )
    Book.objects.filter(pk__in=pks[:2]).update(status="archived")  # now outside unarchived-books
    hidden = set(Book.objects.filter(pk__in=pks, status="archived").values_list("pk", flat=True))
    assert set(pks[:2]) <= hidden and len(hidden) < len(pks)
    undo(client, "unarchived-books", run, django_capture_on_commit_callbacks)
    after = state(pks)
    assert {after[pk][1] for pk in hidden} == {Decimal("9.99")}
    assert all(after[pk][1] == before[pk][1] for pk in pks if pk not in hidden)
    assert latest().row_counts == {"changed": len(pks) - len(hidden)}


def test_an_undo_with_no_per_row_code_is_written_back_by_the_database_for_every_kind_of_field(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    """Set-based rows, no hooks: the undo is three statements a batch on SQLite (count, record,
    write) and one on PostgreSQL (the three as one ``WITH``), and every kind of field it
    handles comes back exactly: text, decimal, date, boolean, a foreign key and a nullable one
    set to nothing."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = login(admin_user)
    books = catalogue["books"][:12]
    pks = [b.pk for b in books]
    fields = ("status", "price", "published_date", "is_available", "author_id", "genre_id")
    before = {row[0]: row[1:] for row in Book.objects.filter(pk__in=pks).values_list("pk", *fields)}
    data = {
        "change_status": "1", "status": "archived",
        "change_price": "1", "price": "0.01",
        "change_published_date": "1", "published_date": "1999-12-31",
        "change_is_available": "1", "is_available": "false",
        "change_author": "1", "author": str(catalogue["authors"][2].pk),
        "change_genre": "1", "genre": "",
    }  # fmt: skip
    run = edit(client, "plain-books", pks, data, django_capture_on_commit_callbacks)
    assert run.row_counts == {"changed": 12}
    with CaptureQueriesContext(connection) as queries:
        undo(client, "plain-books", run, django_capture_on_commit_callbacks)
    after = {row[0]: row[1:] for row in Book.objects.filter(pk__in=pks).values_list("pk", *fields)}
    assert after == before
    undo_run = latest()
    assert undo_run.row_counts == {"changed": 12}
    writes = [q["sql"] for q in queries.captured_queries if 'UPDATE "testapp_book"' in q["sql"]]
    assert len(writes) == 1 and "powercrud_runrow" in writes[0]  # one UPDATE ... FROM the ledger
    if connection.vendor == "postgresql":  # the check, the entries and the write in one statement
        assert writes[0].startswith("WITH") and 'INSERT INTO "powercrud_runrow"' in writes[0]
        ledger_reads = [q for q in queries.captured_queries if 'FROM "powercrud_runrow" r' in q["sql"]]
        assert len(ledger_reads) == 1
    stored = RunRow.objects.get(run=undo_run, object_pk=str(pks[0]))
    assert stored.old["status"] == "archived" and stored.new["status"] == before[pks[0]][0]
