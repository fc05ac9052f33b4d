"""powercrud.W003: bulk settings on a view whose bulk_fields is empty, where nothing uses them."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import WARNING

from powercrud.bulk_persistence import BulkUpdatePersistenceBackend
from powercrud.checks import check_view
from powercrud.views import CRUDView, registry
from tests.testapp.models import Book

HERE = "tests.test_checks_bulk_fields"
BOOK_BACKEND = "tests.testapp.backends.BookBulkUpdateBackend"  # overrides persist_bulk_update() only
PATH = "bulk_update_persistence_backend_path"


class ScopingBackend(BulkUpdatePersistenceBackend):
    """Narrows what a run may touch: bulk delete uses this even without bulk edit."""

    def scope_queryset(self, queryset: Any, *, context: Any) -> Any:
        return queryset.exclude(status="archived")


@pytest.fixture(autouse=True)
def _forget_views():
    before = list(registry)
    yield
    registry[:] = before


def view(**attrs: Any) -> type[CRUDView]:
    from powercrud.mixins import PowerCRUDMixin

    return type("QuietView", (PowerCRUDMixin, CRUDView), {"__module__": __name__, "model": Book, **attrs})


def w003(messages: list[Any]) -> Any:
    found = [m for m in messages if m.id == "powercrud.W003"]
    assert len(found) == 1, [m.id for m in messages]
    assert found[0].level == WARNING
    return found[0]


@pytest.mark.parametrize(
    ("attrs", "named", "it"),
    [
        ({"bulk_async": True}, "bulk_async = True", "it has"),
        ({PATH: BOOK_BACKEND}, PATH, "it has"),
        ({"bulk_async": True, PATH: BOOK_BACKEND}, f"bulk_async = True and {PATH}", "they have"),
    ],
    ids=["async", "backend path", "both"],
)
def test_w003_bulk_settings_without_bulk_fields_or_bulk_delete(attrs: dict[str, Any], named: str, it: str):
    checked = view(**attrs)
    warning = w003(check_view(checked))
    assert warning.obj is checked
    assert warning.msg == (
        f"QuietView sets {named}, but bulk edit is off because bulk_fields is empty (and bulk_delete "
        f"is off too), so {it} no effect."
    )
    removed = " and ".join(name for name in ("bulk_async", PATH) if name in attrs)
    assert warning.hint == f"Set bulk_fields to the fields users may change in bulk, or remove {removed}."
    assert check_view(view(bulk_fields=["status"], **attrs)) == []  # the fix


def test_w003_a_backend_that_bulk_delete_cannot_use():
    """With bulk delete only, the backend's scope_queryset() is all that is called."""
    warning = w003(check_view(view(bulk_delete=True, **{PATH: BOOK_BACKEND})))
    assert warning.msg == (
        f"QuietView sets {PATH}, but bulk edit is off because bulk_fields is empty; bulk delete uses "
        f"only the backend's scope_queryset(), which {BOOK_BACKEND} does not override, so the backend "
        "is never used."
    )
    assert warning.hint == (f"Set bulk_fields to the fields users may change in bulk, or remove {PATH}.")


@pytest.mark.parametrize(
    "attrs",
    [
        {"bulk_delete": True, "bulk_async": True},  # async bulk delete
        {"bulk_delete": True, PATH: f"{HERE}.ScopingBackend"},  # delete narrowed by the backend
        {"bulk_delete": True, "bulk_async": True, PATH: f"{HERE}.ScopingBackend"},
        {"bulk_fields": ["status"], "bulk_async": True, PATH: BOOK_BACKEND},
        {},
    ],
    ids=["async delete", "scoped delete", "async scoped delete", "bulk edit", "nothing bulk"],
)
def test_w003_is_quiet_where_the_settings_are_used(attrs: dict[str, Any]):
    assert [m.id for m in check_view(view(**attrs))] == []


def test_w003_leaves_a_backend_path_that_does_not_resolve_to_e009():
    ids = [m.id for m in check_view(view(bulk_delete=True, **{PATH: "nowhere.Backend"}))]
    assert ids == ["powercrud.E009"]


def test_w003_leaves_views_without_the_bulk_mixin_alone():
    """A plain CRUDView has no bulk screens whatever it sets; bulk_fields would not help."""
    plain = type("PlainView", (CRUDView,), {"__module__": __name__, "model": Book, "bulk_async": True})
    assert "powercrud.W003" not in [m.id for m in check_view(plain)]
