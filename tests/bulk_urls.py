"""A test URLconf: the test app plus views that exercise the bulk roles' edge cases.

The test app's views keep their ``testapp:`` namespace and URLs (``/book/``, ``/shelf/``, ...); the
test views below have no namespace and their own ``url_base``. Backends used by path live
here too, so ``resolve_backend_class("tests.bulk_urls.<Name>")`` finds them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from django.db.models import QuerySet

from powercrud.bulk import BulkContext, BulkResult, BulkUpdateService
from powercrud.bulk_persistence import BulkUpdatePersistenceBackend, DefaultBulkUpdatePersistenceBackend
from powercrud.mixins import PowerCRUDMixin
from powercrud.views import CRUDView
from tests.testapp.models import Author, Book
from tests.testapp.urls import urlpatterns as app_urlpatterns

BOOK_BULK_FIELDS = ["status", "genre", "author", "price", "is_available", "published_date", "tags"]
SCRIPT = "<script>alert(1)</script>"


# ----- backends named by path ----------------------------------------------------------------
class RecordingBackend(DefaultBulkUpdatePersistenceBackend):
    """The default backend, remembering every call (the arguments it was given)."""

    calls: ClassVar[list[dict[str, Any]]] = []

    def persist_bulk_update(self, **kwargs: Any) -> BulkResult:  # type: ignore[override]
        type(self).calls.append({**kwargs, "pks": sorted(kwargs["queryset"].values_list("pk", flat=True))})
        return super().persist_bulk_update(**kwargs)


class RefusingBackend(BulkUpdatePersistenceBackend):
    """Writes nothing and says so in the plain dict form, naming the first row."""

    def persist_bulk_update(
        self,
        *,
        queryset: QuerySet[Any],
        bulk_fields: Sequence[str],
        fields_to_update: Sequence[str],
        field_data: Mapping[str, Any],
        context: BulkContext,
        progress_callback: Any = None,
    ) -> dict[str, Any]:
        first = queryset.order_by("pk").values_list("pk", flat=True)[0]
        return {
            "success": False,
            "success_records": 0,
            "errors": [{"pk": first, "field": "status", "messages": [f"Refused by policy {SCRIPT}"]}],
        }


class WriteThenFailBackend(BulkUpdatePersistenceBackend):
    """Writes every row with the default service, then reports failure anyway."""

    def persist_bulk_update(self, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        result = BulkUpdateService().apply(**kwargs)
        return {
            "success": False,
            "success_records": result.success_records,
            "errors": [{"pk": None, "field": None, "messages": ["The ledger is closed."]}],
        }


class IgnoresDryRunBackend(BulkUpdatePersistenceBackend):
    """Writes with a plain ``QuerySet.update()`` whatever ``context.dry_run`` says."""

    def persist_bulk_update(
        self, *, queryset: QuerySet[Any], field_data: Mapping[str, Any], **kwargs: Any
    ) -> dict[str, Any]:  # type: ignore[override]
        count = queryset.update(**{name: value for name, value in field_data.items() if name == "status"})
        return {"success": True, "success_records": count, "errors": []}


# ----- views -----------------------------------------------------------------------------------
class PlainBookView(PowerCRUDMixin, CRUDView):
    """Books with the default persistence path (no backend path, no hook override)."""

    model = Book
    url_base = "plain-books"
    fields = ["title", "author", "status", "price"]
    filterset_fields = ["status", "author"]
    search_fields = ["title"]
    paginate_by = 10
    bulk_fields = BOOK_BULK_FIELDS
    bulk_delete = True


class MyBooksView(PlainBookView):
    """A user-scoped view: only books whose author's name is the user's first name."""

    url_base = "my-books"

    def get_queryset(self) -> QuerySet[Any]:
        return Book.objects.filter(author__name=self.request.user.first_name)  # type: ignore[union-attr]


class UnarchivedBooksView(PlainBookView):
    """A view scoped by a fixed filter: archived books are not part of it."""

    url_base = "unarchived-books"

    def get_queryset(self) -> QuerySet[Any]:
        return Book.objects.exclude(status=Book.Status.ARCHIVED)


class RecordingBookView(PlainBookView):
    url_base = "recorded-books"
    bulk_update_persistence_backend_path = "tests.bulk_urls.RecordingBackend"


class RefusingBookView(PlainBookView):
    url_base = "refused-books"
    bulk_update_persistence_backend_path = "tests.bulk_urls.RefusingBackend"


class WriteThenFailBookView(PlainBookView):
    url_base = "ledger-books"
    bulk_update_persistence_backend_path = "tests.bulk_urls.WriteThenFailBackend"


class IgnoresDryRunBookView(PlainBookView):
    url_base = "careless-books"
    bulk_update_persistence_backend_path = "tests.bulk_urls.IgnoresDryRunBackend"


class PerRowBookView(PlainBookView):
    """Per-row mode through the test app's backend (archived books cannot be re-priced)."""

    url_base = "per-row-books"
    bulk_atomic = False
    bulk_update_persistence_backend_path = "tests.testapp.backends.BookBulkUpdateBackend"


