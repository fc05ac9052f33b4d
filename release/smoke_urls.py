"""URLs for the release smoke project: powercrud's own pages under the documented prefix."""

from django.urls import include, path

urlpatterns = [path("powercrud/", include("powercrud.urls"))]
