"""The views ``bench.bulk_edit`` drives: powercrud's default bulk service, nothing on top.

``sample.views.BookCRUDView`` adds an application rule (a per-row ``validate_row``), which
forces a per-row read; these views use the library defaults so the benchmark measures the
set-based path on ``Book`` and the per-object path on ``Shelf`` (post_save receiver).
"""

from __future__ import annotations

from powercrud.mixins import PowerCRUDMixin
from powercrud.views import CRUDView
from sample.models import Book, Shelf


class BenchBookView(PowerCRUDMixin, CRUDView):
    """Book, all-or-nothing (the default mode): set-based ``UPDATE`` per batch."""

    model = Book
    url_base = "bench-book"
    namespace = "benchbulk"
    fields = ["title", "status", "is_available"]
    filterset_fields = ["status"]
    bulk_fields = ["status", "is_available"]


class BenchBookPerRowModeView(BenchBookView):
    """Book in per-row mode (``bulk_atomic = False``): one transaction per batch."""

    url_base = "bench-book-per-row"
    bulk_atomic = False


class BenchShelfView(PowerCRUDMixin, CRUDView):
    """Shelf has a post_save receiver (and ``clean()``): the per-object ``save()`` path."""

    model = Shelf
    url_base = "bench-shelf"
    namespace = "benchbulk"
    fields = ["name", "location", "capacity", "is_full"]
    filterset_fields = ["location"]
    bulk_fields = ["location", "is_full"]


class BenchShelfPerRowModeView(BenchShelfView):
    url_base = "bench-shelf-per-row"
    bulk_atomic = False


class BenchBookUndoView(BenchBookView):
    """Book for ``bench.undo``: price too, bulk delete on, every run in the request."""

    url_base = "bench-book-undo"
    bulk_fields = ["status", "is_available", "price"]
    bulk_delete = True
    bulk_min_async_records = 10**9


BENCH_VIEWS = [
    BenchBookView,
    BenchBookPerRowModeView,
    BenchShelfView,
    BenchShelfPerRowModeView,
    BenchBookUndoView,
]
