"""Lifecycle hooks (``powercrud.bulk.lifecycle``): registered per model, called once per batch
with (new, old) pairs in every write path: form create/update/delete, inline edit, bulk edit
(sync and on a worker), bulk delete, undo of an edit and of a delete."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from powercrud.bulk import BulkUpdateService, lifecycle
from powercrud.bulk.lifecycle import Event, Pair, changed, changed_from, changed_to
from powercrud.bulk.plan import Load
from powercrud.bulk.types import BulkHookError, RowError
from powercrud.checks import check_lifecycle_hooks
from powercrud.jobs.worker import run_bulk_task
from powercrud.models import BulkTask, RunRow
from tests.bulk_urls import select
from tests.security.conftest import login
from tests.service_helpers import context_for, update
from tests.test_undo import delete_run, edit, latest, undo, undo_delete
from tests.testapp.models import Author, Book

pytestmark = pytest.mark.django_db

Row = tuple[Any, str, str, str] | None


def seen(row: Any) -> Row:
    """A row of a pair as (pk, title, status, price), or None."""
    return None if row is None else (row.pk, row.title, row.status, str(row.price))


class Recorder:
    """Hooks for every event on Book that remember each call; before hooks refuse the rows
    whose title is in ``refuse`` (title -> (field, message))."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[Row, Row]]]] = []
        self.refuse: dict[str, tuple[str | None, str]] = {}
        self.hooks: list[Callable[[list[Pair]], Any]] = []

    def make(self, event: Event) -> Callable[[list[Pair]], Any]:
        def hook(pairs: list[Pair]) -> list[RowError]:
            self.calls.append((event.value, [(seen(p.new), seen(p.old)) for p in pairs]))
            refusals = []
            for pair in pairs:
                row = pair.new if pair.new is not None else pair.old
                if event.is_before and row is not None and row.title in self.refuse:
                    field, message = self.refuse[row.title]
                    refusals.append(lifecycle.refuse(row, field, message))
            return refusals

        self.hooks.append(hook)
        return hook

    def events(self) -> list[str]:
        return [event for event, _ in self.calls]

    def pairs(self, event: str) -> list[tuple[Row, Row]]:
        return [pair for name, pairs in self.calls if name == event for pair in pairs]


@pytest.fixture
def hooks() -> Iterator[Recorder]:
    recorder = Recorder()
    for event in Event:
        lifecycle.register(event, Book, recorder.make(event))
    try:
        yield recorder
    finally:
        for hook in recorder.hooks:
            lifecycle.unregister(hook)


# --- conditions and registration -----------------------------------------------------------------


def book(**values: Any) -> Book:
    return Book(pk=1, title="T", status="draft", price=Decimal("1.00"), author_id=1, **values)


def test_conditions_compare_old_and_new_and_combine() -> None:
    old, new = book(), book()
    new.status, new.price = "archived", Decimal("2.00")
    pair, same = Pair(new, old), Pair(book(), book())
    assert changed("price")(pair) and not changed("price")(same)
    assert changed("title", "status")(pair) and not changed("title", "pages")(pair)
    assert changed_to("status", "archived")(pair) and not changed_to("status", "draft")(pair)
    assert not changed_to("status", "draft")(same)  # it was already draft
    assert changed_from("status", "draft")(pair) and not changed_from("status", "archived")(pair)
    assert changed_to("author", 1)(Pair(book(), None))  # a create sets it; a foreign key by its pk
    assert changed("price")(Pair(book(), None)) and changed("price")(Pair(None, book()))
    assert not changed_to("status", "draft")(Pair(None, book()))  # a delete sets nothing
    assert (changed("price") & changed_to("status", "archived"))(pair)
    assert not (changed("price") & changed("title"))(pair)
    assert (changed("title") | changed("price"))(pair)
    assert (~changed("title"))(pair) and not (~changed("price"))(pair)
    with pytest.raises(ValueError):
        changed()


