"""``BulkMixin``'s path into the core: one request, one backend per run, built as a worker builds it."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from django.test import RequestFactory

from powercrud.bulk.request import BulkRequest
from powercrud.bulk.types import BulkContext, BulkResult
from powercrud.bulk_persistence import DefaultBulkUpdatePersistenceBackend, backend_for
from powercrud.mixins import PowerCRUDMixin
from powercrud.views import CRUDView, Role
from tests.testapp.models import Author, Book

pytestmark = pytest.mark.django_db

PATH = f"{__name__}.WatchedBackend"


class WatchedBackend(DefaultBulkUpdatePersistenceBackend):
    """Records which instance scoped and wrote, and with which config."""

    calls: ClassVar[list[tuple[str, int, dict[str, Any]]]] = []

    def scope_queryset(self, queryset: Any, *, context: BulkContext) -> Any:
        self.calls.append(("scope", id(self), dict(self.config)))
        return queryset

    def persist_bulk_update(self, **kwargs: Any) -> BulkResult:
        self.calls.append(("write", id(self), dict(self.config)))
        return super().persist_bulk_update(**kwargs)


class ConfiguredView(PowerCRUDMixin, CRUDView):
    model = Book
    fields = ["title", "status"]
    bulk_fields = ["status"]
    bulk_update_persistence_backend_path = PATH
    bulk_update_persistence_backend_config = {"from": "class"}

    def build_bulk_request(self, operation: Any, **kwargs: Any) -> BulkRequest:
        request = super().build_bulk_request(operation, **kwargs)
        return dataclasses.replace(request, backend_config={"from": "request"})


class HookCallsSuperView(ConfiguredView):
    """A sync hook that adds to the default path and then calls it."""

    def persist_bulk_update(self, **kwargs: Any) -> Any:
        return super().persist_bulk_update(**kwargs)


@pytest.fixture(autouse=True)
def books(db: None) -> list[Book]:
    WatchedBackend.calls.clear()
    author = Author.objects.create(name="Mixin")
    return [Book.objects.create(title=f"M{i}", author=author, price=Decimal("1.00")) for i in range(3)]


def run_sync(view_class: type[ConfiguredView], admin_user: Any) -> BulkResult:
    view = view_class(role=Role.BULK_EDIT)
    view.request = RequestFactory().post("/")
    view.request.user = admin_user
    request = view.build_bulk_request(
        "update", fields_to_update=["status"], field_data={"status": "archived"}
    )
    return view.run_in_request(request, Book.objects.all(), 3)


@pytest.mark.parametrize("view_class", [ConfiguredView, HookCallsSuperView])
def test_a_sync_run_uses_the_backend_its_request_names_once(
    view_class: type[ConfiguredView], admin_user: Any
) -> None:
    result = run_sync(view_class, admin_user)
    assert result.success and result.success_records == 3
    assert [call[0] for call in WatchedBackend.calls] == ["scope", "write"]
    assert {call[1] for call in WatchedBackend.calls} == {WatchedBackend.calls[0][1]}  # one instance
    assert all(call[2] == {"from": "request"} for call in WatchedBackend.calls)  # as a worker builds it
    assert set(Book.objects.values_list("status", flat=True)) == {"archived"}


def test_the_worker_builds_the_same_backend_from_the_stored_request(admin_user: Any) -> None:
    view = ConfiguredView(role=Role.BULK_EDIT)
    view.request = RequestFactory().post("/")
    view.request.user = admin_user
    request = view.build_bulk_request(
        "update", fields_to_update=["status"], field_data={"status": "archived"}
    )
    stored = BulkRequest.from_dict(request.to_dict())
    backend = backend_for(stored)
    assert (type(backend), backend.config) == (WatchedBackend, {"from": "request"})


def test_outside_a_run_the_view_names_its_configured_backend() -> None:
    backend = ConfiguredView(role=Role.BULK_EDIT).get_bulk_update_backend()
    assert (type(backend), backend.config) == (WatchedBackend, {"from": "class"})
