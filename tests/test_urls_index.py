"""``powercrud.urls``' namespace root, and the favicon every base template links."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.views import serve
from django.test import Client, RequestFactory
from django.urls import include, path, resolve, reverse

FAVICON = "powercrud/favicon.svg"
FAVICON_LINK = '<link rel="icon" type="image/svg+xml" href="/static/powercrud/favicon.svg">'

# The dashboard mounted twice: the documented way, and under another instance namespace.
urlpatterns = [
    path("powercrud/", include("powercrud.urls")),
    path("ops/", include("powercrud.urls", namespace="ops")),
]


def test_the_namespace_root_is_named_index():
    match = resolve("/powercrud/")
    assert (match.namespace, match.url_name) == ("powercrud", "index")
    assert reverse("powercrud:index") == "/powercrud/"


@pytest.mark.django_db
def test_the_namespace_root_redirects_to_the_task_list(admin_client: Client):
    response = admin_client.get("/powercrud/")
    assert response.status_code == 302
    assert response["Location"] == reverse("powercrud:tasks-list") == "/powercrud/tasks/"
    assert admin_client.get(response["Location"]).status_code == 200


@pytest.mark.django_db
def test_the_redirect_does_not_need_a_signed_in_user():
    response = Client().get("/powercrud/")
    assert (response.status_code, response["Location"]) == (302, "/powercrud/tasks/")


@pytest.mark.urls(__name__)
def test_the_redirect_stays_in_the_instance_namespace():
    assert Client().get("/ops/")["Location"] == "/ops/tasks/"
    assert Client().get("/powercrud/")["Location"] == "/powercrud/tasks/"


def test_the_favicon_is_a_small_svg_the_finders_find():
    found = finders.find(FAVICON)
    assert found, "powercrud/static/powercrud/favicon.svg is missing"
    root = ET.parse(found).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("viewBox") == "0 0 32 32"


def test_the_favicon_is_served_as_svg():
    response = serve(RequestFactory().get(f"/static/{FAVICON}"), FAVICON, insecure=True)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"


@pytest.mark.django_db
def test_powercrud_base_template_links_the_favicon(admin_client: Client):
    page = admin_client.get(reverse("powercrud:tasks-list")).content.decode()
    assert FAVICON_LINK in page
