"""Outcome sentences: one wording per outcome, said once, never "0 rows failed"."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from powercrud.bulk import messages
from powercrud.bulk.types import BulkContext, BulkResult
from powercrud.bulk_persistence import BulkUpdatePersistenceBackend, run_bulk_update
from tests.testapp.models import Author, Book


class QuotaBackend(BulkUpdatePersistenceBackend):
    """Writes every row, then reports a failure that belongs to no row."""

    def persist_bulk_update(self, *, queryset: Any, **kwargs: Any) -> dict[str, Any]:
        written = queryset.update(price=Decimal("99.00"))
        return {"success": False, "success_records": written, "errors": ["Quota exceeded."]}


def context(*, atomic: bool, dry_run: bool = False, size: int = 30) -> BulkContext:
    return BulkContext(
        mode="sync",
        model_label="testapp.book",
        user_id=None,
        selection_size=size,
        atomic=atomic,
        dry_run=dry_run,
    )


def run_quota(*, atomic: bool) -> BulkResult:
    return run_bulk_update(
        QuotaBackend(),
        queryset=Book.objects.all(),
        bulk_fields=["price"],
        fields_to_update=["price"],
        field_data={"price": "99.00"},
        context=context(atomic=atomic),
    )


@pytest.fixture
def books(db: None) -> list[Book]:
    author = Author.objects.create(name="Quota")
    return [Book.objects.create(title=f"B{i}", author=author, price=Decimal("1.00")) for i in range(30)]


def test_a_failure_of_no_row_in_all_or_nothing_mode_is_said_once(books: list[Book]) -> None:
    result = run_quota(atomic=True)
    assert result.message == "Quota exceeded, so nothing was saved (all-or-nothing)."
    assert (result.success, result.success_records) == (False, 0)
    assert set(Book.objects.values_list("price", flat=True)) == {Decimal("1.00")}  # rolled back


def test_a_failure_of_no_row_in_per_row_mode_names_what_was_saved(books: list[Book]) -> None:
    result = run_quota(atomic=False)
    assert result.message == "Quota exceeded; updated 30 of 30 rows (30 changed)."
    assert set(Book.objects.values_list("price", flat=True)) == {Decimal("99.00")}  # committed


def test_a_check_that_fails_for_no_row_says_why() -> None:
    result = BulkResult.coerce(
        {"success": False, "success_records": 0, "errors": ["No quota."], "dry_run": True}
    )
    assert result.message == "Check only, nothing was saved: No quota."


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            {"success": True, "success_records": 3, "failed": 0, "total": 3, "changed": 2},
            "Updated 3 of 3 rows (2 changed).",
        ),
        (
            {"success": False, "success_records": 0, "failed": 1, "total": 1, "changed": None},
            "1 of 1 row failed, so nothing was saved (all-or-nothing).",
        ),
        (
            {"success": False, "success_records": 0, "failed": 0, "total": 4, "changed": None},
            "The run did not succeed, so nothing was saved (all-or-nothing).",
        ),
        (
            {"success": False, "success_records": 2, "failed": 1, "total": 3, "changed": 2, "atomic": False},
            "1 of 3 rows failed; updated 2 (2 changed).",
        ),
        (
            {
                "success": True,
                "success_records": 1200,
                "failed": 0,
                "total": 1200,
                "changed": None,
                "verb": "Deleted",
            },
            "Deleted 1,200 of 1,200 rows.",
        ),
        (
            {
                "success": False,
                "success_records": 0,
                "failed": 19,
                "total": 174,
                "changed": None,
                "dry_run": True,
            },
            "Check only, nothing was saved: 19 of 174 rows would fail and 155 would pass; "
            "all-or-nothing saves none of them.",
        ),
        (
            {"success": True, "success_records": 5, "failed": 0, "total": 5, "changed": 4, "dry_run": True},
            "Check only, nothing was saved: 5 rows checked; 4 would change.",
        ),
    ],
)
def test_summarise(kwargs: dict[str, Any], expected: str) -> None:
    kwargs.setdefault("dry_run", False)
    assert messages.summarise(**kwargs) == expected


def test_rolled_back_and_check_only_are_said_once() -> None:
    once = messages.all_or_nothing_rolled_back("2 of 3 rows failed, so nothing was saved (all-or-nothing).")
    assert once == "2 of 3 rows failed, so nothing was saved (all-or-nothing)."
    assert messages.all_or_nothing_rolled_back("The backend gave up.") == (
        "The backend gave up, so nothing was saved (all-or-nothing)."
    )
    assert messages.check_only(messages.check_only("Fine.")) == "Check only, nothing was saved. Fine."


def test_edits_and_deletes_say_what_did_not_happen() -> None:
    assert messages.cancelled("update") == "Cancelled before it started; nothing was saved."
    assert messages.cancelled("delete", done=2000, total=5000) == (
        "Cancelled after 2,000 of 5,000 rows; nothing was deleted."
    )
    assert messages.job_not_queued("delete", reachable=False) == (
        "The task could not be queued because the task queue is not reachable; nothing was deleted."
    )
    assert messages.task_failed("update", "bad_input", detail="'x' is not a field.") == (
        "'x' is not a field. (Nothing was saved.)"
    )
