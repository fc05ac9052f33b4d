"""The bulk contracts: context, row errors and changes, results and their coercion."""

from __future__ import annotations

import datetime
import json
import pickle
import uuid
from decimal import Decimal
from typing import Any

import pytest

from powercrud.bulk import BulkContext, BulkHookError, BulkResult, RowChange, RowError

CONTRACT = (
    "A bulk update backend's persist_bulk_update() must return a BulkResult or a dict "
    "{'success': bool, 'success_records': int, 'errors': [...]}"
)


def make_context(**overrides: Any) -> BulkContext:
    values: dict[str, Any] = {
        "mode": "async",
        "model_label": "testapp.book",
        "user_id": 7,
        "selection_size": 120,
        "atomic": False,
        "dry_run": True,
        "task_name": "bulk-42",
        "batch_size": 50,
        "extra": {"reason": "price review", "ids": [1, 2]},
    }
    values.update(overrides)
    return BulkContext(**values)


class TestBulkContext:
    def test_defaults(self) -> None:
        context = BulkContext(mode="sync", model_label="testapp.Book", user_id=None, selection_size=3)
        assert context.atomic is True
        assert context.dry_run is False
        assert context.operation == "update"
        assert context.batch_size == 1000
        assert context.task_name is None
        assert dict(context.extra) == {}
        assert context.model_label == "testapp.book"

    def test_json_round_trip(self) -> None:
        context = make_context()
        data = json.loads(json.dumps(context.to_dict()))
        assert BulkContext.from_dict(data) == context
        assert data["extra"] == {"reason": "price review", "ids": [1, 2]}

    def test_pickles(self) -> None:
        context = make_context()
        assert pickle.loads(pickle.dumps(context)) == context

    def test_is_immutable(self) -> None:
        context = make_context()
        with pytest.raises(AttributeError):
            context.atomic = True  # type: ignore[misc]
        with pytest.raises(TypeError):
            context.extra["reason"] = "changed"  # type: ignore[index]

    def test_extra_is_copied(self) -> None:
        extra = {"nested": {"a": 1}}
        context = make_context(extra=extra)
        extra["nested"]["a"] = 2
        assert context.extra["nested"] == {"a": 1}

    def test_hashable(self) -> None:
        assert hash(make_context()) == hash(make_context())

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"mode": "later"}, "BulkContext.mode must be 'sync' or 'async', not 'later'."),
            (
                {"operation": "merge"},
                "BulkContext.operation must be 'update', 'delete' or 'import', not 'merge'.",
            ),
            (
                {"model_label": "book"},
                # The example label is powercrud's own message text, not a model of these tests.
                "BulkContext.model_label must be an 'app_label.model_name' label such as "
                "'library.book', not 'book'.",
            ),
            ({"batch_size": 0}, "BulkContext.batch_size must be at least 1."),
            (
                {"selection_size": -1},
                "BulkContext.selection_size must be a non-negative integer, not -1.",
            ),
            (
                {"user_id": 1.5},
                "BulkContext.user_id must be an int, a str or None, not 1.5.",
            ),
        ],
    )
    def test_invalid(self, overrides: dict[str, Any], message: str) -> None:
        with pytest.raises(ValueError) as info:
            make_context(**overrides)
        assert str(info.value) == message

    def test_extra_must_be_json(self) -> None:
        with pytest.raises(TypeError, match=r"^BulkContext.extra must hold JSON-able data"):
            make_context(extra={"when": datetime.date(2024, 1, 1)})

    def test_from_dict_rejects_unknown_keys(self) -> None:
        data = make_context().to_dict() | {"view": "x"}
        with pytest.raises(ValueError, match=r"^BulkContext.from_dict\(\) got unknown keys: view\.$"):
            BulkContext.from_dict(data)


