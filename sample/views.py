"""The demo's CRUD screens, one per model."""

from __future__ import annotations

from powercrud.mixins import PowerCRUDMixin
from powercrud.views import CRUDView, Role
from sample.models import Asset, Author, Book, BulkAudit, Genre, Shelf, Tag
from sample.services import BookBulkUpdateService


class SampleCRUDMixin(PowerCRUDMixin, CRUDView):
    """The demo's base view: ``PowerCRUDMixin`` + ``CRUDView``, the demo's base template
    with navigation, and the ``sample`` URL namespace.

    Despite its name it is a complete view base (the async bulk persistence guide writes
    ``class BookCRUDView(SampleCRUDMixin)``), so subclasses list it alone. It sets no
    ``model``, so it has no URLs or checks of its own.
    """

    base_template_path = "sample/base.html"
    namespace = "sample"


class BookCRUDView(SampleCRUDMixin):
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
    bulk_async = True  # selections of BULK_MIN_ASYNC_RECORDS (1,000) rows or more run on a worker
    bulk_update_persistence_backend_path = "sample.backends.BookBulkUpdateBackend"
    # Edit a row in place (Enter saves, Esc cancels); the rest of the form stays in the modal.
    inline_edit_fields = ["title", "status", "price", "is_available"]
    # Offered to every user in the list's Views menu, next to their own saved views.
    saved_views = [("Drafts, dearest first", "?status=draft&sort=-price")]
    # Download what the list shows (or the selection): its Export menu.
    export_formats = ["csv", "xlsx", "json"]
    # Upload a CSV, Excel or JSON file of books (an export of this list imports back).
    import_fields = fields  # every column the list shows

    def persist_bulk_update(self, *, queryset, fields_to_update, field_data, progress_callback=None):
        """The sync hook: the same service the worker-side backend calls."""
        return BookBulkUpdateService().apply(
            queryset=queryset,
            bulk_fields=self.get_bulk_fields(),
            fields_to_update=fields_to_update,
            field_data=field_data,
            context=self.get_bulk_context(),
            progress_callback=progress_callback,
        )


class AuthorCRUDView(SampleCRUDMixin):
    model = Author
    fields = ["name", "country", "birth_year"]
    properties = ["display_name"]
    filterset_fields = ["country"]
    search_fields = ["name", "country"]


class GenreCRUDView(SampleCRUDMixin):
    model = Genre
    fields = ["name"]
    search_fields = ["name"]


class TagCRUDView(SampleCRUDMixin):
    model = Tag
    fields = ["name"]
    search_fields = ["name"]


class ShelfCRUDView(SampleCRUDMixin):
    model = Shelf
    fields = ["name", "location", "capacity", "is_full"]
    filterset_fields = ["is_full"]
    search_fields = ["name", "location"]
    # Shelf has a post_save receiver and a clean(): bulk edits take the per-object path.
    bulk_fields = ["location", "capacity", "is_full"]
    bulk_delete = True
    bulk_atomic = False


class AssetCRUDView(SampleCRUDMixin):
    model = Asset
    fields = ["code", "description", "in_service"]
    filterset_fields = ["in_service"]
    search_fields = ["code", "description"]
    bulk_fields = ["description", "in_service"]
    bulk_delete = True


class BulkAuditCRUDView(SampleCRUDMixin):
    """Read-only: shows that the same service rule ran in sync and async mode (mode, task, user)."""

    model = BulkAudit
    fields = ["created", "mode", "task_name", "user_id", "model_label", "fields", "rows", "failed"]
    filterset_fields = ["mode"]
    url_base = "audit"

    @classmethod
    def get_roles(cls) -> list[Role]:
        return [Role.LIST, Role.DETAIL]


ALL_VIEWS = [
    BookCRUDView,
    AuthorCRUDView,
    GenreCRUDView,
    TagCRUDView,
    ShelfCRUDView,
    AssetCRUDView,
    BulkAuditCRUDView,
]
