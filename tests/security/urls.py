"""The security suite's URLconf: everything in ``tests.bulk_urls`` plus views that run bulk
work on a worker from the first row, views that restrict choices, and backends that fail.

Async views set ``bulk_min_async_records = 1``, so one selected row already goes through
``launch_bulk_task`` (task record, row locks, enqueue after commit); tests then run the
worker in-process with ``powercrud.jobs.worker.run_bulk_task(task_id)``. The backends are named
by dotted path (``tests.security.urls.<Name>``), as a worker resolves them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from powercrud.bulk import BulkContext
from powercrud.bulk_persistence import BulkUpdatePersistenceBackend, DefaultBulkUpdatePersistenceBackend
from powercrud.mixins import PowerCRUDMixin
from powercrud.views import CRUDView
from tests.bulk_urls import MyBooksView, PlainBookView, UnarchivedBooksView
from tests.bulk_urls import urlpatterns as bulk_urlpatterns
from tests.testapp.models import Asset, Shelf

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
SECRET = "secret internals: password=hunter2"
FORMULAS = ("=1+2", "+1+2", "-1+2", "@SUM(A1)", "\tTAB", "\rCR")


# ----- backends named by path ----------------------------------------------------------------
class ScriptErrorBackend(BulkUpdatePersistenceBackend):
    """Writes nothing; fails every row with markup and spreadsheet formulas in its messages."""

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
        pks = list(queryset.order_by("pk").values_list("pk", flat=True))
        errors = [
            {
                "pk": pk,
                "field": FORMULAS[i % len(FORMULAS)],
                "messages": [f"{FORMULAS[i % len(FORMULAS)]} {SCRIPT}"],
            }
            for i, pk in enumerate(pks)
        ]
        return {"success": False, "success_records": 0, "errors": errors, "message": f"Refused: {SCRIPT}"}


class ExplodingBackend(DefaultBulkUpdatePersistenceBackend):
    """Writes every row, then raises an error whose text must never reach a page."""

    def persist_bulk_update(self, **kwargs: Any) -> Any:
        super().persist_bulk_update(**kwargs)
        raise RuntimeError(f"{SECRET} {SCRIPT}")


class MyBooksBackend(DefaultBulkUpdatePersistenceBackend):
    """Re-applies ``MyBooksView``'s scope (books by the author named like the user) from the
    context alone, as a worker can."""

    def scope_queryset(self, queryset: QuerySet[Any], *, context: BulkContext) -> QuerySet[Any]:
        user = get_user_model()._default_manager.filter(pk=context.user_id).first()
        if user is None:
            return queryset.none()
        return queryset.filter(author__name=user.first_name)


# ----- views -------------------------------------------------------------------------------------
class LimitedBooksView(PlainBookView):
    """``get_bulk_choices_queryset``: authors from Italy or Nigeria, and no "signed" tag."""

    url_base = "limited-choice-books"

    def get_bulk_choices_queryset(self, field_name: str, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if field_name == "author":
            return queryset.filter(country__in=["Italy", "Nigeria"])
        if field_name == "tags":
            return queryset.exclude(name="signed")
        return queryset


class AsyncBooksView(PlainBookView):
    url_base = "async-books"
    bulk_async = True
    bulk_min_async_records = 1


class AsyncLimitedBooksView(LimitedBooksView):
    url_base = "async-limited-books"
    bulk_async = True
    bulk_min_async_records = 1


class AsyncMyBooksView(MyBooksView):
    url_base = "async-my-books"
    bulk_async = True
    bulk_min_async_records = 1


class RescopedMyBooksView(MyBooksView):
    """``my-books`` whose backend re-applies the scope: sync below 3 rows, on a worker from 3."""

    url_base = "rescoped-my-books"
    bulk_async = True
    bulk_min_async_records = 3
    bulk_update_persistence_backend_path = "tests.security.urls.MyBooksBackend"


class RescopedPerRowMyBooksView(RescopedMyBooksView):
    url_base = "rescoped-per-row-my-books"
    bulk_atomic = False


class AsyncUnarchivedBooksView(UnarchivedBooksView):
    url_base = "async-unarchived-books"
    bulk_async = True
    bulk_min_async_records = 1


class ScriptErrorBooksView(PlainBookView):
    url_base = "script-error-books"
    bulk_async = True
    bulk_min_async_records = 1
    bulk_update_persistence_backend_path = "tests.security.urls.ScriptErrorBackend"


class ExplodingBooksView(PlainBookView):
    """Sync below 5 rows, async from 5: the same crashing backend both ways."""

    url_base = "exploding-books"
    bulk_async = True
    bulk_min_async_records = 5
    bulk_update_persistence_backend_path = "tests.security.urls.ExplodingBackend"


class AsyncShelvesView(PowerCRUDMixin, CRUDView):
    """Shelves (a model ``clean()`` rule) all-or-nothing on a worker."""

    model = Shelf
    url_base = "async-shelves"
    fields = ["name", "location", "capacity", "is_full"]
    bulk_fields = ["location", "capacity", "is_full"]
    bulk_delete = True
    bulk_async = True
    bulk_min_async_records = 1


class AsyncAssetsView(PowerCRUDMixin, CRUDView):
    """A UUID primary key on a worker."""

    model = Asset
    url_base = "async-assets"
    fields = ["code", "description", "in_service"]
    bulk_fields = ["description", "in_service"]
    bulk_delete = True
    bulk_async = True
    bulk_min_async_records = 1


SECURITY_VIEWS = [
    LimitedBooksView,
    AsyncBooksView,
    AsyncLimitedBooksView,
    AsyncMyBooksView,
    RescopedMyBooksView,
    RescopedPerRowMyBooksView,
    AsyncUnarchivedBooksView,
    ScriptErrorBooksView,
    ExplodingBooksView,
    AsyncShelvesView,
    AsyncAssetsView,
]

urlpatterns = [*bulk_urlpatterns, *[pattern for view in SECURITY_VIEWS for pattern in view.get_urls()]]