class TestRowErrorAndChange:
    def test_row_error_pk_is_json(self) -> None:
        key = uuid.uuid4()
        error = RowError(pk=key, field="code", messages=["Taken."])  # type: ignore[arg-type]
        assert error.pk == str(key)
        assert error.messages == ("Taken.",)
        assert error.to_dict() == {"pk": str(key), "field": "code", "messages": ["Taken."]}
        assert str(error) == f"row {key}, field 'code': Taken."

    def test_row_change(self) -> None:
        change = RowChange(
            pk=3,
            old={"price": Decimal("1.00"), "tags": (1,), "published_date": None},
            new={"price": Decimal("2.50"), "tags": (1, 2), "published_date": datetime.date(2024, 1, 31)},
        )
        assert change.changed_fields == ("price", "tags", "published_date")
        assert json.loads(json.dumps(change.to_dict())) == {
            "pk": 3,
            "old": {"price": "1.00", "tags": [1], "published_date": None},
            "new": {"price": "2.50", "tags": [1, 2], "published_date": "2024-01-31"},
        }
        with pytest.raises(TypeError):
            change.old["price"] = 0  # type: ignore[index]

    def test_hook_error(self) -> None:
        error = BulkHookError([RowError(pk=1, field=None, messages=("No.",))])
        assert str(error) == "row 1: No."
        with pytest.raises(TypeError, match="BulkHookError takes RowError objects"):
            BulkHookError(["No."])  # type: ignore[list-item]


class TestBulkResult:
    def test_to_dict_is_json_and_coerces_back(self) -> None:
        result = BulkResult(
            success=False,
            success_records=8,
            errors=(RowError(pk=4, field="price", messages=("Too high.",)),),
            total=9,
            changed=6,
            dry_run=True,
            examples=tuple(RowChange(pk=i, old={"n": i}, new={"n": i + 1}) for i in range(7)),
            message="Some failed.",
        )
        assert len(result.examples) == 5
        data = json.loads(json.dumps(result.to_dict()))
        back = BulkResult.coerce(data)
        assert back == result
        assert back.failed_records == 1

    def test_coerce_returns_results_unchanged(self) -> None:
        result = BulkResult(success=True, success_records=1, total=1, changed=1)
        assert BulkResult.coerce(result) is result

    def test_coerce_plain_dict_with_every_error_form(self) -> None:
        result = BulkResult.coerce(
            {
                "success": False,
                "success_records": 3,
                "errors": [
                    {"pk": 1, "field": "price", "messages": ["Too high.", "Odd."]},
                    {"pk": "a-b", "field": None, "message": "Locked."},
                    "Something else went wrong.",
                ],
            }
        )
        assert result.errors == (
            RowError(pk=1, field="price", messages=("Too high.", "Odd.")),
            RowError(pk="a-b", field=None, messages=("Locked.",)),
            RowError(pk=None, field=None, messages=("Something else went wrong.",)),
        )
        assert result.total == 5  # 3 written + 2 failing rows
        assert result.changed == 3
        assert result.dry_run is False
        assert result.message == "2 of 5 rows failed, so nothing was saved (all-or-nothing)."

    def test_coerce_minimal_success(self) -> None:
        result = BulkResult.coerce({"success": True, "success_records": 2, "errors": []})
        assert result == BulkResult(
            success=True,
            success_records=2,
            total=2,
            changed=2,
            message="Updated 2 of 2 rows (2 changed).",
        )

    @pytest.mark.parametrize(
        ("value", "detail"),
        [
            (None, "got NoneType."),
            ([True, 1], "got list."),
            ({"success": True}, "the dict has no 'success_records'."),
            ({"success": "yes", "success_records": 1}, "'success' must be a bool, got 'yes'."),
            (
                {"success": True, "success_records": -1},
                "'success_records' must be a non-negative int, got -1.",
            ),
            (
                {"success": True, "success_records": 1, "errors": "bad"},
                "'errors' must be a list, got 'bad'.",
            ),
            (
                {"success": False, "success_records": 1, "errors": [3]},
                "errors[0] must be a dict {'pk', 'field', 'messages'} or a string, got int.",
            ),
            (
                {"success": False, "success_records": 1, "errors": [{"pk": 1}]},
                "errors[0] needs 'messages' (a list of strings) or 'message' (a string), got {'pk': 1}.",
            ),
            (
                {"success": False, "success_records": 1, "errors": [{"pk": [1], "message": "x"}]},
                "errors[0]['pk'] must be an int or a str, got [1].",
            ),
        ],
    )
    def test_coerce_rejects(self, value: Any, detail: str) -> None:
        with pytest.raises(TypeError) as info:
            BulkResult.coerce(value)
        assert str(info.value) == f"{CONTRACT}; {detail}"


def test_summaries_group_thousands():
    from powercrud.bulk.types import summarise

    text = summarise(success=True, success_records=30000, failed=0, total=30000, changed=27629, dry_run=False)
    assert text == "Updated 30,000 of 30,000 rows (27,629 changed)."
