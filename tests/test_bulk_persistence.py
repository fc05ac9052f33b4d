"""Bulk update backends: resolving them by path, and the guarded entry points around them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet

from powercrud.bulk import BulkContext, BulkResult, BulkUpdateService, RowError
from powercrud.bulk_persistence import (
    BulkUpdatePersistenceBackend,
    DefaultBulkUpdatePersistenceBackend,
    check_backend_path,
    resolve_backend_class,
    run_bulk_delete,
    run_bulk_update,
)
from tests.testapp.backends import BookBulkUpdateBackend
from tests.testapp.models import Author, Book, BulkAudit
from tests.testapp.services import BookBulkUpdateService

BASE = "powercrud.bulk_persistence.BulkUpdatePersistenceBackend"


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    resolve_backend_class.cache_clear()
    yield
    resolve_backend_class.cache_clear()


@pytest.fixture
def books(db: None) -> list[Book]:
    author = Author.objects.create(name="Morrison")
    Book.objects.bulk_create(
        Book(title=f"Book {i}", author=author, price=Decimal("10.00"), status=status)
        for i, status in enumerate(["draft", "draft", "published", "archived"])
    )
    return list(Book.objects.order_by("pk"))


def context(**overrides: Any) -> BulkContext:
    values: dict[str, Any] = {
        "mode": "async",
        "model_label": "testapp.book",
        "user_id": 5,
        "selection_size": 4,
    }
    values.update(overrides)
    return BulkContext(**values)


def persist(
    backend: BulkUpdatePersistenceBackend, field_data: Mapping[str, Any], **overrides: Any
) -> BulkResult:
    return run_bulk_update(
        backend,
        queryset=Book.objects.all(),
        bulk_fields=["status", "price", "genre"],
        fields_to_update=list(field_data),
        field_data=field_data,
        context=context(**overrides),
    )


def prices() -> list[Decimal]:
    return list(Book.objects.order_by("pk").values_list("price", flat=True))


# --- resolving ----------------------------------------------------------------------------------


def test_resolves_and_caches() -> None:
    assert resolve_backend_class("tests.testapp.backends.BookBulkUpdateBackend") is BookBulkUpdateBackend
    assert resolve_backend_class("tests.testapp.backends.BookBulkUpdateBackend") is BookBulkUpdateBackend
    assert resolve_backend_class.cache_info().hits == 1
    assert check_backend_path("tests.testapp.backends.BookBulkUpdateBackend") is None


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "BookBulkUpdateBackend",
            "Bulk update backend path 'BookBulkUpdateBackend' is not a dotted path; use "
            "'package.module.ClassName'.",
        ),
        (
            "tests.testapp.backends.",
            "Bulk update backend path 'tests.testapp.backends.' is not a dotted path; use "
            "'package.module.ClassName'.",
        ),
        (
            "tests.testapp.nowhere.Backend",
            "Bulk update backend path 'tests.testapp.nowhere.Backend': module 'tests.testapp.nowhere' "
            "could not be imported (ModuleNotFoundError: No module named 'tests.testapp.nowhere').",
        ),
        (
            "tests.testapp.backends.Missing",
            "Bulk update backend path 'tests.testapp.backends.Missing': module 'tests.testapp.backends' "
            "has no attribute 'Missing'.",
        ),
        (
            "tests.testapp.services.BookBulkUpdateService",
            "Bulk update backend path 'tests.testapp.services.BookBulkUpdateService' names "
            f"<class 'tests.testapp.services.BookBulkUpdateService'>, which is not a subclass of {BASE}.",
        ),
        (
            "powercrud.bulk.types.MAX_EXAMPLES",
            "Bulk update backend path 'powercrud.bulk.types.MAX_EXAMPLES' names 5, which is not "
            f"a subclass of {BASE}.",
        ),
    ],
)
def test_resolver_errors(path: str, message: str) -> None:
    with pytest.raises(ImproperlyConfigured) as info:
        resolve_backend_class(path)
    assert str(info.value) == message
    assert check_backend_path(path) == message


def test_base_backend_says_what_to_implement() -> None:
    backend = BulkUpdatePersistenceBackend({"retries": 2})
    assert backend.config == {"retries": 2}
    assert BulkUpdatePersistenceBackend().config == {}
    with pytest.raises(NotImplementedError) as info:
        backend.persist_bulk_update(
            queryset=Book.objects.none(),
            bulk_fields=[],
            fields_to_update=[],
            field_data={},
            context=context(),
        )
    assert str(info.value) == (
        "BulkUpdatePersistenceBackend must implement persist_bulk_update(*, queryset, bulk_fields, "
        "fields_to_update, field_data, context, progress_callback=None) and return a BulkResult or "
        "{'success': ..., 'success_records': ..., 'errors': [...]}; or subclass "
        "DefaultBulkUpdatePersistenceBackend, which calls BulkUpdateService."
    )


# --- run_bulk_update ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_default_backend_writes(books: list[Book]) -> None:
    progress: list[tuple[int, int]] = []
    result = run_bulk_update(
        DefaultBulkUpdatePersistenceBackend(),
        queryset=Book.objects.filter(status="draft"),
        bulk_fields=["status"],
        fields_to_update=["status"],
        field_data={"status": "published"},
        context=context(selection_size=2),
        progress_callback=lambda done, total: progress.append((done, total)),
    )
    assert (result.success, result.changed) == (True, 2)
    assert progress == [(0, 2), (2, 2)]
    assert Book.objects.filter(status="published").count() == 3


@pytest.mark.django_db
def test_default_backend_uses_its_service_class(books: list[Book]) -> None:
    calls: list[str] = []

    class Noting(BulkUpdateService):
        def after_batch(self, changes: Sequence[Any], context: BulkContext) -> None:
            calls.append(context.mode)

    class Backend(DefaultBulkUpdatePersistenceBackend):
        service_class = Noting

    assert persist(Backend(), {"genre": None, "status": "draft"}).success
    assert calls == ["async"]


class WritesThenFails(BulkUpdatePersistenceBackend):
    """A careless user backend: writes every row, then reports failure as a plain dict."""

    def persist_bulk_update(self, *, queryset: QuerySet[Any], **kwargs: Any) -> Mapping[str, Any]:
        written = queryset.update(price=Decimal("99.00"))
        pk = queryset.order_by("pk").first().pk
        return {"success": False, "success_records": written - 1, "errors": [{"pk": pk, "message": "Bad."}]}


@pytest.mark.django_db
def test_failed_result_in_all_or_nothing_mode_is_rolled_back(books: list[Book]) -> None:
    result = persist(WritesThenFails(), {"price": "1.00"})
    assert prices() == [Decimal("10.00")] * 4
    assert not result.success
    assert result.errors == (RowError(pk=books[0].pk, field=None, messages=("Bad.",)),)
    assert (result.success_records, result.changed) == (0, 0)
    assert result.message == "1 of 4 rows failed, so nothing was saved (all-or-nothing)."


@pytest.mark.django_db
def test_failed_result_in_per_row_mode_is_kept(books: list[Book]) -> None:
    result = persist(WritesThenFails(), {"price": "1.00"}, atomic=False)
    assert prices() == [Decimal("99.00")] * 4
    assert (result.success, result.success_records) == (False, 3)


class IgnoresDryRun(BulkUpdatePersistenceBackend):
    def persist_bulk_update(self, *, queryset: QuerySet[Any], **kwargs: Any) -> Mapping[str, Any]:
        return {"success": True, "success_records": queryset.update(price=Decimal("0.01")), "errors": []}


@pytest.mark.django_db
def test_dry_run_is_rolled_back_even_if_the_backend_ignores_it(books: list[Book]) -> None:
    result = persist(IgnoresDryRun(), {"price": "1.00"}, dry_run=True)
    assert prices() == [Decimal("10.00")] * 4
    assert result.dry_run
    assert result.message == "Check only, nothing was saved. Updated 4 of 4 rows (4 changed)."


@pytest.mark.django_db
def test_exceptions_propagate_after_rollback(books: list[Book]) -> None:
    class Explodes(BulkUpdatePersistenceBackend):
        def persist_bulk_update(self, *, queryset: QuerySet[Any], **kwargs: Any) -> Any:
            queryset.update(price=Decimal("5.00"))
            raise RuntimeError("worker lost its marbles")

    with pytest.raises(RuntimeError, match="worker lost its marbles"):
        persist(Explodes(), {"price": "1.00"}, atomic=False)
    assert prices() == [Decimal("10.00")] * 4


@pytest.mark.django_db
def test_a_bad_return_value_is_a_type_error_and_rolled_back(books: list[Book]) -> None:
    class ReturnsList(BulkUpdatePersistenceBackend):
        def persist_bulk_update(self, *, queryset: QuerySet[Any], **kwargs: Any) -> Any:
            queryset.update(price=Decimal("5.00"))
            return [True]

    with pytest.raises(TypeError, match=r"must return a BulkResult or a dict .*; got list\.$"):
        persist(ReturnsList(), {"price": "1.00"}, atomic=False)
    assert prices() == [Decimal("10.00")] * 4


@pytest.mark.django_db
def test_run_bulk_delete(books: list[Book]) -> None:
    delete_context = context(operation="delete")
    result = run_bulk_delete(queryset=Book.objects.filter(status="draft"), context=delete_context)
    assert (result.success, result.success_records) == (True, 2)
    assert Book.objects.count() == 2
    check = run_bulk_delete(
        queryset=Author.objects.all(),
        context=BulkContext(
            mode="sync",
            model_label="testapp.author",
            user_id=None,
            selection_size=1,
            operation="delete",
            dry_run=True,
        ),
    )
    assert check.dry_run and not check.success and Author.objects.count() == 1


# --- a backend by path over a service with a row rule -------------------------------------------


@pytest.mark.django_db
def test_a_backend_by_path_fails_only_the_rows_its_service_refuses(books: list[Book]) -> None:
    backend = resolve_backend_class("tests.testapp.backends.BookBulkUpdateBackend")()
    archived = books[3]
    result = persist(backend, {"price": "12.00"}, atomic=False, task_name="bulk-7")
    assert result.errors == (
        RowError(
            pk=archived.pk,
            field="price",
            messages=("“Book 3” is archived; archived books cannot be re-priced.",),
        ),
    )
    assert prices() == [Decimal("12.00")] * 3 + [Decimal("10.00")]
    [entry] = BulkAudit.objects.all()
    assert (entry.mode, entry.task_name, entry.user_id, entry.fields, entry.rows, entry.failed) == (
        "async",
        "bulk-7",
        "5",
        "price",
        3,
        1,
    )


@pytest.mark.django_db
def test_a_dry_run_through_a_backend_writes_nothing_and_skips_its_side_effects(books: list[Book]) -> None:
    check = persist(BookBulkUpdateBackend(), {"price": "12.00"}, dry_run=True)
    assert check.dry_run and not check.success and len(check.errors) == 1
    assert prices() == [Decimal("10.00")] * 4
    assert not BulkAudit.objects.exists()
    result = persist(BookBulkUpdateBackend(), {"status": "draft", "price": "10.00"})
    assert (result.success, result.changed) == (True, 2)
    assert list(BulkAudit.objects.values_list("mode", "rows", "failed")) == [("async", 4, 0)]
    assert BookBulkUpdateService.row_fields == ("title", "status")


# --- scope_queryset -----------------------------------------------------------------------------


class NoArchivedBackend(DefaultBulkUpdatePersistenceBackend):
    """A scope rule stated from the context alone: archived books are out of bounds."""

    def scope_queryset(self, queryset: QuerySet[Any], *, context: BulkContext) -> QuerySet[Any]:
        return queryset.exclude(status="archived")


def test_the_default_scope_is_every_row_at_no_cost(books: list[Book]) -> None:
    queryset = Book.objects.all()
    assert BulkUpdatePersistenceBackend().scope_queryset(queryset, context=context()) is queryset


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({}, "1 of 4 rows failed, so nothing was saved (all-or-nothing)."),
        (
            {"dry_run": True},
            "Check only, nothing was saved: 1 of 4 rows would fail and 3 would pass; "
            "all-or-nothing saves none",
        ),
        ({"atomic": False}, "1 of 4 rows failed; updated 3 (3 changed)."),
    ],
    ids=["all-or-nothing", "check", "per-row"],
)
def test_rows_the_scope_leaves_out_are_named_and_never_written(
    books: list[Book], overrides: dict[str, Any], message: str
) -> None:
    result = persist(NoArchivedBackend(), {"price": "1.00"}, **overrides)
    archived = books[3].pk
    assert not result.success
    assert result.total == 4
    assert [(e.pk, e.field) for e in result.errors] == [(archived, None)]
    assert result.errors[0].messages == (
        "This book is no longer one you may change (it changed after the task was submitted), "
        "so it was left as it is.",
    )
    assert result.message.startswith(message)
    written = overrides.get("atomic") is False
    assert prices() == [Decimal("1.00")] * 3 + [Decimal("10.00")] if written else [Decimal("10.00")] * 4


def test_a_delete_keeps_the_rows_its_scope_leaves_out(books: list[Book]) -> None:
    result = run_bulk_delete(
        queryset=Book.objects.all(),
        context=context(operation="delete", atomic=False, mode="sync"),
        scope=NoArchivedBackend().scope_queryset,
    )
    assert [e.pk for e in result.errors] == [books[3].pk]
    assert result.errors[0].messages == (
        "This book is no longer one you may delete, so it was left as it is.",
    )
    assert list(Book.objects.values_list("pk", flat=True)) == [books[3].pk]


def test_a_scope_of_another_model_is_a_clear_error(books: list[Book]) -> None:
    class WrongModel(DefaultBulkUpdatePersistenceBackend):
        def scope_queryset(self, queryset: QuerySet[Any], *, context: BulkContext) -> Any:
            return Author.objects.all()

    with pytest.raises(TypeError, match="must return a queryset of testapp.Book, not of testapp.Author"):
        persist(WrongModel(), {"price": "1.00"})
    assert prices() == [Decimal("10.00")] * 4
