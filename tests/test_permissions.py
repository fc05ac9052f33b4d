"""Who may use which role: login redirects, 403s, hidden buttons, and the two override hooks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import include, path

from powercrud.mixins import PowerCRUDMixin
from powercrud.views import CRUDView, Role
from tests.conftest import HtmxClient
from tests.testapp.models import Book

pytestmark = pytest.mark.django_db

DENIED = "You do not have permission to do this."


def urls_for(book: Book, base: str = "/book/") -> dict[str, str]:
    return {
        "list": base,
        "detail": f"{base}{book.pk}/",
        "create": f"{base}new/",
        "update": f"{base}{book.pk}/edit/",
        "delete": f"{base}{book.pk}/delete/",
    }


def post_data(catalogue: dict[str, Any]) -> dict[str, Any]:
    return {"title": "Sneaky", "author": catalogue["authors"][0].pk, "status": "draft", "price": "1"}


def logged_in(user: Any, htmx: bool = False) -> Client:
    client = HtmxClient() if htmx else Client()
    client.force_login(user)
    return client


def assert_nothing_written(catalogue: dict[str, Any]) -> None:
    assert Book.objects.count() == 30
    assert not Book.objects.filter(title="Sneaky").exists()
    book = Book.objects.get(pk=catalogue["books"][0].pk)
    assert (book.title, book.price) == ("Book 00", Decimal("5.00"))


# ----- test views on their own URLconf ------------------------------------------------------
class PublicListBookView(PowerCRUDMixin, CRUDView):
    """``role_permissions``: anyone may list; changing a book is enough to delete one."""

    model = Book
    url_base = "public-books"
    fields = ["title", "author"]
    role_permissions = {"list": [], "delete": ["testapp.change_book"]}


class SuperuserDeleteBookView(PowerCRUDMixin, CRUDView):
    """``has_role_permission``: only superusers delete, whatever their model permissions."""

    model = Book
    url_base = "careful-books"
    fields = ["title", "author"]

    def has_role_permission(self, role: Role) -> bool:
        if role is Role.DELETE:
            return self.request.user.is_superuser
        return super().has_role_permission(role)


urlpatterns = [
    *PublicListBookView.get_urls(),
    *SuperuserDeleteBookView.get_urls(),
    path("accounts/", include("django.contrib.auth.urls")),
]
own_urls = pytest.mark.urls(__name__)


# ----- anonymous ----------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["list", "detail", "create", "update", "delete"])
def test_anonymous_get_redirects_to_login(client, catalogue, role):
    url = urls_for(catalogue["books"][0])[role]
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={url}"


@pytest.mark.parametrize("role", ["create", "update", "delete"])
def test_anonymous_post_redirects_to_login_and_writes_nothing(client, catalogue, role):
    url = urls_for(catalogue["books"][0])[role]
    response = client.post(url, post_data(catalogue))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    assert_nothing_written(catalogue)


@pytest.mark.parametrize("role", ["list", "detail", "create", "update", "delete"])
def test_anonymous_htmx_gets_hx_redirect_to_login(catalogue, role):
    url = urls_for(catalogue["books"][0])[role]
    response = HtmxClient().get(url)
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"/accounts/login/?next={url}"
    assert response.content == b""
    post = HtmxClient().post(url, post_data(catalogue))
    assert post["HX-Redirect"].startswith("/accounts/login/?next=")
    assert_nothing_written(catalogue)


# ----- no view permission -------------------------------------------------------------------
@pytest.mark.parametrize("role", ["list", "detail"])
def test_user_without_view_permission_gets_403(user_factory, catalogue, role):
    user = user_factory("stranger", "view_author")
    url = urls_for(catalogue["books"][0])[role]
    response = logged_in(user).get(url)
    assert response.status_code == 403
    page = response.content.decode()
    assert DENIED in page
    assert "<html" in page
    assert "Book 00" not in page
    htmx = logged_in(user, htmx=True).get(url)
    assert htmx.status_code == 403
    assert DENIED in htmx.content.decode()
    assert "<html" not in htmx.content.decode()
    assert logged_in(user).get("/author/").status_code == 200  # the permission is per model


# ----- view only ----------------------------------------------------------------------------
def test_view_only_list_hides_write_buttons(user_factory, catalogue):
    book = catalogue["books"][0]
    response = logged_in(user_factory("reader", "view_book")).get("/book/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "New book" not in page
    assert 'href="/book/new/"' not in page
    assert f'href="/book/{book.pk}/"' in page  # "View" stays
    assert "/edit/" not in page
    assert "/delete/" not in page
    assert ">Edit<" not in page
    assert ">Delete<" not in page
    assert all(
        row["update_url"] is None and row["delete_url"] is None for row in response.context_data["rows"]
    )
    assert "create" not in response.context_data["urls"]


def test_view_only_detail_hides_the_edit_button(user_factory, catalogue):
    book = catalogue["books"][0]
    response = logged_in(user_factory("reader", "view_book")).get(f"/book/{book.pk}/")
    assert response.status_code == 200
    assert f"/book/{book.pk}/edit/" not in response.content.decode()
    assert set(response.context_data["urls"]) == {"list", "detail"}


@pytest.mark.parametrize("htmx", [False, True])
@pytest.mark.parametrize("role", ["create", "update", "delete"])
def test_view_only_user_cannot_write(user_factory, catalogue, role, htmx):
    client = logged_in(user_factory("reader", "view_book"), htmx=htmx)
    url = urls_for(catalogue["books"][0])[role]
    get = client.get(url)
    post = client.post(url, post_data(catalogue))
    for response in (get, post):
        assert response.status_code == 403
        assert DENIED in response.content.decode()
        assert "HX-Trigger" not in response.headers
    assert_nothing_written(catalogue)


# ----- with write permissions ---------------------------------------------------------------
def test_add_permission_allows_create_only(user_factory, catalogue):
    client = logged_in(user_factory("adder", "view_book", "add_book"))
    listing = client.get("/book/").content.decode()
    assert 'href="/book/new/"' in listing
    assert "/edit/" not in listing
    assert client.get("/book/new/").status_code == 200
    assert client.post("/book/new/", post_data(catalogue)).status_code == 302
    assert Book.objects.filter(title="Sneaky").exists()
    book = catalogue["books"][1]
    assert client.post(f"/book/{book.pk}/edit/", post_data(catalogue)).status_code == 403
    assert client.post(f"/book/{book.pk}/delete/").status_code == 403
    assert Book.objects.get(pk=book.pk).title == "Book 01"


def test_change_permission_allows_update(user_factory, catalogue):
    client = logged_in(user_factory("changer", "view_book", "change_book"), htmx=True)
    book = catalogue["books"][1]
    listing = client.get("/book/").content.decode()
    assert f'href="/book/{book.pk}/edit/"' in listing
    assert "/delete/" not in listing
    assert "New book" not in listing
    assert client.get(f"/book/{book.pk}/edit/").status_code == 200
    response = client.post(f"/book/{book.pk}/edit/", {**post_data(catalogue), "title": "Changed"})
    assert response.status_code == 204
    assert Book.objects.get(pk=book.pk).title == "Changed"
    assert client.post("/book/new/", post_data(catalogue)).status_code == 403


def test_delete_permission_allows_delete(user_factory, catalogue):
    client = logged_in(user_factory("deleter", "view_book", "delete_book"))
    book = catalogue["books"][1]
    assert f'href="/book/{book.pk}/delete/"' in client.get("/book/").content.decode()
    assert client.get(f"/book/{book.pk}/delete/").status_code == 200
    assert client.post(f"/book/{book.pk}/delete/").status_code == 302
    assert not Book.objects.filter(pk=book.pk).exists()


def test_write_permission_without_view_permission_is_enough_for_that_role(user_factory, catalogue):
    client = logged_in(user_factory("blind-adder", "add_book"))
    assert client.get("/book/").status_code == 403
    assert client.post("/book/new/", post_data(catalogue)).status_code == 302
    assert Book.objects.filter(title="Sneaky").exists()


def test_all_permissions_show_every_button(user_factory, catalogue):
    user = user_factory("clerk", "view_book", "add_book", "change_book", "delete_book")
    page = logged_in(user).get("/book/").content.decode()
    book = catalogue["books"][0]
    for href in ("/book/new/", f"/book/{book.pk}/", f"/book/{book.pk}/edit/", f"/book/{book.pk}/delete/"):
        assert f'href="{href}"' in page


# ----- overrides ----------------------------------------------------------------------------
@own_urls
def test_role_permissions_override(client, user_factory, catalogue):
    book = catalogue["books"][2]
    # "list": [] needs no permission at all, so even an anonymous visitor sees the list.
    public = client.get("/public-books/")
    assert public.status_code == 200
    assert "Book 02" in public.content.decode()
    assert "/edit/" not in public.content.decode()
    assert client.get(f"/public-books/{book.pk}/").status_code == 302  # detail keeps its default

    changer = logged_in(user_factory("changer", "change_book"))
    assert f'href="/public-books/{book.pk}/delete/"' in changer.get("/public-books/").content.decode()
    assert changer.post(f"/public-books/{book.pk}/delete/").status_code == 302
    assert not Book.objects.filter(pk=book.pk).exists()

    deleter = logged_in(user_factory("deleter", "view_book", "delete_book"))
    other = catalogue["books"][3]
    assert deleter.post(f"/public-books/{other.pk}/delete/").status_code == 403
    assert Book.objects.filter(pk=other.pk).exists()


@own_urls
def test_has_role_permission_override(user_factory, admin_client, catalogue):
    book = catalogue["books"][4]
    user = user_factory("clerk", "view_book", "add_book", "change_book", "delete_book")
    clerk = logged_in(user)
    listing = clerk.get("/careful-books/").content.decode()
    assert f'href="/careful-books/{book.pk}/edit/"' in listing
    assert "/delete/" not in listing  # the flags behind the buttons ask the same hook
    assert clerk.get(f"/careful-books/{book.pk}/delete/").status_code == 403
    assert clerk.post(f"/careful-books/{book.pk}/delete/").status_code == 403
    assert Book.objects.filter(pk=book.pk).exists()
    assert admin_client.post(f"/careful-books/{book.pk}/delete/").status_code == 302
    assert not Book.objects.filter(pk=book.pk).exists()


def test_get_role_permissions_defaults_to_model_permissions(rf, admin_user):
    from tests.testapp.views import BookCRUDView

    view = BookCRUDView(role=Role.LIST)
    view.setup(rf.get("/book/"))
    assert view.get_role_permissions(Role.LIST) == ["testapp.view_book"]
    assert view.get_role_permissions(Role.DETAIL) == ["testapp.view_book"]
    assert view.get_role_permissions(Role.CREATE) == ["testapp.add_book"]
    assert view.get_role_permissions(Role.UPDATE) == ["testapp.change_book"]
    assert view.get_role_permissions(Role.DELETE) == ["testapp.delete_book"]
    assert PublicListBookView().get_role_permissions(Role.DELETE) == ["testapp.change_book"]
    assert PublicListBookView().get_role_permissions(Role.LIST) == []
