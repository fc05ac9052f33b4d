"""URLs for ``bench.bulk_edit``: its own views under ``benchbulk:``, plus the demo's."""

from __future__ import annotations

from django.urls import include, path

from bench.bulk_views import BENCH_VIEWS
from sample.urls import urlpatterns as sample_urlpatterns

bench_patterns = [pattern for view in BENCH_VIEWS for pattern in view.get_urls()]

urlpatterns = [
    path("", include((bench_patterns, "benchbulk"))),
    *sample_urlpatterns,
]
