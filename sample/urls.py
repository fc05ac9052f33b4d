from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from sample.views import ALL_VIEWS

app_patterns = [pattern for view in ALL_VIEWS for pattern in view.get_urls()]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="sample:book-list", permanent=False), name="home"),
    path("", include((app_patterns, "sample"))),
    path("powercrud/", include("powercrud.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]
