"""BulkDeleteService: batches, modes, protected rows, cascades and dry runs."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db.models import QuerySet

from powercrud.bulk import BulkContext, BulkDeleteService, BulkResult, RowError
from tests.testapp.models import Asset, Author, Book, Shelf, ShelfEvent


def delete(
    queryset: QuerySet[Any], progress: list[tuple[int, int]] | None = None, **overrides: Any
) -> BulkResult:
    context = BulkContext(
        mode="sync",
        model_label=queryset.model._meta.label_lower,
        user_id=None,
        selection_size=queryset.count(),
        operation="delete",
        **overrides,
    )
    callback = (lambda done, total: progress.append((done, total))) if progress is not None else None
    return BulkDeleteService().apply(queryset=queryset, context=context, progress_callback=callback)


@pytest.fixture
def library(db: None) -> dict[str, list[Any]]:
    authors = [Author.objects.create(name=f"Author {i}") for i in range(5)]
    books = [
        Book.objects.create(title=title, author=authors[i], price=Decimal("1.00"))
        for i, title in [(1, "Dune"), (1, "Emma"), (3, "Ulysses"), (1, "Beloved"), (1, "Middlemarch")]
    ]
    return {"authors": authors, "books": books}


@pytest.mark.django_db
def test_deletes_the_selection_in_batches(library: dict[str, list[Any]]) -> None:
    progress: list[tuple[int, int]] = []
    result = delete(Book.objects.filter(author=library["authors"][1]), progress=progress, batch_size=2)
    assert (result.success, result.success_records, result.total) == (True, 4, 4)
    assert list(Book.objects.values_list("title", flat=True)) == ["Ulysses"]
    assert progress == [(0, 4), (2, 4), (4, 4)]
    assert result.message == "Deleted 4 of 4 rows."


@pytest.mark.parametrize("atomic", [True, False])
@pytest.mark.django_db
def test_protected_rows_are_reported(library: dict[str, list[Any]], atomic: bool) -> None:
    authors = library["authors"]
    result = delete(Author.objects.all(), atomic=atomic, batch_size=2)
    assert not result.success
    assert result.errors == (
        RowError(
            pk=authors[1].pk,
            field=None,
            messages=(
                f"Author {authors[1].pk} cannot be deleted: it is still used by 4 books "
                "(“Dune”, “Emma”, “Beloved” …) through Book.author (protected).",
            ),
        ),
        RowError(
            pk=authors[3].pk,
            field=None,
            messages=(
                f"Author {authors[3].pk} cannot be deleted: it is still used by 1 book "
                "(“Ulysses”) through Book.author (protected).",
            ),
        ),
    )
    remaining = set(Author.objects.values_list("pk", flat=True))
    if atomic:
        assert remaining == {a.pk for a in authors}
        assert result.success_records == 0
        assert result.message == "2 of 5 rows failed, so nothing was saved (all-or-nothing)."
    else:
        assert remaining == {authors[1].pk, authors[3].pk}
        assert result.success_records == 3
        assert result.message == "2 of 5 rows failed; deleted 3."


@pytest.mark.parametrize("atomic", [True, False])
@pytest.mark.django_db
def test_dry_run_deletes_nothing_and_predicts_the_real_run(
    library: dict[str, list[Any]], atomic: bool
) -> None:
    check = delete(Author.objects.all(), atomic=atomic, dry_run=True, batch_size=3)
    assert Author.objects.count() == 5 and Book.objects.count() == 5
    real = delete(Author.objects.all(), atomic=atomic, batch_size=3)
    assert check.dry_run and not real.dry_run
    assert (check.success, check.success_records, check.errors) == (
        real.success,
        real.success_records,
        real.errors,
    )
    assert check.message.startswith("Check only, nothing was saved: 2 of 5 rows would fail")


@pytest.mark.django_db
def test_cascades_and_signals(db: None) -> None:
    shelves = [Shelf.objects.create(name=f"S{i}") for i in range(3)]  # post_save writes events
    assert ShelfEvent.objects.count() == 3
    result = delete(Shelf.objects.filter(pk__in=[s.pk for s in shelves[:2]]))
    assert (result.success, result.success_records) == (True, 2)
    assert list(ShelfEvent.objects.values_list("shelf_id", flat=True)) == [shelves[2].pk]
    assert result.message == "Deleted 2 of 2 rows. 2 related objects were removed with them."


@pytest.mark.django_db
def test_uuid_primary_keys(db: None) -> None:
    Asset.objects.bulk_create(Asset(code=f"A{i}") for i in range(5))
    result = delete(Asset.objects.exclude(code="A0"), batch_size=2)
    assert (result.success, result.success_records) == (True, 4)
    assert list(Asset.objects.values_list("code", flat=True)) == ["A0"]


@pytest.mark.django_db
def test_rows_already_gone_are_not_counted(library: dict[str, list[Any]]) -> None:
    class Vanishing(BulkDeleteService):
        def batch_queryset(self, model: Any, using: str, pks: Any) -> QuerySet[Any]:
            Book.objects.filter(title="Emma").delete()  # deleted by someone else meanwhile
            return super().batch_queryset(model, using, pks)

    context = BulkContext(
        mode="sync", model_label="testapp.book", user_id=None, selection_size=5, operation="delete"
    )
    result = Vanishing().apply(queryset=Book.objects.all(), context=context)
    assert (result.success, result.success_records, result.total) == (True, 4, 5)
    assert result.message == "Deleted 4 of 5 rows. 1 had already been deleted."


@pytest.mark.django_db
def test_context_must_describe_a_delete(library: dict[str, list[Any]]) -> None:
    context = BulkContext(mode="sync", model_label="testapp.book", user_id=None, selection_size=5)
    with pytest.raises(ValueError) as info:
        BulkDeleteService().apply(queryset=Book.objects.all(), context=context)
    assert str(info.value) == "context.operation is 'update'; this service performs 'delete'."
    assert Book.objects.count() == 5
