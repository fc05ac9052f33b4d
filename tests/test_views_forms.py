"""Create, update, detail and delete: full pages without HTMX, modals and 204s with it."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import django
import pytest
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.urls import include, path

from powercrud.mixins import PowerCRUDMixin
from powercrud.views import CRUDView
from tests.testapp.models import Asset, Author, Book, Genre, Shelf

pytestmark = pytest.mark.django_db


def saved_event(response: Any) -> dict[str, Any]:
    """The ``pcSaved`` event of an HTMX success response."""
    assert response.status_code == 204
    assert response.content == b""
    events = json.loads(response.headers["HX-Trigger"])
    assert set(events) == {"pcSaved"}
    return events["pcSaved"]


def book_data(catalogue: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    data = {
        "title": "The Dispossessed",
        "author": catalogue["authors"][0].pk,
        "genre": catalogue["genres"][0].pk,
        "status": "published",
        "price": "14.50",
        "published_date": "1974-05-01",
        "pages": "387",
        "is_available": "on",
        "tags": [t.pk for t in catalogue["tags"]],
    }
    data.update(overrides)
    return data


# ----- test views on their own URLconf ------------------------------------------------------
class RecordingBookView(PowerCRUDMixin, CRUDView):
    """``persist_single_object`` override: records each call and stamps the title."""

    model = Book
    url_base = "recorded-books"
    fields = ["title", "author", "status", "price"]
    calls: list[tuple[str, Any, bool]] = []

    def persist_single_object(self, *, form, mode, instance=None):
        type(self).calls.append((mode, instance, form.is_valid()))
        obj = form.save(commit=False)
        obj.title = f"{obj.title} [{mode}]"
        obj.save()
        form.save_m2m()
        return obj


class TitlePriceBookView(PowerCRUDMixin, CRUDView):
    """``form_fields`` narrower than the list's ``fields``."""

    model = Book
    url_base = "title-price-books"
    fields = ["title", "author", "genre", "status", "price"]
    form_fields = ["title", "price"]


class PoliteBookForm(forms.ModelForm):
    class Meta:
        model = Book
        fields = ["title", "author", "price", "status"]

    def clean_title(self) -> str:
        title: str = self.cleaned_data["title"]
        if "forbidden" in title.lower():
            raise ValidationError("Titles may not say forbidden.")
        return title.strip().title()


class FormClassBookView(PowerCRUDMixin, CRUDView):
    model = Book
    url_base = "form-class-books"
    fields = ["title", "author", "genre"]
    form_class = PoliteBookForm


class GuardedAuthorView(PowerCRUDMixin, CRUDView):
    """``delete_object`` that refuses with a ValidationError."""

    model = Author
    url_base = "guarded-authors"
    fields = ["name"]

    def delete_object(self, instance):
        if instance.country:
            raise ValidationError(f"{instance.name} has a country set; clear it first.")
        super().delete_object(instance)


urlpatterns = [
    *RecordingBookView.get_urls(),
    *TitlePriceBookView.get_urls(),
    *FormClassBookView.get_urls(),
    *GuardedAuthorView.get_urls(),
    path("accounts/", include("django.contrib.auth.urls")),
]
own_urls = pytest.mark.urls(__name__)


