"""The documentation's examples work when copied into the sample project.

The async bulk persistence guide (``docs/guides/async-bulk-persistence.md``) shows a view
written as ``class BookCRUDView(SampleCRUDMixin)`` with only the async attributes and the
backend path. That has to be a complete CRUD view: it gets URLs, serves its list, and names a
backend that resolves. The backend and view snippets in the guide must match the real code.
"""

from __future__ import annotations

import inspect
import re
import types
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import include, path

from powercrud.bulk_persistence import BulkUpdatePersistenceBackend, resolve_backend_class
from powercrud.checks import check_view
from powercrud.mixins import PowerCRUDMixin
from powercrud.views import CRUDView, registry
from sample.backends import BookBulkUpdateBackend
from sample.models import Author, Book, BulkAudit
from sample.views import ALL_VIEWS, BookCRUDView, SampleCRUDMixin

DOCS = Path(__file__).resolve().parents[2] / "docs"
GUIDE = DOCS / "guides" / "async-bulk-persistence.md"


pytestmark = pytest.mark.demo


def python_blocks(text: str) -> list[str]:
    """The fenced Python examples of a Markdown page."""
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.fixture(autouse=True)
def _forget_test_views():
    before = list(registry)
    yield
    registry[:] = before


def guide_view_class() -> type:
    """The guide's view, as a reader would paste it into ``sample/views.py``."""

    class GuideBookCRUDView(SampleCRUDMixin):
        model = Book
        fields = ["title", "author", "status", "price"]
        bulk_fields = ["status", "price"]
        bulk_async = True
        bulk_update_persistence_backend_path = "sample.backends.BookBulkUpdateBackend"

    return GuideBookCRUDView


def urlconf_with(view: type) -> types.ModuleType:
    """The sample's URLconf with ``view`` serving the book screens instead of BookCRUDView."""
    patterns = [p for v in ALL_VIEWS if v is not BookCRUDView for p in v.get_urls()]
    patterns += view.get_urls()
    module = types.ModuleType("guide_urls")
    module.urlpatterns = [
        path("", include((patterns, "sample"))),
        path("powercrud/", include("powercrud.urls")),
        path("accounts/", include("django.contrib.auth.urls")),
    ]
    return module


def test_the_sample_base_class_is_a_complete_view():
    assert issubclass(SampleCRUDMixin, PowerCRUDMixin)
    assert issubclass(SampleCRUDMixin, CRUDView)
    for view in ALL_VIEWS:
        assert view.__bases__ == (SampleCRUDMixin,), f"{view.__name__} lists its bases twice"


@pytest.mark.django_db
def test_the_guide_view_on_sample_crud_mixin_serves_its_list(settings):
    view = guide_view_class()
    assert {p.name for p in view.get_urls()} >= {"book-list", "book-bulk-edit", "book-selection"}
    settings.ROOT_URLCONF = urlconf_with(view)
    author = Author.objects.create(name="Ursula Le Guin")
    Book.objects.create(title="The Dispossessed", author=author, price="9.50")
    client = Client()
    client.force_login(User.objects.create_superuser("guide", password="pw"))
    response = client.get("/book/")
    assert response.status_code == 200
    assert "The Dispossessed" in response.content.decode()


def test_the_guide_view_passes_the_system_checks():
    assert check_view(guide_view_class()) == []


def test_the_guide_backend_path_resolves():
    paths = re.findall(r'bulk_update_persistence_backend_path = "([^"]+)"', GUIDE.read_text())
    assert paths, "the guide names no backend path"
    for dotted in paths:
        assert resolve_backend_class(dotted) is BookBulkUpdateBackend


def test_the_guide_backend_signature_is_the_contract():
    (block,) = [b for b in python_blocks(GUIDE.read_text()) if "(BulkUpdatePersistenceBackend):" in b]
    namespace: dict[str, Any] = {}
    exec(compile(block, str(GUIDE), "exec"), namespace)
    contract = inspect.signature(BulkUpdatePersistenceBackend.persist_bulk_update).parameters
    for backend in (namespace["BookBulkUpdateBackend"], BookBulkUpdateBackend):
        found = inspect.signature(backend.persist_bulk_update).parameters
        assert list(found) == list(contract)
        assert all(found[name].kind is contract[name].kind for name in contract)
        assert found["progress_callback"].default is None


def test_the_guide_uses_the_real_import_paths():
    text = GUIDE.read_text()
    for line in (
        "from powercrud.bulk_persistence import BulkUpdatePersistenceBackend",
        "from sample.services import BookBulkUpdateService",
        "from sample.views import SampleCRUDMixin",
    ):
        assert line in text, line


@pytest.mark.django_db
def test_the_guide_calls_the_backend_from_plain_code(catalogue, capsys):
    (block,) = [b for b in python_blocks(GUIDE.read_text()) if "run_bulk_update(" in b]
    namespace: dict[str, Any] = {}
    exec(compile(block, str(GUIDE), "exec"), namespace)
    result = namespace["result"]
    assert result.message == "Updated 8 of 8 rows (8 changed)."
    assert capsys.readouterr().out.strip() == result.message
    assert not Book.objects.filter(status="draft").exists()
    assert BulkAudit.objects.get().mode == "sync"