def test_decorators_register_once_per_model_and_event_and_e027_names_an_unknown_model() -> None:
    def hook(pairs: list[Pair]) -> None:
        return None

    try:
        lifecycle.before_update(Book, when=changed("price"))(hook)
        lifecycle.before_update("testapp.Book")(hook)  # the same function again: kept once
        lifecycle.after_delete("testapp.nosuchmodel")(hook)
        assert [r.event for r in lifecycle.hooks_for(Book, Event.BEFORE_UPDATE)] == [Event.BEFORE_UPDATE]
        assert lifecycle.has_hooks(Book, lifecycle.UPDATE) and not lifecycle.has_hooks(Book, lifecycle.CREATE)
        assert not lifecycle.has_hooks(Author, lifecycle.UPDATE)
        errors = check_lifecycle_hooks()
        assert [e.id for e in errors] == ["powercrud.E027"]
        assert "'testapp.nosuchmodel'" in errors[0].msg and "(after_delete)" in errors[0].msg
    finally:
        lifecycle.unregister(hook)
    assert check_lifecycle_hooks() == [] and not lifecycle.has_hooks(Book, lifecycle.UPDATE)


def test_refusals_by_return_raise_or_validation_error_and_pk_none_means_every_row() -> None:
    a, b = book(), book()
    b.pk = 2
    pairs = [Pair(a, None), Pair(b, None)]

    def raising(pairs: list[Pair]) -> None:
        raise BulkHookError([RowError(2, "price", "Too cheap.")])

    def invalid(pairs: list[Pair]) -> None:
        raise ValidationError({"title": "Not this title."})

    for hook, expected in [
        (raising, {1: [RowError(2, "price", ("Too cheap.",))]}),
        (
            invalid,
            {
                0: [RowError(1, "title", ("Not this title.",))],
                1: [RowError(2, "title", ("Not this title.",))],
            },
        ),
    ]:
        lifecycle.register(Event.BEFORE_CREATE, Book, hook)
        try:
            assert lifecycle.run(Event.BEFORE_CREATE, Book, pairs) == expected
        finally:
            lifecycle.unregister(hook)


def test_a_refusal_of_a_row_not_yet_created_refuses_that_row_alone() -> None:
    first, second = book(), book()
    first.pk = second.pk = None

    def second_only(pairs: list[Pair]) -> list[RowError]:
        return [lifecycle.refuse(p.new, "title", "No.") for p in pairs if p.new is second]

    lifecycle.register(Event.BEFORE_CREATE, Book, second_only)
    try:
        refused = lifecycle.run(Event.BEFORE_CREATE, Book, [Pair(first, None), Pair(second, None)])
    finally:
        lifecycle.unregister(second_only)
    assert refused == {1: [RowError(None, "title", ("No.",))]}


# --- the set-based path without hooks --------------------------------------------------------------


def test_without_hooks_a_bulk_edit_stays_set_based_and_with_update_hooks_reads_instances(shop: Any) -> None:
    plan = BulkUpdateService()._plan(Book, "default", ["status"], {"status": "archived"}, context_for(Book))
    assert plan.load is Load.NONE and not plan.lifecycle

    def hook(pairs: list[Pair]) -> None:
        return None

    lifecycle.register(Event.AFTER_DELETE, Book, hook)  # a delete hook does not change an edit
    try:
        plan = BulkUpdateService()._plan(
            Book, "default", ["status"], {"status": "archived"}, context_for(Book)
        )
        assert plan.load is Load.NONE
        lifecycle.register(Event.AFTER_UPDATE, Book, hook)
        plan = BulkUpdateService()._plan(
            Book, "default", ["status"], {"status": "archived"}, context_for(Book)
        )
        assert plan.load is Load.INSTANCES and plan.lifecycle
    finally:
        lifecycle.unregister(hook)


# --- bulk edit ----------------------------------------------------------------------------------------


def test_bulk_edit_calls_update_hooks_once_per_batch_with_the_changed_rows_paired(
    shop: Any, hooks: Recorder
) -> None:
    books = shop["books"]  # Book 08 and 09 are already published
    queryset = Book.objects.filter(pk__in=[b.pk for b in books[6:10]])
    result = update(queryset, {"status": "published"})
    assert result.success and result.changed == 2
    assert hooks.events() == ["before_update", "after_update"]
    expected = [
        ((b.pk, b.title, "published", str(b.price)), (b.pk, b.title, "draft", str(b.price)))
        for b in books[6:8]
    ]
    assert hooks.pairs("before_update") == expected and hooks.pairs("after_update") == expected
    assert Book.objects.filter(status="published").count() == 4


