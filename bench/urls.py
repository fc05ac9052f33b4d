"""The demo's URLs plus the plain-Django baseline list at ``/bench/plain-books/``."""

from __future__ import annotations

from django.urls import path

from bench.views import PlainBookListView
from sample.urls import urlpatterns as sample_urlpatterns

urlpatterns = [
    path("bench/plain-books/", PlainBookListView.as_view(), name="bench-plain-books"),
    *sample_urlpatterns,
]
