"""A test URLconf: the test app plus a book list with inline editing, the column chooser,
saved views and stored display settings turned on (``/ibook/``), one with them off
(``/plainbook/``) and one anyone may open (``/openbook/``)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from powercrud.mixins import PowerCRUDMixin
from powercrud.views import CRUDView
from tests.testapp.models import Book
from tests.testapp.urls import urlpatterns as app_urlpatterns


class InlineBookView(PowerCRUDMixin, CRUDView):
    model = Book
    url_base = "ibook"
    base_template_path = "testapp/base.html"
    fields = ["title", "author", "status", "price", "pages", "is_available", "tags"]
    properties = ["price_band"]
    filterset_fields = ["status"]
    search_fields = ["title"]
    paginate_by = 10
    bulk_fields = ["status", "price"]
    inline_edit_fields = ["title", "status", "price", "is_available"]
    saved_views = [("Drafts by price", "?status=draft&sort=-price")]

    def get_queryset(self) -> QuerySet[Any]:
        """Staff see every book; everyone else only the available ones (so links are re-scoped)."""
        queryset = super().get_queryset()
        return queryset if self.request.user.is_staff else queryset.filter(is_available=True)


class PlainBookView(InlineBookView):
    """The same list without any of the four features (the query-count baseline)."""

    url_base = "plainbook"
    inline_edit_fields = ()
    column_chooser = False
    allow_saved_views = False
    remember_display = False
    saved_views = ()


class OpenBookView(InlineBookView):
    """The same list open to anyone, signed in or not, on powercrud's own base template."""

    url_base = "openbook"
    base_template_path = None
    role_permissions = {"list": [], "detail": []}


urlpatterns = [
    *app_urlpatterns,
    *InlineBookView.get_urls(),
    *PlainBookView.get_urls(),
    *OpenBookView.get_urls(),
]
