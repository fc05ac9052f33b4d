"""``BulkRequest``: validated once when made, stored and read back whole, one context factory."""

from __future__ import annotations

import json
from typing import Any

import pytest

from powercrud.bulk.request import FORMAT_VERSION, BulkRequest
from powercrud.bulk.types import BulkInputError


def edit(**overrides: Any) -> BulkRequest:
    values: dict[str, Any] = {
        "operation": "update",
        "model_label": "Testapp.Book",
        "fields_to_update": ("status", "tags"),
        "field_data": {"status": "published", "tags": {"op": "add", "ids": [1, 2]}},
        "bulk_fields": ("status", "price", "tags"),
        "atomic": False,
        "dry_run": True,
        "batch_size": 250,
        "backend_path": "tests.testapp.backends.BookBulkUpdateBackend",
        "backend_config": {"audit": True},
        "view_name": "tests.testapp.views.BookCRUDView",
        "reason": "Spring catalogue",
    }
    values.update(overrides)
    return BulkRequest(**values)


def test_a_request_round_trips_through_json() -> None:
    request = edit(source_run=12, source_action="retry")
    stored = json.loads(json.dumps(request.to_dict()))
    assert stored["version"] == FORMAT_VERSION
    assert stored["model_label"] == "testapp.book"  # labels are lower case once made
    assert BulkRequest.from_dict(stored) == request


def test_a_request_is_frozen_and_holds_copies() -> None:
    data = {"status": "published"}
    request = BulkRequest(
        operation="update",
        model_label="testapp.book",
        fields_to_update=["status"],  # type: ignore[arg-type]
        field_data=data,
        bulk_fields=["status"],  # type: ignore[arg-type]
    )
    data["status"] = "draft"
    assert request.field_data["status"] == "published"
    assert request.fields_to_update == ("status",)
    with pytest.raises(TypeError):
        request.field_data["status"] = "draft"  # type: ignore[index]
    with pytest.raises(AttributeError):
        request.dry_run = True  # type: ignore[misc]


def test_the_payload_of_an_earlier_release_still_reads() -> None:
    """Tasks queued before an upgrade stored nine keys and no operation or model label."""
    legacy = {
        "fields_to_update": ["status"],
        "field_data": {"status": "archived"},
        "bulk_fields": ["status", "price"],
        "backend_path": "",
        "backend_config": {},
        "atomic": True,
        "batch_size": 10,
        "view_name": "books",
        "dry_run": False,
    }
    request = BulkRequest.from_dict(legacy, operation="update", model_label="testapp.book")
    assert (request.operation, request.fields_to_update, request.batch_size) == ("update", ("status",), 10)


@pytest.mark.parametrize(
    ("overrides", "error", "text"),
    [
        ({"fields_to_update": ()}, BulkInputError, "Choose at least one field to change."),
        (
            {"fields_to_update": ("title",), "field_data": {"title": "x"}},
            BulkInputError,
            "'title' cannot be changed in bulk here",
        ),
        ({"fields_to_update": ("status", "status")}, BulkInputError, "'status' is listed twice"),
        ({"field_data": {"status": "published"}}, BulkInputError, "field_data has no value for 'tags'"),
        (
            {"field_data": {"status": "x", "tags": {}, "price": "1"}},
            BulkInputError,
            "field_data has 'price', not being changed",
        ),
        ({"field_data": {"status": object(), "tags": {}}}, TypeError, "must hold JSON-able data"),
        ({"operation": "explode"}, ValueError, "operation must be 'update', 'delete' or 'import'"),
        ({"model_label": "book"}, ValueError, "'app_label.model_name' label"),
        ({"batch_size": 0}, ValueError, "batch_size must be a whole number of at least 1"),
        ({"batch_size": True}, ValueError, "batch_size must be a whole number"),
        ({"atomic": "yes"}, TypeError, "atomic must be True or False"),
        ({"fields_to_update": "status"}, TypeError, "must be a list of field names"),
        ({"reason": "x" * 501}, BulkInputError, "The reason is too long"),
        ({"source_run": 3}, ValueError, "source_run and source_action go together"),
        (
            {"source_run": 3, "source_action": "redo"},
            ValueError,
            "source_action must be one of apply, retry, undo",
        ),
    ],
)
def test_a_request_is_checked_when_it_is_made(
    overrides: dict[str, Any], error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match=text.replace("(", r"\(")):
        edit(**overrides)


def test_a_delete_carries_no_values() -> None:
    delete = BulkRequest(operation="delete", model_label="testapp.book", atomic=False)
    assert (delete.fields_to_update, dict(delete.field_data)) == ((), {})
    with pytest.raises(ValueError, match="A bulk delete takes no fields_to_update"):
        BulkRequest(operation="delete", model_label="testapp.book", fields_to_update=("status",))


@pytest.mark.parametrize(
    ("stored", "text"),
    [
        ({"version": 99, "operation": "delete", "model_label": "a.b"}, "stored in format 99"),
        ({"operation": "delete", "model_label": "a.b", "colour": "red"}, "unknown keys: colour"),
        ({"model_label": "a.b"}, "not valid"),
        (["not", "a", "dict"], "must be a dict"),
    ],
)
def test_a_stored_request_that_cannot_be_read_says_why(stored: Any, text: str) -> None:
    with pytest.raises(ValueError, match=text):
        BulkRequest.from_dict(stored)


def test_both_modes_get_the_same_context_from_one_request() -> None:
    request = edit()
    sync = request.context(mode="sync", user_id=7, selection_size=40)
    queued = request.context(
        mode="async", user_id=7, selection_size=40, task_name="powercrud-bulk-3", extra={"task_id": 3}
    )
    same = ("model_label", "user_id", "selection_size", "atomic", "dry_run", "operation", "batch_size")
    assert [getattr(sync, name) for name in same] == [getattr(queued, name) for name in same]
    assert (sync.atomic, sync.dry_run, sync.batch_size, sync.model_label) == (
        False,
        True,
        250,
        "testapp.book",
    )
    assert dict(sync.extra) == {"view_name": "tests.testapp.views.BookCRUDView"}
    assert dict(queued.extra) == {"view_name": "tests.testapp.views.BookCRUDView", "task_id": 3}
    assert (sync.mode, sync.task_name, queued.mode, queued.task_name) == (
        "sync",
        None,
        "async",
        "powercrud-bulk-3",
    )