# ----- create -------------------------------------------------------------------------------
def test_create_get_shows_an_empty_form_page(admin_client, catalogue):
    response = admin_client.get("/book/new/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "<html" in page
    assert '<h2 id="pc-modal-title">New book</h2>' in page
    for name in (
        "title",
        "author",
        "genre",
        "status",
        "price",
        "published_date",
        "pages",
        "is_available",
        "tags",
    ):
        assert f'name="{name}"' in page
    assert 'type="date"' in page  # native date picker for DateField
    assert 'name="price_band"' not in page  # properties are not editable
    assert 'data-pc-close aria-label="Close"' not in page  # no modal close button on a full page


def test_create_get_over_htmx_is_the_modal_body(htmx_client, catalogue):
    response = htmx_client.get("/book/new/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in page
    assert page.lstrip().startswith('<div class="pc-panel">')
    assert 'hx-post="/book/new/"' in page
    assert 'aria-label="Close"' in page


@pytest.mark.parametrize("client_name", ["admin_client", "htmx_client"])
def test_create_invalid_post_shows_errors_and_writes_nothing(request, catalogue, client_name):
    client = request.getfixturevalue(client_name)
    before = Book.objects.count()
    response = client.post("/book/new/", book_data(catalogue, title="", price="cheap", author="999999"))
    page = response.content.decode()
    assert response.status_code == 200
    assert Book.objects.count() == before
    errors = response.context_data["form"].errors
    assert errors["title"] == ["This field is required."]
    assert errors["price"] == ["Enter a number."]
    assert errors["author"] == ["Select a valid choice. That choice is not one of the available choices."]
    assert "This field is required." in page
    assert "pc-has-error" in page
    assert ("<html" in page) is (client_name == "admin_client")


@pytest.mark.parametrize("bad_id", [str(2**70), "abc", "-1"])
def test_create_with_an_impossible_many_to_many_id_is_a_field_error(admin_client, catalogue, bad_id):
    before = Book.objects.count()
    response = admin_client.post("/book/new/", {**book_data(catalogue), "tags": [bad_id]})
    assert response.status_code == 200
    assert Book.objects.count() == before
    [message] = response.context_data["form"].errors["tags"]
    assert bad_id in message


def test_create_over_htmx_returns_204_with_pc_saved(htmx_client, catalogue):
    response = htmx_client.post("/book/new/", book_data(catalogue))
    assert saved_event(response) == {"message": "Book “The Dispossessed” created."}
    book = Book.objects.get(title="The Dispossessed")
    assert book.author == catalogue["authors"][0]
    assert book.price == Decimal("14.50")
    assert book.status == "published"
    assert book.is_available is True
    assert sorted(t.name for t in book.tags.all()) == ["award-winner", "signed"]


def test_create_without_htmx_redirects_to_the_list_with_a_message(admin_client, catalogue):
    response = admin_client.post("/book/new/", book_data(catalogue, is_available=""))
    assert response.status_code == 302
    assert response["Location"] == "/book/"
    assert Book.objects.get(title="The Dispossessed").is_available is False
    listing = admin_client.get(response["Location"])
    assert [str(m) for m in listing.context["messages"]] == ["Book “The Dispossessed” created."]
    assert "Book “The Dispossessed” created." in listing.content.decode()


# ----- update -------------------------------------------------------------------------------
def test_update_get_shows_the_current_values(admin_client, catalogue):
    book = catalogue["books"][0]
    response = admin_client.get(f"/book/{book.pk}/edit/")
    page = response.content.decode()
    assert response.status_code == 200
    assert 'value="Book 00"' in page
    assert 'value="2000-01-01"' in page
    assert response.context_data["form"].instance == book
    assert "Save changes" in page


@pytest.mark.parametrize("client_name", ["admin_client", "htmx_client"])
def test_update_invalid_post_changes_nothing(request, catalogue, client_name):
    client = request.getfixturevalue(client_name)
    book = catalogue["books"][3]
    response = client.post(f"/book/{book.pk}/edit/", book_data(catalogue, title="Renamed", price=""))
    assert response.status_code == 200
    assert response.context_data["form"].errors == {"price": ["This field is required."]}
    book.refresh_from_db()
    assert book.title == "Book 03"
    assert book.price == Decimal("8.00")


def test_update_over_htmx_returns_204_and_saves(htmx_client, catalogue):
    book = catalogue["books"][1]
    response = htmx_client.post(
        f"/book/{book.pk}/edit/", book_data(catalogue, title="Invisible Cities", tags=[])
    )
    assert saved_event(response) == {"message": "Book “Invisible Cities” saved."}
    book.refresh_from_db()
    assert book.title == "Invisible Cities"
    assert book.pages == 387
    assert list(book.tags.all()) == []
    assert Book.objects.count() == 30


def test_update_without_htmx_redirects_with_a_message(admin_client, catalogue):
    book = catalogue["books"][2]
    response = admin_client.post(
        f"/book/{book.pk}/edit/", book_data(catalogue, title="Things Fall Apart"), follow=True
    )
    assert response.redirect_chain == [("/book/", 302)]
    assert [str(m) for m in response.context["messages"]] == ["Book “Things Fall Apart” saved."]
    book.refresh_from_db()
    assert book.title == "Things Fall Apart"


@pytest.mark.parametrize("url", ["/book/999999/edit/", "/book/999999/", "/book/999999/delete/"])
def test_unknown_object_is_404(admin_client, catalogue, url):
    assert admin_client.get(url).status_code == 404
    if not url.endswith("/999999/"):
        assert admin_client.post(url, book_data(catalogue)).status_code == 404
    assert Book.objects.count() == 30


def test_model_clean_errors_are_shown(htmx_client, db):
    response = htmx_client.post("/shelf/new/", {"name": "Top", "location": "", "capacity": "0"})
    assert response.status_code == 200
    assert response.context_data["form"].errors == {
        "capacity": ["A shelf with no capacity must be marked full."]
    }
    assert "A shelf with no capacity must be marked full." in response.content.decode()
    assert not Shelf.objects.exists()


# ----- detail -------------------------------------------------------------------------------
def test_detail_shows_labels_and_values(admin_client, catalogue):
    book = catalogue["books"][0]
    response = admin_client.get(f"/book/{book.pk}/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "<html" in page
    rows = dict(response.context_data["detail_rows"])
    assert rows["Author"] == catalogue["authors"][0]
    assert rows["Status"] == "Draft"
    assert rows["Price"] == "5.00"
    assert rows["Published date"] == "Jan. 1, 2000"
    assert rows["Tags"] == "award-winner, signed"
    assert rows["Price band"] == "Budget"
    assert rows["Available"] is True
    for text in (
        "Ursula Le Guin",
        "Draft",
        "Jan. 1, 2000",
        "award-winner, signed",
        "Budget",
        "Published date",
    ):
        assert text in page
    assert f'href="/book/{book.pk}/edit/"' in page


def test_detail_over_htmx_is_the_modal_body(htmx_client, catalogue):
    book = catalogue["books"][5]
    page = htmx_client.get(f"/book/{book.pk}/").content.decode()
    assert "<html" not in page
    assert '<h2 id="pc-modal-title">Book 05</h2>' in page
    assert "Chinua Achebe" in page


# ----- delete -------------------------------------------------------------------------------
def test_delete_confirm_then_post_without_htmx(admin_client, catalogue):
    book = catalogue["books"][7]
    confirm = admin_client.get(f"/book/{book.pk}/delete/")
    assert confirm.status_code == 200
    assert "Delete <strong>Book 07</strong>? This cannot be undone." in confirm.content.decode()
    assert Book.objects.filter(pk=book.pk).exists()
    response = admin_client.post(f"/book/{book.pk}/delete/", follow=True)
    assert response.redirect_chain == [("/book/", 302)]
    assert [str(m) for m in response.context["messages"]] == ["Book “Book 07” deleted."]
    assert not Book.objects.filter(pk=book.pk).exists()
    assert Book.objects.count() == 29


def test_delete_over_htmx(htmx_client, catalogue):
    book = catalogue["books"][8]
    confirm = htmx_client.get(f"/book/{book.pk}/delete/")
    assert "<html" not in confirm.content.decode()
    assert f'hx-post="/book/{book.pk}/delete/"' in confirm.content.decode()
    response = htmx_client.post(f"/book/{book.pk}/delete/")
    assert saved_event(response) == {"message": "Book “Book 08” deleted."}
    assert not Book.objects.filter(pk=book.pk).exists()


PROTECTED_MESSAGE = (
    "“Ursula Le Guin” cannot be deleted. It is still used by 10 books: "
    "Book 00, Book 03, Book 06, Book 09, Book 12 and 5 more."
)


@pytest.mark.parametrize("client_name", ["admin_client", "htmx_client"])
def test_deleting_a_protected_author_is_a_409_with_a_readable_reason(request, catalogue, client_name):
    client = request.getfixturevalue(client_name)
    author = catalogue["authors"][0]
    response = client.post(f"/author/{author.pk}/delete/")
    page = response.content.decode()
    assert response.status_code == 409
    assert response.context_data["error"] == PROTECTED_MESSAGE
    assert "It is still used by 10 books: Book 00, Book 03, Book 06, Book 09, Book 12 and 5 more." in page
    assert "HX-Trigger" not in response.headers
    assert Author.objects.filter(pk=author.pk).exists()
    assert Book.objects.filter(author=author).count() == 10


def test_protected_delete_with_one_blocker_names_it_singular(admin_client, catalogue):
    author = catalogue["authors"][2]
    Book.objects.filter(author=author).exclude(title="Book 29").delete()
    response = admin_client.post(f"/author/{author.pk}/delete/")
    assert response.status_code == 409
    assert (
        response.context_data["error"]
        == "“Chinua Achebe” cannot be deleted. It is still used by 1 book: Book 29."
    )


def test_deleting_an_author_without_books_works(htmx_client, db):
    author = Author.objects.create(name="Nobody")
    response = htmx_client.post(f"/author/{author.pk}/delete/")
    assert saved_event(response) == {"message": "Author “Nobody” deleted."}
    assert not Author.objects.filter(pk=author.pk).exists()


def test_deleting_a_genre_keeps_its_books(admin_client, catalogue):
    genre = catalogue["genres"][0]
    books = list(Book.objects.filter(genre=genre).values_list("pk", flat=True))
    assert admin_client.post(f"/genre/{genre.pk}/delete/").status_code == 302
    assert Book.objects.filter(pk__in=books, genre__isnull=True).count() == len(books) > 0


@own_urls
def test_delete_object_validation_error_is_a_409(admin_client, db):
    author = Author.objects.create(name="Kept", country="Peru")
    response = admin_client.post(f"/guarded-authors/{author.pk}/delete/")
    assert response.status_code == 409
    assert response.context_data["error"] == "Kept has a country set; clear it first."
    assert Author.objects.filter(pk=author.pk).exists()
    author.country = ""
    author.save()
    assert admin_client.post(f"/guarded-authors/{author.pk}/delete/").status_code == 302
    assert not Author.objects.filter(pk=author.pk).exists()


# ----- hooks and form configuration --------------------------------------------------------
@own_urls
def test_persist_single_object_is_called_for_create_and_update(htmx_client, catalogue):
    RecordingBookView.calls.clear()
    data = {"title": "Hooked", "author": catalogue["authors"][1].pk, "status": "draft", "price": "3"}
    response = htmx_client.post("/recorded-books/new/", data)
    assert saved_event(response) == {"message": "Book “Hooked [create]” created."}
    book = Book.objects.get(title="Hooked [create]")
    assert RecordingBookView.calls == [("create", None, True)]

    response = htmx_client.post(f"/recorded-books/{book.pk}/edit/", {**data, "title": "Rehooked"})
    assert saved_event(response) == {"message": "Book “Rehooked [update]” saved."}
    mode, instance, valid = RecordingBookView.calls[1]
    assert (mode, valid) == ("update", True)
    assert instance.pk == book.pk
    book.refresh_from_db()
    assert book.title == "Rehooked [update]"
    assert len(RecordingBookView.calls) == 2


@own_urls
def test_persist_single_object_is_not_called_for_an_invalid_form(admin_client, catalogue):
    RecordingBookView.calls.clear()
    response = admin_client.post(
        "/recorded-books/new/", {"title": "No author", "status": "draft", "price": "1"}
    )
    assert response.status_code == 200
    assert RecordingBookView.calls == []


@own_urls
def test_form_fields_limit_the_form(admin_client, catalogue):
    book = catalogue["books"][4]
    form_page = admin_client.get(f"/title-price-books/{book.pk}/edit/")
    assert list(form_page.context_data["form"].fields) == ["title", "price"]
    assert 'name="author"' not in form_page.content.decode()
    response = admin_client.post(
        f"/title-price-books/{book.pk}/edit/",
        {"title": "Only title", "price": "99.99", "author": catalogue["authors"][0].pk, "status": "archived"},
    )
    assert response.status_code == 302
    book.refresh_from_db()
    assert (book.title, book.price) == ("Only title", Decimal("99.99"))
    assert book.author == catalogue["authors"][1]  # not in form_fields: posted value ignored
    assert book.status == "draft"


def test_default_form_fields_are_the_editable_list_fields(admin_client, db):
    form = admin_client.get("/asset/new/").context_data["form"]
    assert list(form.fields) == ["code", "description", "in_service"]


@own_urls
def test_form_class_is_used(htmx_client, catalogue):
    data = {
        "title": "a forbidden book",
        "author": catalogue["authors"][0].pk,
        "price": "2",
        "status": "draft",
    }
    rejected = htmx_client.post("/form-class-books/new/", data)
    assert rejected.status_code == 200
    assert isinstance(rejected.context_data["form"], PoliteBookForm)
    assert rejected.context_data["form"].errors == {"title": ["Titles may not say forbidden."]}
    assert not Book.objects.filter(title__icontains="forbidden").exists()
    accepted = htmx_client.post("/form-class-books/new/", {**data, "title": "  a wizard of earthsea "})
    assert saved_event(accepted) == {"message": "Book “A Wizard Of Earthsea” created."}
    assert Book.objects.filter(title="A Wizard Of Earthsea").exists()


# ----- UUID primary key --------------------------------------------------------------------
def test_uuid_model_end_to_end(admin_client, htmx_client, db):
    created = htmx_client.post(
        "/asset/new/", {"code": "LAP-001", "description": "Laptop", "in_service": "on"}
    )
    assert saved_event(created) == {"message": "Asset “LAP-001” created."}
    asset = Asset.objects.get(code="LAP-001")
    assert isinstance(asset.pk, uuid.UUID)

    listing = admin_client.get("/asset/")
    assert [row["pk"] for row in listing.context_data["rows"]] == [asset.pk]
    assert f'href="/asset/{asset.pk}/edit/"' in listing.content.decode()

    detail = admin_client.get(f"/asset/{asset.pk}/")
    assert detail.status_code == 200
    assert dict(detail.context_data["detail_rows"])["Description"] == "Laptop"

    updated = admin_client.post(f"/asset/{asset.pk}/edit/", {"code": "LAP-001", "description": "Old laptop"})
    assert updated.status_code == 302
    asset.refresh_from_db()
    assert (asset.description, asset.in_service) == ("Old laptop", False)

    duplicate = admin_client.post("/asset/new/", {"code": "LAP-001"})
    assert duplicate.status_code == 200
    assert duplicate.context_data["form"].errors == {"code": ["Asset with this Code already exists."]}

    assert admin_client.get(f"/asset/{uuid.uuid4()}/").status_code == 404
    assert admin_client.get("/asset/not-a-uuid/").status_code == 404

    deleted = htmx_client.post(f"/asset/{asset.pk}/delete/")
    assert saved_event(deleted) == {"message": "Asset “LAP-001” deleted."}
    assert not Asset.objects.exists()


def test_genre_unique_name_error_is_shown_in_the_modal(htmx_client, db):
    Genre.objects.create(name="Poetry")
    response = htmx_client.post("/genre/new/", {"name": "Poetry"})
    assert response.status_code == 200
    assert "Genre with this Name already exists." in response.content.decode()
    assert Genre.objects.count() == 1


# ----- per-model template override ----------------------------------------------------------
GENRE_DETAIL = (
    "{% extends base_template_path %}{% load pc_partials %}{% block content %}"
    '{% partialdef content inline %}<p class="custom">Custom genre {{ object.name }}</p>'
    "{% endpartialdef %}{% endblock %}"
)


def templates_with(overrides: dict[str, str]) -> list[dict[str, Any]]:
    """The test TEMPLATES with ``overrides`` found before every app template."""
    loaders: list[Any] = [
        ("django.template.loaders.locmem.Loader", overrides),
        "django.template.loaders.app_directories.Loader",
    ]
    if django.VERSION < (6, 0):
        loaders = [("template_partials.loader.Loader", loaders)]
    engine = settings.TEMPLATES[0]
    options = {"context_processors": engine["OPTIONS"]["context_processors"], "loaders": loaders}
    return [{"BACKEND": engine["BACKEND"], "DIRS": [], "OPTIONS": options}]


def test_per_model_template_overrides_the_default(admin_client, htmx_client, db):
    genre = Genre.objects.create(name="Noir")
    with override_settings(TEMPLATES=templates_with({"testapp/genre_detail.html": GENRE_DETAIL})):
        page = admin_client.get(f"/genre/{genre.pk}/").content.decode()
        assert '<p class="custom">Custom genre Noir</p>' in page
        assert "powercrud test app" in page  # still inside the view's base template
        modal = htmx_client.get(f"/genre/{genre.pk}/").content.decode()
        assert modal.strip() == '<p class="custom">Custom genre Noir</p>'
        other = admin_client.get("/genre/").content.decode()  # other roles keep powercrud's pages
        assert 'id="pc-content"' in other
    assert "Custom genre" not in admin_client.get(f"/genre/{genre.pk}/").content.decode()
