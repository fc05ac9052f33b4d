"""The baseline: what a Django developer writes by hand for the same book list.

Same rows, order, page size, joins and columns as ``sample.views.BookCRUDView``'s list, with the
same ``?status=`` filter and ``?sort=`` column sort, and no powercrud code at all.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.mixins import PermissionRequiredMixin
from django.db.models import QuerySet
from django.views.generic import ListView

from sample.models import Book
from sample.views import BookCRUDView

SORTABLE = {"title", "price", "published_date", "pages", "status", "is_available"}


class PlainBookListView(PermissionRequiredMixin, ListView):  # type: ignore[type-arg]
    model = Book
    paginate_by = BookCRUDView.paginate_by
    permission_required = "sample.view_book"
    template_name = "bench/plain_book_list.html"

    def get_queryset(self) -> QuerySet[Book]:
        queryset = Book.objects.select_related("author", "genre").prefetch_related("tags")
        status = self.request.GET.get("status")
        if status:
            queryset = queryset.filter(status=status)
        sort = self.request.GET.get("sort", "")
        if sort.lstrip("-") in SORTABLE:
            return queryset.order_by(sort, "pk")
        return queryset.order_by("title", "pk")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["status_choices"] = Book.Status.choices
        return context