def test_a_condition_passes_only_its_rows_and_a_hook_with_none_is_not_called(shop: Any) -> None:
    calls: list[list[Any]] = []

    def archived(pairs: list[Pair]) -> None:
        calls.append([p.new.pk for p in pairs if p.new is not None])

    lifecycle.register(Event.AFTER_UPDATE, Book, archived, when=changed_to("status", "archived"))
    try:
        books = shop["books"]
        update(Book.objects.filter(pk__in=[b.pk for b in books[:3]]), {"price": "7.00"})
        assert calls == []
        update(Book.objects.filter(pk__in=[b.pk for b in books[:3]]), {"status": "archived"})
        Book.objects.filter(pk=books[3].pk).update(status="archived")
        update(Book.objects.filter(pk__in=[b.pk for b in books[2:4]]), {"status": "archived"})
        assert calls == [[b.pk for b in books[:3]]]  # books 2 and 3 were archived already
    finally:
        lifecycle.unregister(archived)


def test_a_refused_row_in_all_or_nothing_writes_nothing(shop: Any, hooks: Recorder) -> None:
    hooks.refuse["Book 01"] = ("status", "Book 01 stays a draft.")
    before = list(Book.objects.order_by("pk").values_list("status", flat=True))
    result = update(Book.objects.filter(title__in=["Book 00", "Book 01", "Book 02"]), {"status": "archived"})
    assert not result.success and result.failed == 1
    [error] = result.errors
    assert (error.pk, error.field, error.messages) == (
        shop["books"][1].pk,
        "status",
        ("Book 01 stays a draft.",),
    )
    assert list(Book.objects.order_by("pk").values_list("status", flat=True)) == before
    # The batch's other rows were written, their after hooks ran, then the run rolled back.
    assert [new[1] for new, _ in hooks.pairs("after_update")] == ["Book 00", "Book 02"]


def test_a_refused_row_in_per_row_mode_fails_alone(shop: Any, hooks: Recorder) -> None:
    hooks.refuse["Book 01"] = ("status", "Book 01 stays a draft.")
    result = update(
        Book.objects.filter(title__in=["Book 00", "Book 01", "Book 02"]), {"status": "archived"}, atomic=False
    )
    assert result.failed == 1 and result.success_records == 2
    assert [(e.field, e.messages) for e in result.errors] == [("status", ("Book 01 stays a draft.",))]
    statuses = dict(
        Book.objects.filter(title__in=["Book 00", "Book 01", "Book 02"]).values_list("title", "status")
    )
    assert statuses == {"Book 00": "archived", "Book 01": "draft", "Book 02": "archived"}
    assert [new[1] for new, _ in hooks.pairs("after_update")] == ["Book 00", "Book 02"]


@pytest.mark.urls("tests.security.urls")
@pytest.mark.parametrize("base", ["plain-books", "async-books"])
def test_bulk_edit_through_the_view_sync_and_on_the_worker_and_its_undo(
    base: str, admin_user: Any, catalogue: Any, hooks: Recorder, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user)
    books = [b for b in catalogue["books"] if b.status == "draft"][:3]
    pks = [b.pk for b in books]
    run = edit(client, base, pks, {"change_price": "1", "price": "9.99"}, django_capture_on_commit_callbacks)
    assert run.mode == ("async" if base == "async-books" else "sync") and run.status == "succeeded"
    old = [(b.pk, b.title, "draft", str(b.price)) for b in books]
    new = [(b.pk, b.title, "draft", "9.99") for b in books]
    assert hooks.events() == ["before_update", "after_update"]
    assert hooks.pairs("after_update") == list(zip(new, old, strict=True))
    hooks.calls.clear()
    undo(client, base, run, django_capture_on_commit_callbacks)
    undo_run = latest()
    if undo_run.mode == "async":
        assert run_bulk_task(undo_run.pk) == "succeeded"
    assert hooks.events() == ["before_update", "after_update"]
    assert hooks.pairs("after_update") == list(zip(old, new, strict=True))  # the undo: an update back
    assert sorted(Book.objects.filter(pk__in=pks).values_list("price", flat=True)) == sorted(
        b.price for b in books
    )


