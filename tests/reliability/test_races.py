"""Races: concurrent bulk edits, form edits against bulk edits, many launches at once.

The concurrent tests run real transactions in threads on PostgreSQL (SQLite serialises every
writer, so there is no race to lose there; they skip on SQLite). The form-edit tests that
need no second connection run on both databases.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.test import Client, override_settings

from powercrud.jobs.locks import LockConflict
from powercrud.jobs.worker import run_bulk_task
from powercrud.models import BulkTask, RowLock
from tests.async_helpers import freeze_now, held_elsewhere, launch_books, launch_request, make_books, wait_for
from tests.bulk_urls import HOLDS, hold, select
from tests.conftest import HtmxClient, make_user
from tests.testapp.models import Book, Tag

_skip_on_sqlite = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs PostgreSQL: concurrent write transactions (SQLite runs one writer at a time)",
)


def needs_postgres(test: Any) -> Any:
    """Mark ``test`` as a PostgreSQL race test (skipped elsewhere, with the reason)."""
    return pytest.mark.postgres(_skip_on_sqlite(test))


ASYNC_FROM_ONE_ROW = override_settings(POWERCRUD_SETTINGS={"BULK_MIN_ASYNC_RECORDS": 1})


@pytest.fixture(autouse=True)
def no_holds_left() -> Iterator[None]:
    """``hold()`` registrations end with the test that made them."""
    yield
    HOLDS.clear()


# --- helpers ------------------------------------------------------------------------------------


def in_threads(*targets: Callable[[], Any], timeout: float = 60) -> list[Any]:
    """Run ``targets`` at the same moment (a barrier), each on its own connection; their results."""
    barrier = threading.Barrier(len(targets))
    results: list[Any] = [None] * len(targets)

    def run(index: int, target: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout)
            results[index] = target()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "a thread did not finish in time"
    return results


def client_for(name: str) -> Client:
    client = HtmxClient()
    client.force_login(make_user(name, superuser=True))
    return client


def edit(client: Client, base: str, **values: Any) -> Any:
    data: dict[str, Any] = {}
    for name, value in values.items():
        data[f"change_{name}"] = "1"
        data[name] = value
    return client.post(f"/{base}/bulk/edit/", data)


def rows(pks: list[int]) -> dict[int, tuple[str, Decimal]]:
    found = Book.objects.filter(pk__in=pks).values_list("pk", "status", "price")
    return {pk: (status, price) for pk, status, price in found}


class _FormFields(HTMLParser):
    """What a browser submits for the forms on a page: inputs, checked boxes, selected options."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button", "reset"):
            box = a.get("type") in ("checkbox", "radio")
            if box and "checked" not in a:
                return
            self.fields.append((name, a.get("value", "on" if box else "")))
        elif tag == "select":
            self._select = name
        elif tag == "option" and self._select and "selected" in a:
            self.fields.append((self._select, a.get("value", "")))
        elif tag == "textarea" and name:
            self._textarea = name
            self.fields.append((name, ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            name, value = self.fields.pop()
            self.fields.append((name, value + data))


def form_data(response: Any) -> dict[str, list[str]]:
    """What saving the form in ``response`` unchanged would post."""
    parser = _FormFields()
    parser.feed(response.content.decode())
    data: dict[str, list[str]] = {}
    for name, value in parser.fields:
        if name != "csrfmiddlewaretoken":
            data.setdefault(name, []).append(value)
    return data


def opened_form(client: Client, url: str) -> dict[str, list[str]]:
    """Open the edit form at ``url``; returns what saving it unchanged would post."""
    response = client.get(url)
    assert response.status_code == 200
    return form_data(response)


def run_in_thread(task_id: int, outcome: list[str]) -> threading.Thread:
    """The worker function on its own thread and connection; its result lands in ``outcome``."""

    def target() -> None:
        try:
            outcome.append(run_bulk_task(task_id))
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    return thread


def run_bulk_now(queryset: Any, field_data: dict[str, Any]) -> BulkTask:
    """A whole async bulk edit, launched and run to the end in this thread."""
    task = launch_books(queryset, fields=list(field_data), field_data=field_data)
    assert run_bulk_task(task.pk) == "succeeded"
    return task


# --- two bulk edits at once ---------------------------------------------------------------------


@needs_postgres
@pytest.mark.django_db(transaction=True)
@ASYNC_FROM_ONE_ROW
def test_two_overlapping_async_bulk_edits_at_once_one_proceeds_the_other_conflicts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both submits are accepted (the submit locks nothing); their workers lock at the same
    moment: one locks and runs, the other ends failed naming it, having written nothing. The
    one that locked waits, before it writes, until the other has ended (so the two surely
    overlap however the threads are scheduled)."""
    from powercrud.jobs import worker

    real_prepare = worker._prepare_selection

    def after_the_other(task: BulkTask) -> None:
        others = BulkTask.objects.filter(status__in=[BulkTask.Status.QUEUED, BulkTask.Status.RUNNING])
        wait_for(lambda: not others.exclude(pk=task.pk).filter(kind=task.kind).exists(), timeout=20)
        real_prepare(task)

    monkeypatch.setattr(worker, "_prepare_selection", after_the_other)
    books = make_books(120)
    pks = [b.pk for b in books]
    alice, bob = client_for("alice"), client_for("bob")
    for round_ in range(3):  # the same two users, again and again at the same moment
        assert select(alice, "book", pks[:80]).status_code == 200
        assert select(bob, "book", pks[40:]).status_code == 200
        a_values = ("published", Decimal(f"{round_ + 1}.00"))
        b_values = ("out_of_print", Decimal(f"{round_ + 11}.00"))
        before = rows(pks)
        responses = in_threads(
            lambda a=a_values: edit(alice, "book", status=a[0], price=str(a[1])),
            lambda b=b_values: edit(bob, "book", status=b[0], price=str(b[1])),
        )
        codes = [r.status_code for r in responses]
        assert codes == [202, 202], codes
        queued = list(BulkTask.objects.filter(status=BulkTask.Status.QUEUED).order_by("pk"))
        assert len(queued) == 2
        outcomes = in_threads(*(lambda task=task: run_bulk_task(task.pk) for task in queued))
        assert sorted(outcomes) == ["failed", "succeeded"], outcomes
        task = queued[outcomes.index("succeeded")]
        loser = BulkTask.objects.get(pk=queued[outcomes.index("failed")].pk)
        assert f"being changed by bulk task #{task.pk}" in loser.message, loser.message
        assert (loser.total, loser.done) == (0, 0) and not loser.rows.exists()
        alice_won = task.owner is not None and task.owner.username == "alice"
        winner_pks, values = (pks[:80], a_values) if alice_won else (pks[40:], b_values)
        after = rows(pks)
        assert {after[pk] for pk in winner_pks} == {values}  # every row of the winner, whole
        assert {pk: after[pk] for pk in pks if pk not in winner_pks} == {
            pk: before[pk] for pk in pks if pk not in winner_pks
        }  # the loser wrote nothing
        assert not RowLock.objects.exists()


@needs_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("tests.bulk_urls")
def test_two_overlapping_sync_bulk_edits_at_once_one_proceeds_the_other_conflicts() -> None:
    """Both POST at the same moment; each run keeps its transaction open for 0.5 s after
    writing, so the two are surely under way together. Three rounds."""
    books = make_books(3000)  # three batches of 1,000 each
    pks = [b.pk for b in books]
    alice, bob = client_for("alice"), client_for("bob")
    hold("alice", seconds=0.5)
    hold("bob", seconds=0.5)
    selections = {"alice": pks[:2000], "bob": pks[1000:]}
    for round_ in range(3):
        # A successful edit clears its selection: both select again for every round.
        for start in range(0, 2000, 500):  # a request carries at most 1,000 fields
            assert select(alice, "held-books", pks[start : start + 500]).status_code == 200
            assert select(bob, "held-books", pks[1000 + start : 1500 + start]).status_code == 200
        values = {
            "alice": ("published", Decimal(f"{round_ + 1}.00")),
            "bob": ("out_of_print", Decimal(f"{round_ + 11}.00")),
        }
        before = rows(pks)
        responses = in_threads(
            lambda v=values["alice"]: edit(alice, "held-books", status=v[0], price=str(v[1])),
            lambda v=values["bob"]: edit(bob, "held-books", status=v[0], price=str(v[1])),
        )
        codes = [r.status_code for r in responses]
        assert sorted(codes) == [204, 409], [r.content[:300] for r in responses]
        winner, loser = ("alice", "bob") if codes[0] == 204 else ("bob", "alice")
        refusal = responses[codes.index(409)].content.decode()
        assert "are being changed by someone else right now" in refusal
        after = rows(pks)
        assert {after[pk] for pk in selections[winner]} == {values[winner]}  # the winner, whole
        untouched = [pk for pk in selections[loser] if pk not in selections[winner]]
        assert {pk: after[pk] for pk in untouched} == {pk: before[pk] for pk in untouched}
    assert not RowLock.objects.exists()


def _held_run(client: Client, base: str, name: str, **values: Any) -> tuple[threading.Thread, list[Any]]:
    """Start a sync bulk edit by ``client`` that stops, after writing, until ``hold`` is released."""
    arrived, _ = HOLDS[name][:2]
    answer: list[Any] = []

    def post() -> None:
        try:
            answer.append(edit(client, base, **values))
        finally:
            connections.close_all()

    thread = threading.Thread(target=post)
    thread.start()
    assert arrived.wait(30), "the held run did not reach its write"
    return thread, answer


@needs_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("tests.bulk_urls")
def test_while_a_sync_bulk_edit_runs_overlapping_runs_and_launches_conflict_disjoint_ones_proceed() -> None:
    books = make_books(60)
    pks = [b.pk for b in books]
    alice, bob = client_for("alice"), client_for("bob")
    assert select(alice, "held-books", pks[:30]).status_code == 200
    _, release = hold("alice")
    thread, answer = _held_run(alice, "held-books", "alice", status="published")
    try:
        # Another sync edit, a sync delete and a launch over row 29: refused at once.
        assert select(bob, "held-books", pks[29:40]).status_code == 200
        edited = edit(bob, "held-books", status="archived")
        assert edited.status_code == 409
        assert "Some of the selected books are being changed by someone else right now" in (
            edited.content.decode()
        )
        deleted = bob.post("/held-books/bulk/delete/", {})
        assert deleted.status_code == 409
        refused = launch_books(Book.objects.filter(pk__in=pks[29:40]), field_data={"status": "archived"})
        with pytest.raises(LockConflict, match="being changed by someone else right now"):
            freeze_now(refused)  # the worker's lock step
        assert run_bulk_task(refused.pk) == "failed"  # the worker itself: the same conflict
        refused.refresh_from_db()
        assert "being changed by someone else right now" in refused.message
        assert not RowLock.objects.exists()
        # Disjoint rows are not held: a sync edit and a launch on them go ahead meanwhile.
        assert select(bob, "held-books", pks[29:30], checked=False).status_code == 200
        assert edit(bob, "held-books", price="7.00").status_code == 204
        task = launch_books(Book.objects.filter(pk__in=pks[40:]), field_data={"status": "archived"})
        assert run_bulk_task(task.pk) == "succeeded"
    finally:
        release.set()
        thread.join(30)
    assert answer[0].status_code == 204
    after = rows(pks)
    assert {after[pk][0] for pk in pks[:30]} == {"published"}
    assert {after[pk] for pk in pks[30:40]} == {(books[30].status, Decimal("7.00"))}
    assert {after[pk][0] for pk in pks[40:]} == {"archived"}
    assert Book.objects.count() == 60
    assert not RowLock.objects.exists()


@needs_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("tests.bulk_urls")
def test_a_launch_committed_while_a_sync_edit_starts_makes_the_sync_edit_conflict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The launch commits between the sync edit's selection check and its first write."""
    from powercrud.jobs import locks

    books = make_books(20)
    pks = [b.pk for b in books]
    alice = client_for("alice")
    assert select(alice, "plain-books", pks[:10]).status_code == 200
    real_lock = locks._lock_selected_rows
    launched: list[BulkTask] = []

    def launch_first(queryset: Any, using: str, *, for_launch: bool) -> None:
        if not for_launch and not launched:  # a launch on another connection, committed now
            launched.append(
                in_threads(lambda: freeze_now(launch_books(Book.objects.filter(pk__in=pks[5:15]))))[0]
            )
        real_lock(queryset, using, for_launch=for_launch)

    monkeypatch.setattr(locks, "_lock_selected_rows", launch_first)
    response = edit(alice, "plain-books", status="published")
    (task,) = launched
    assert isinstance(task, BulkTask)
    assert response.status_code == 409
    assert f"5 of the selected books are being changed by bulk task #{task.pk} (queued)" in (
        response.content.decode()
    )
    assert {row[0] for row in rows(pks[:5]).values()} == {books[0].status}


@needs_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("tests.bulk_urls")
def test_a_sync_edit_while_a_launch_is_locking_rows_waits_briefly_then_conflicts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A launch's transaction holds the model's advisory lock until it commits."""
    from powercrud.jobs import locks

    monkeypatch.setattr(locks, "LOCK_WAIT", "300ms")
    books = make_books(10)
    alice = client_for("alice")
    assert select(alice, "plain-books", [b.pk for b in books]).status_code == 200

    @contextlib.contextmanager
    def launch_in_progress() -> Iterator[None]:
        with transaction.atomic(), connection.cursor() as cursor:
            key = [locks._ADVISORY_SPACE, locks._advisory_key(Book)]
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", key)
            assert cursor.fetchone()[0]
            yield

    with held_elsewhere(launch_in_progress):
        response = edit(alice, "plain-books", status="published")
        assert response.status_code == 409
        assert "being locked by another bulk task that is starting right now" in response.content.decode()
    assert {row[0] for row in rows([b.pk for b in books]).values()} == {books[0].status}
    assert edit(alice, "plain-books", status="published").status_code == 204


# --- a form edit and a bulk edit of the same row ------------------------------------------------


@pytest.mark.django_db
def test_a_form_opened_before_a_bulk_edit_and_saved_after_it_keeps_the_bulk_change(
    admin_client: Client,
) -> None:
    """The user edits the title; meanwhile a bulk edit sets the status and adds a tag (both
    fields are on the form too). All three changes must survive."""
    books = make_books(3)
    book = books[1]
    tag = Tag.objects.create(name="new")
    url = f"/book/{book.pk}/edit/"
    form = opened_form(admin_client, url)
    assert "tags" not in form  # no tag yet: the form posts none
    run_bulk_now(Book.objects.all(), {"status": "published", "tags": {"op": "add", "ids": [tag.pk]}})
    form["title"] = ["Renamed"]
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:500]
    book.refresh_from_db()
    assert (book.title, book.status, list(book.tags.all())) == ("Renamed", "published", [tag])
    assert not RowLock.objects.exists()


@pytest.mark.django_db
def test_a_form_and_a_bulk_edit_that_changed_the_same_field_is_a_clear_conflict(
    admin_client: Client,
) -> None:
    books = make_books(3)
    book = books[1]
    url = f"/book/{book.pk}/edit/"
    form = opened_form(admin_client, url)
    run_bulk_now(Book.objects.all(), {"status": "published"})
    form["status"] = ["out_of_print"]
    form["title"] = ["Renamed"]
    response = admin_client.post(url, form)
    assert response.status_code == 409
    html = response.content.decode()
    assert "Status was changed by someone else after you opened this form" in html
    book.refresh_from_db()
    assert (book.title, book.status) == (books[1].title, "published")  # nothing written
    # The form keeps the user's values; saving again is a deliberate overwrite.
    again = form_data(response)
    assert again["status"] == ["out_of_print"] and again["title"] == ["Renamed"]
    assert admin_client.post(url, again).status_code == 302
    book.refresh_from_db()
    assert (book.title, book.status) == ("Renamed", "out_of_print")


@pytest.mark.django_db
@pytest.mark.urls("tests.bulk_urls")
def test_a_bulk_edit_committed_while_a_form_save_starts_is_not_overwritten(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bulk task commits between the form's read of the row and its save.

    ``plain-books`` edits title, author, status and price; the bulk edit changes
    ``is_available``, which the form does not show, and the save must not put it back.
    """
    from powercrud import views

    books = make_books(3)
    book = books[1]
    real_guard = views.guard_rows

    def bulk_edit_first(model: Any, pks: Any) -> Any:
        run_bulk_now(Book.objects.filter(pk=book.pk), {"is_available": False})
        return real_guard(model, pks)

    monkeypatch.setattr(views, "guard_rows", bulk_edit_first)
    response = admin_client.post(
        f"/plain-books/{book.pk}/edit/",
        {"title": "Renamed", "author": book.author_id, "status": "draft", "price": "10.00"},
    )
    assert response.status_code == 302
    book.refresh_from_db()
    assert (book.title, book.is_available) == ("Renamed", False)


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_form_save_while_a_task_runs_on_the_row_is_a_clear_conflict() -> None:
    from tests.async_helpers import gate

    books = make_books(40)
    book = books[5]
    arrived, release = gate("form-vs-task")
    task = launch_books(
        Book.objects.all(),
        backend="tests.async_helpers.PausingBackend",
        config={"gate": "form-vs-task"},
        field_data={"status": "published"},
    )
    outcome: list[str] = []
    worker = run_in_thread(task.pk, outcome)
    try:
        assert arrived.wait(30)
        client = client_for("carol")
        form = opened_form(client, f"/book/{book.pk}/edit/")
        form["title"] = ["Renamed"]
        response = client.post(f"/book/{book.pk}/edit/", form)
        assert response.status_code == 409
        assert f"This book is being changed by bulk task #{task.pk} (running)" in response.content.decode()
    finally:
        release.set()
        worker.join(30)
    assert outcome == ["succeeded"]
    book.refresh_from_db()
    assert (book.title, book.status) == (books[5].title, "published")
    assert not RowLock.objects.exists()


@needs_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("tests.bulk_urls")
def test_a_bulk_edit_launched_while_a_form_save_is_open_waits_for_it_and_both_survive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The form's transaction holds the row; the task launched meanwhile writes after it."""
    from tests.bulk_urls import PlainBookView

    books = make_books(10)
    book = books[3]
    in_save, go_on = threading.Event(), threading.Event()
    real_persist = PlainBookView.persist_single_object

    def slow_persist(self: Any, **kwargs: Any) -> Any:
        saved = real_persist(self, **kwargs)
        in_save.set()
        assert go_on.wait(30)
        return saved

    monkeypatch.setattr(PlainBookView, "persist_single_object", slow_persist)
    client = client_for("dave")
    form_response: list[Any] = []

    def save_form() -> None:
        try:
            form_response.append(
                client.post(
                    f"/plain-books/{book.pk}/edit/",
                    {"title": "Renamed", "author": book.author_id, "status": "draft", "price": "10.00"},
                )
            )
        finally:
            connections.close_all()

    form_thread = threading.Thread(target=save_form)
    form_thread.start()
    try:
        assert in_save.wait(30)  # the form's row is written, its transaction still open
        task = launch_books(Book.objects.all(), fields=["status"], field_data={"status": "published"})
        outcome: list[str] = []
        worker = run_in_thread(task.pk, outcome)
        worker.join(1.0)
        assert worker.is_alive() and not outcome  # waiting for the form's row lock
    finally:
        go_on.set()
        form_thread.join(30)
    worker.join(30)
    assert form_response[0].status_code == 204  # saved (HTMX)
    assert outcome == ["succeeded"]
    book.refresh_from_db()
    assert (book.title, book.status) == ("Renamed", "published")
    assert not RowLock.objects.exists()


# --- many launches at once ----------------------------------------------------------------------


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_launches_on_disjoint_selections_all_complete() -> None:
    books = make_books(20 * 50)
    groups = [[b.pk for b in books[i * 50 : (i + 1) * 50]] for i in range(20)]

    def launcher(pks: list[int], index: int) -> Callable[[], Any]:
        return lambda: launch_request(
            Book.objects.filter(pk__in=pks),
            operation="update",
            user=None,
            fields_to_update=["price"],
            field_data={"price": str(Decimal(index) + Decimal("0.50"))},
            bulk_fields=["price"],
            batch_size=10,
        )

    launched = in_threads(*(launcher(pks, i) for i, pks in enumerate(groups)))
    errors = [r for r in launched if isinstance(r, BaseException)]
    assert not errors, errors
    assert all(isinstance(r, BulkTask) for r in launched)
    assert not RowLock.objects.exists()  # the submits lock nothing: each worker's first step does
    from django_q.models import OrmQ

    assert OrmQ.objects.count() == 20  # every job was enqueued after its commit

    outcomes = in_threads(*(lambda task=task: run_bulk_task(task.pk) for task in launched))
    assert outcomes == ["succeeded"] * 20, outcomes
    tasks = BulkTask.objects.order_by("pk")
    assert tasks.count() == 20
    assert {(t.status, t.total, t.success_count, t.done) for t in tasks} == {("succeeded", 50, 50, 50)}
    for index, pks in enumerate(groups):
        assert set(Book.objects.filter(pk__in=pks).values_list("price", flat=True)) == {
            Decimal(index) + Decimal("0.50")
        }
    assert not RowLock.objects.exists()
