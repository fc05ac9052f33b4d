"""The demo's CRUD screens, one per model."""

from __future__ import annotations

from powercrud.mixins import PowerCRUDMixin
from powercrud.views import CRUDView
from sample.models import Asset, Author, Book, Genre, Shelf, Tag


class SampleCRUDMixin(PowerCRUDMixin):
    """Shared settings for the demo: its own base template with navigation."""

    base_template_path = "sample/base.html"
    namespace = "sample"


class BookCRUDView(SampleCRUDMixin, CRUDView):
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


class AuthorCRUDView(SampleCRUDMixin, CRUDView):
    model = Author
    fields = ["name", "country", "birth_year"]
    properties = ["display_name"]
    filterset_fields = ["country"]
    search_fields = ["name", "country"]


class GenreCRUDView(SampleCRUDMixin, CRUDView):
    model = Genre
    fields = ["name"]
    search_fields = ["name"]


class TagCRUDView(SampleCRUDMixin, CRUDView):
    model = Tag
    fields = ["name"]
    search_fields = ["name"]


class ShelfCRUDView(SampleCRUDMixin, CRUDView):
    model = Shelf
    fields = ["name", "location", "capacity", "is_full"]
    filterset_fields = ["is_full"]
    search_fields = ["name", "location"]


class AssetCRUDView(SampleCRUDMixin, CRUDView):
    model = Asset
    fields = ["code", "description", "in_service"]
    filterset_fields = ["in_service"]
    search_fields = ["code", "description"]


ALL_VIEWS = [BookCRUDView, AuthorCRUDView, GenreCRUDView, TagCRUDView, ShelfCRUDView, AssetCRUDView]