@pytest.mark.urls("tests.security.urls")
def test_a_hook_refusal_is_the_rows_outcome_in_the_ledger(
    admin_user: Any, catalogue: Any, hooks: Recorder, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user)
    books = catalogue["books"][:3]
    hooks.refuse[books[1].title] = ("price", "Price is fixed.")
    select(client, "plain-books", [b.pk for b in books])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/plain-books/bulk/edit/", {"change_price": "1", "price": "9.99"})
    assert "Price is fixed." in response.content.decode()  # the modal shows the row's error
    run = latest()
    assert run.status == "failed"
    [failed] = RunRow.objects.filter(run=run, outcome="failed")
    assert failed.object_pk == str(books[1].pk)
    assert failed.errors == [{"field": "price", "messages": ["Price is fixed."]}]
    assert not Book.objects.filter(price=Decimal("9.99")).exists()


# --- bulk delete and its undo ---------------------------------------------------------------------------


@pytest.mark.urls("tests.security.urls")
@pytest.mark.parametrize("base", ["plain-books", "async-books"])
def test_bulk_delete_and_its_undo_call_delete_then_create_hooks(
    base: str, admin_user: Any, catalogue: Any, hooks: Recorder, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user)
    books = catalogue["books"][1:4]
    pks = [b.pk for b in books]
    rows = [seen(b) for b in books]
    run = delete_run(client, base, pks, django_capture_on_commit_callbacks)
    assert run.status == "succeeded" and not Book.objects.filter(pk__in=pks).exists()
    assert hooks.events() == ["before_delete", "after_delete"]
    assert hooks.pairs("before_delete") == hooks.pairs("after_delete") == [(None, row) for row in rows]
    hooks.calls.clear()
    undo_delete(client, base, run, django_capture_on_commit_callbacks)
    undo_run = latest()
    if undo_run.mode == "async":
        assert run_bulk_task(undo_run.pk) == "succeeded"
    assert hooks.events() == ["before_create", "after_create"]
    assert hooks.pairs("after_create") == [(row, None) for row in rows]
    assert Book.objects.filter(pk__in=pks).count() == 3


@pytest.mark.urls("tests.security.urls")
def test_a_refused_delete_in_all_or_nothing_deletes_nothing(
    admin_user: Any, catalogue: Any, hooks: Recorder, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user)
    books = catalogue["books"][1:4]
    hooks.refuse[books[2].title] = (None, "Keep this one.")
    select(client, "plain-books", [b.pk for b in books])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/plain-books/bulk/delete/", {})
    assert "Keep this one." in response.content.decode()
    run = latest()
    assert run.status == "failed" and Book.objects.filter(pk__in=[b.pk for b in books]).count() == 3
    assert run.errors == [{"pk": books[2].pk, "field": None, "messages": ["Keep this one."]}]
    # The others went, their after hooks ran, then the run rolled back.
    assert [old[1] for _, old in hooks.pairs("after_delete")] == [books[0].title, books[1].title]


def test_a_refused_delete_in_per_row_mode_deletes_the_others(shop: Any, hooks: Recorder) -> None:
    from powercrud.bulk import BulkDeleteService

    books = shop["books"][:3]
    hooks.refuse["Book 01"] = (None, "Keep this one.")
    result = BulkDeleteService().apply(
        queryset=Book.objects.filter(pk__in=[b.pk for b in books]),
        context=context_for(Book, 3, operation="delete", atomic=False),
    )
    assert result.failed == 1 and result.success_records == 2
    assert list(Book.objects.filter(pk__in=[b.pk for b in books]).values_list("title", flat=True)) == [
        "Book 01"
    ]
    assert [old[1] for _, old in hooks.pairs("after_delete")] == ["Book 00", "Book 02"]


# --- forms and inline edit ----------------------------------------------------------------------------


