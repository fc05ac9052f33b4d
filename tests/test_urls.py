"""``Role`` and ``CRUDView.get_urls()``: names, routes, converters, and ``as_view()`` errors."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import resolve, reverse

from powercrud.views import CRUDView, Role, registry
from tests.testapp.models import Asset, Author, Book, Tag
from tests.testapp.views import AssetCRUDView, BookCRUDView

CRUD_ROLES = [Role.LIST, Role.CREATE, Role.DETAIL, Role.UPDATE, Role.DELETE]


@pytest.fixture(autouse=True)
def _forget_test_views():
    before = list(registry)
    yield
    registry[:] = before


def routes(patterns) -> dict[str, str]:
    return {p.name: str(p.pattern) for p in patterns}


class PlainTagView(CRUDView):
    model = Tag
    fields = ["name"]


class ReadOnlyAuthorView(CRUDView):
    """Drops the write roles: no URLs and no buttons for them."""

    model = Author
    url_base = "authors-ro"
    fields = ["name"]

    @classmethod
    def get_roles(cls) -> list[Role]:
        return [Role.LIST, Role.DETAIL]


urlpatterns = [*PlainTagView.get_urls(), *ReadOnlyAuthorView.get_urls()]


def test_plain_view_has_exactly_the_five_crud_urls_and_relation_search():
    assert routes(PlainTagView.get_urls()) == {
        "tag-list": "tag/",
        "tag-create": "tag/new/",
        "tag-detail": "tag/<int:pk>/",
        "tag-update": "tag/<int:pk>/edit/",
        "tag-delete": "tag/<int:pk>/delete/",
        "tag-relation": "tag/relation/<str:field>/",
    }
    assert PlainTagView.get_roles() == [*CRUD_ROLES, Role.RELATION]


def test_book_view_urls():
    found = routes(BookCRUDView.get_urls())
    expected = {
        "book-list": "book/",
        "book-create": "book/new/",
        "book-detail": "book/<int:pk>/",
        "book-update": "book/<int:pk>/edit/",
        "book-delete": "book/<int:pk>/delete/",
    }
    assert expected.items() <= found.items()


def test_uuid_primary_key_gets_the_uuid_converter():
    assert AssetCRUDView.get_path_converter() == "uuid"
    assert routes(AssetCRUDView.get_urls(roles=[Role.DETAIL])) == {"asset-detail": "asset/<uuid:pk>/"}
    assert BookCRUDView.get_path_converter() == "int"


def test_url_base_and_path_converter_overrides():
    class Renamed(CRUDView):
        model = Book
        url_base = "library/books"
        path_converter = "slug"

    assert routes(Renamed.get_urls(roles=[Role.LIST, Role.UPDATE])) == {
        "library/books-list": "library/books/",
        "library/books-update": "library/books/<slug:pk>/edit/",
    }


def test_get_urls_for_some_roles_only():
    patterns = PlainTagView.get_urls(roles=[Role.DETAIL, Role.LIST])
    assert [p.name for p in patterns] == ["tag-detail", "tag-list"]


def test_each_url_serves_its_role():
    for pattern in PlainTagView.get_urls():
        view_class = pattern.callback.view_class
        assert view_class is PlainTagView
        assert pattern.callback.view_initkwargs == {"role": Role(pattern.name.removeprefix("tag-"))}


def test_app_urls_resolve_and_reverse():
    assert reverse("testapp:book-list") == "/book/"
    assert reverse("testapp:book-create") == "/book/new/"
    assert reverse("testapp:book-detail", kwargs={"pk": 3}) == "/book/3/"
    assert reverse("testapp:book-update", kwargs={"pk": 3}) == "/book/3/edit/"
    assert reverse("testapp:book-delete", kwargs={"pk": 3}) == "/book/3/delete/"
    match = resolve("/book/3/edit/")
    assert (match.namespace, match.url_name, match.kwargs) == ("testapp", "book-update", {"pk": 3})
    assert match.func.view_initkwargs == {"role": Role.UPDATE}


def test_role_enum():
    assert [r.value for r in CRUD_ROLES] == ["list", "create", "detail", "update", "delete"]
    assert Role.UPDATE.url_name("book") == "book-update"
    assert [r.template_suffix for r in CRUD_ROLES] == ["list", "form", "detail", "form", "confirm_delete"]
    assert [r.permission_action for r in CRUD_ROLES] == ["view", "add", "view", "change", "delete"]
    assert [r.needs_object for r in CRUD_ROLES] == [False, False, True, True, True]
    assert Role.LIST.handlers == {"get": "list"}
    assert Role.DELETE.handlers == {"get": "confirm_delete", "post": "process_deletion"}
    assert not any(r.is_bulk for r in CRUD_ROLES)


def test_template_names_put_the_per_model_template_first(rf):
    view = BookCRUDView(role=Role.UPDATE)
    view.setup(rf.get("/"), pk=1)
    assert view.get_template_names() == ["testapp/book_form.html", "powercrud/object_form.html"]
    view.role = Role.DELETE
    assert view.get_template_names() == [
        "testapp/book_confirm_delete.html",
        "powercrud/object_confirm_delete.html",
    ]


# ----- as_view() errors ---------------------------------------------------------------------
@pytest.mark.parametrize("role", [None, "list", 1])
def test_as_view_without_a_role_is_improperly_configured(role):
    kwargs = {} if role is None else {"role": role}
    with pytest.raises(ImproperlyConfigured) as excinfo:
        BookCRUDView.as_view(**kwargs)
    assert str(excinfo.value) == (
        "BookCRUDView.as_view() needs role=Role.<NAME>; "
        "use BookCRUDView.get_urls() to get every URL pattern at once."
    )


def test_as_view_without_a_model_is_improperly_configured():
    class NoModel(CRUDView):
        pass

    with pytest.raises(ImproperlyConfigured) as excinfo:
        NoModel.as_view(role=Role.LIST)
    assert str(excinfo.value) == "NoModel needs a `model` attribute."


def test_as_view_rejects_unknown_init_arguments():
    with pytest.raises(TypeError, match="received an invalid keyword 'colour'"):
        BookCRUDView.as_view(role=Role.LIST, colour="red")


# ----- requests against the URLs -----------------------------------------------------------
@pytest.mark.django_db
def test_wrong_http_method_is_405(admin_client, catalogue):
    book = catalogue["books"][0]
    assert admin_client.post("/book/").status_code == 405
    assert admin_client.post(f"/book/{book.pk}/").status_code == 405
    assert admin_client.put(f"/book/{book.pk}/edit/").status_code == 405
    assert admin_client.delete(f"/book/{book.pk}/delete/").status_code == 405
    assert Book.objects.count() == 30


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_dropped_roles_have_no_urls_and_no_buttons(admin_client):
    author = Author.objects.create(name="Only Reader")
    assert routes(ReadOnlyAuthorView.get_urls()) == {
        "authors-ro-list": "authors-ro/",
        "authors-ro-detail": "authors-ro/<int:pk>/",
    }
    response = admin_client.get("/authors-ro/")
    page = response.content.decode()
    assert response.status_code == 200
    assert f'href="/authors-ro/{author.pk}/"' in page
    assert "/edit/" not in page and "/delete/" not in page and "/new/" not in page
    assert admin_client.get(f"/authors-ro/{author.pk}/edit/").status_code == 404
    detail = admin_client.get(f"/authors-ro/{author.pk}/")
    assert set(detail.context_data["urls"]) == {"list", "detail"}


@pytest.mark.django_db
def test_asset_urls_round_trip(admin_client):
    asset = Asset.objects.create(code="SRV-9")
    url = reverse("testapp:asset-update", kwargs={"pk": asset.pk})
    assert url == f"/asset/{asset.pk}/edit/"
    assert resolve(url).kwargs == {"pk": asset.pk}
    assert admin_client.get(url).status_code == 200