class RuleBookView(PlainBookView):
    """All-or-nothing through the test app's backend (archived books cannot be re-priced)."""

    url_base = "rule-books"
    bulk_update_persistence_backend_path = "tests.testapp.backends.BookBulkUpdateBackend"


class AsyncRuleBookView(RuleBookView):
    url_base = "async-rule-books"
    bulk_async = True
    bulk_min_async_records = 1


class LimitedChoicesBookView(PlainBookView):
    """``get_bulk_choices_queryset``: only authors from Italy or Nigeria may be chosen."""

    url_base = "limited-books"

    def get_bulk_choices_queryset(self, field_name: str, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if field_name == "author":
            return queryset.filter(country__in=["Italy", "Nigeria"])
        return queryset


HOLDS: dict[str, tuple[threading.Event, threading.Event, float]] = {}


def hold(name: str, seconds: float = 30) -> tuple[threading.Event, threading.Event]:
    """(arrived, release) for ``HeldBookView`` runs of user ``name``: after writing, a run signals
    ``arrived`` and keeps its transaction open until ``release`` is set or ``seconds`` pass."""
    arrived, release = threading.Event(), threading.Event()
    HOLDS[name] = (arrived, release, seconds)
    return arrived, release


class HeldBookView(PlainBookView):
    """Bulk runs in the request that pause after writing, inside their transaction (``hold``)."""

    url_base = "held-books"

    def _pause(self) -> None:
        found = HOLDS.get(self.request.user.get_username())
        if found is not None:
            arrived, release, seconds = found
            arrived.set()
            release.wait(seconds)

    def persist_bulk_update(self, **kwargs: Any) -> Any:
        result = super().persist_bulk_update(**kwargs)
        self._pause()
        return result

    def persist_bulk_delete(self, **kwargs: Any) -> Any:
        result = super().persist_bulk_delete(**kwargs)
        self._pause()
        return result


class AuthorBulkView(PowerCRUDMixin, CRUDView):
    """Authors with bulk delete; an author with books is protected (``on_delete=PROTECT``)."""

    model = Author
    url_base = "authors"
    fields = ["name", "country"]
    bulk_delete = True


class PerRowAuthorBulkView(AuthorBulkView):
    url_base = "per-row-authors"
    bulk_atomic = False


TEST_VIEWS = [
    PlainBookView,
    MyBooksView,
    UnarchivedBooksView,
    RecordingBookView,
    RefusingBookView,
    WriteThenFailBookView,
    IgnoresDryRunBookView,
    PerRowBookView,
    RuleBookView,
    AsyncRuleBookView,
    LimitedChoicesBookView,
    HeldBookView,
    AuthorBulkView,
    PerRowAuthorBulkView,
]

urlpatterns = [*app_urlpatterns, *[pattern for view in TEST_VIEWS for pattern in view.get_urls()]]


# ----- helpers shared by the bulk test modules ---------------------------------------------------
def selection_url(base: str) -> str:
    return f"/{base}/selection/"


def select(client: Any, base: str, pks: Sequence[Any], checked: bool = True) -> Any:
    """Tick (or untick) ``pks`` in the list at ``/<base>/``, as the row checkboxes do."""
    data = {"action": "set", "checked": "1" if checked else "0", "pk": [str(pk) for pk in pks]}
    return client.post(selection_url(base), data)


def select_all(client: Any, base: str, query: str = "") -> Any:
    """ "Select all matching" the list query string ``query``."""
    return client.post(selection_url(base), {"action": "all", "query": query})


BOOK_COLUMNS = (
    "title",
    "author_id",
    "genre_id",
    "status",
    "price",
    "published_date",
    "pages",
    "is_available",
)


def book_snapshot() -> dict[Any, dict[str, Any]]:
    """Every book's stored values (tags as sorted ids), to prove what a run wrote."""
    links: dict[Any, list[Any]] = {}
    for book_id, tag_id in Book.tags.through.objects.values_list("book_id", "tag_id"):
        links.setdefault(book_id, []).append(tag_id)
    return {
        row["pk"]: {
            **{name: row[name] for name in BOOK_COLUMNS},
            "tags": tuple(sorted(links.get(row["pk"], []))),
        }
        for row in Book.objects.values("pk", *BOOK_COLUMNS)
    }


def changes(before: dict[Any, dict[str, Any]], after: dict[Any, dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    """``{pk: {field: new value}}`` for every value that differs between two snapshots."""
    assert before.keys() == after.keys(), "rows were added or deleted"
    found = {}
    for pk, old in before.items():
        diff = {name: value for name, value in after[pk].items() if old[name] != value}
        if diff:
            found[pk] = diff
    return found