def form_data(book: Book | None = None, **changes: Any) -> dict[str, Any]:
    data = {"title": "New", "author": str(Author.objects.first().pk), "status": "draft", "price": "3.00"}  # type: ignore[union-attr]
    if book is not None:
        data.update(title=book.title, author=str(book.author_id), status=book.status, price=str(book.price))
    data.update(changes)
    return data


@pytest.mark.urls("tests.security.urls")
def test_form_create_update_and_delete_call_their_hooks_once(
    admin_user: Any, catalogue: Any, hooks: Recorder
) -> None:
    client = login(admin_user)
    assert client.post("/plain-books/new/", form_data()).status_code in (200, 302)
    created = Book.objects.get(title="New")
    assert hooks.events() == ["before_create", "after_create"]
    assert hooks.pairs("before_create") == [((None, "New", "draft", "3.00"), None)]
    assert hooks.pairs("after_create") == [((created.pk, "New", "draft", "3.00"), None)]
    hooks.calls.clear()
    client.post(f"/plain-books/{created.pk}/edit/", form_data(created, price="4.50"))
    assert hooks.events() == ["before_update", "after_update"]
    assert hooks.pairs("after_update") == [
        ((created.pk, "New", "draft", "4.50"), (created.pk, "New", "draft", "3.00"))
    ]
    hooks.calls.clear()
    client.post(f"/plain-books/{created.pk}/delete/")
    assert not Book.objects.filter(pk=created.pk).exists()
    assert hooks.pairs("after_delete") == [(None, (created.pk, "New", "draft", "4.50"))]


@pytest.mark.urls("tests.security.urls")
def test_a_refused_form_write_shows_the_error_on_its_field_and_saves_nothing(
    admin_user: Any, catalogue: Any, hooks: Recorder
) -> None:
    client = login(admin_user)
    hooks.refuse["New"] = ("price", "Not at this price.")
    response = client.post("/plain-books/new/", form_data())
    assert response.status_code == 400 and "Not at this price." in response.content.decode()
    assert not Book.objects.filter(title="New").exists() and hooks.events() == ["before_create"]
    target = catalogue["books"][5]
    hooks.refuse[target.title] = (None, "Frozen.")
    response = client.post(f"/plain-books/{target.pk}/edit/", form_data(target, price="1.00"))
    assert response.status_code == 400 and "Frozen." in response.content.decode()
    assert Book.objects.get(pk=target.pk).price == target.price
    response = client.post(f"/plain-books/{target.pk}/delete/")
    assert response.status_code == 409 and "cannot be deleted: Frozen." in response.content.decode()
    assert Book.objects.filter(pk=target.pk).exists()


@pytest.mark.urls("tests.inline_urls")
def test_inline_edit_calls_update_hooks_and_shows_a_refusal(
    htmx_client: Any, catalogue: Any, hooks: Recorder
) -> None:
    from tests.test_inline_edit import row_data

    target = Book.objects.get(title="Book 04")
    response = htmx_client.post(f"/ibook/{target.pk}/inline/", row_data(target, price="8.25"))
    assert response.status_code == 200
    assert hooks.pairs("after_update") == [
        (
            (target.pk, "Book 04", target.status, "8.25"),
            (target.pk, "Book 04", target.status, str(target.price)),
        )
    ]
    hooks.refuse["Book 04"] = ("price", "No more changes.")
    target.refresh_from_db()
    response = htmx_client.post(f"/ibook/{target.pk}/inline/", row_data(target, price="1.00"))
    assert response.status_code == 400 and "No more changes." in response.content.decode()
    assert Book.objects.get(pk=target.pk).price == Decimal("8.25")


def test_an_after_hook_that_raises_rolls_back_the_bulk_edit(shop: Any) -> None:
    def boom(pairs: list[Pair]) -> None:
        raise RuntimeError("audit is down")

    lifecycle.register(Event.AFTER_UPDATE, Book, boom)
    try:
        with pytest.raises(RuntimeError):
            update(Book.objects.filter(pk=shop["books"][0].pk), {"status": "archived"})
    finally:
        lifecycle.unregister(boom)
    assert Book.objects.get(pk=shop["books"][0].pk).status == "draft"
    assert not BulkTask.objects.exists()
