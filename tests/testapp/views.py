"""The test app's CRUD screens, one per model, under the ``testapp`` URL namespace.

``BookCRUDView`` runs bulk edits through ``tests.testapp.backends.BookBulkUpdateBackend`` (on a
worker) and the same service in its ``persist_bulk_update`` hook (in the request); shelves take
the per-object path with per-row transactions; assets have a UUID primary key.
"""

from __future__ import annotations

from powercrud.mixins import PowerCRUDMixin
from powercrud.views import CRUDView, Role
from tests.testapp.models import Asset, Author, Book, BulkAudit, Edition, Genre, Shelf, Tag
from tests.testapp.services import BookBulkUpdateService


class CatalogueCRUDView(PowerCRUDMixin, CRUDView):
    """The test app's base view (no model: no URLs or checks of its own): its own base
    template (``testapp/base.html``, which links the task dashboard) and URL namespace."""

    base_template_path = "testapp/base.html"
    namespace = "testapp"


class BookCRUDView(CatalogueCRUDView):
    model = Book
    fields = [
        "title",
        "author",
        "genre",
        "status",
        "price",
        "published_date",
        "pages",
        "is_available",
        "tags",
    ]
    properties = ["price_band"]
    filterset_fields = ["status", "genre", "author", "is_available"]
    search_fields = ["title", "author__name"]
    paginate_by = 25
    bulk_fields = ["status", "genre", "author", "price", "is_available", "published_date", "tags"]
    bulk_delete = True
    bulk_async = True
    bulk_update_persistence_backend_path = "tests.testapp.backends.BookBulkUpdateBackend"
    export_formats = ["csv", "xlsx", "json"]

    def persist_bulk_update(self, *, queryset, fields_to_update, field_data, progress_callback=None):
        return BookBulkUpdateService().apply(
            queryset=queryset,
            bulk_fields=self.get_bulk_fields(),
            fields_to_update=fields_to_update,
            field_data=field_data,
            context=self.get_bulk_context(),
            progress_callback=progress_callback,
        )


class AuthorCRUDView(CatalogueCRUDView):
    model = Author
    fields = ["name", "country", "birth_year"]
    properties = ["display_name"]
    filterset_fields = ["country"]
    search_fields = ["name", "country"]


class GenreCRUDView(CatalogueCRUDView):
    model = Genre
    fields = ["name"]
    search_fields = ["name"]


class TagCRUDView(CatalogueCRUDView):
    model = Tag
    fields = ["name"]
    search_fields = ["name"]


class ShelfCRUDView(CatalogueCRUDView):
    model = Shelf
    fields = ["name", "location", "capacity", "is_full"]
    filterset_fields = ["is_full"]
    search_fields = ["name", "location"]
    bulk_fields = ["location", "capacity", "is_full"]
    bulk_delete = True
    bulk_atomic = False


class AssetCRUDView(CatalogueCRUDView):
    model = Asset
    fields = ["code", "description", "in_service"]
    filterset_fields = ["in_service"]
    search_fields = ["code", "description"]
    bulk_fields = ["description", "in_service"]
    bulk_delete = True


class BulkAuditCRUDView(CatalogueCRUDView):
    """Read-only (list and detail roles only)."""

    model = BulkAudit
    fields = ["created", "mode", "task_name", "user_id", "model_label", "fields", "rows", "failed"]
    filterset_fields = ["mode"]
    url_base = "audit"

    @classmethod
    def get_roles(cls) -> list[Role]:
        return [Role.LIST, Role.DETAIL]


class EditionCRUDView(CatalogueCRUDView):
    """Import by upload (create, upsert on code + language, skip); editions in language "zz"
    are outside the view's scope."""

    model = Edition
    fields = ["code", "language", "title", "copies"]
    import_fields = ["code", "language", "title", "copies"]

    def get_queryset(self):
        return super().get_queryset().exclude(language="zz")


ALL_VIEWS = [
    BookCRUDView,
    AuthorCRUDView,
    GenreCRUDView,
    TagCRUDView,
    ShelfCRUDView,
    AssetCRUDView,
    BulkAuditCRUDView,
    EditionCRUDView,
]
