"""The test app's URLconf: its CRUD screens (``/book/``, ``/shelf/``, ... in the ``testapp``
namespace), powercrud's task dashboard, the auth views and the admin."""

from django.contrib import admin
from django.urls import include, path

from tests.testapp.views import ALL_VIEWS

app_patterns = [pattern for view in ALL_VIEWS for pattern in view.get_urls()]

urlpatterns = [
    path("", include((app_patterns, "testapp"))),
    path("powercrud/", include("powercrud.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]
