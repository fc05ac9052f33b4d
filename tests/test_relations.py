"""Relations that scale: the RELATION role's search endpoint, and the search control that forms,
filters and the bulk modal draw for a relation over more than FILTER_SELECT_MAX_CHOICES rows."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from django.db import connection, models
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from powercrud.mixins import PowerCRUDMixin
from powercrud.models import BulkTask
from powercrud.relations import has_many
from powercrud.views import CRUDView
from tests.bulk_urls import select
from tests.conftest import HtmxClient, make_user
from tests.testapp.models import Author, Book
from tests.testapp.urls import urlpatterns as app_urlpatterns

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]

Catalogue = dict[str, Any]
BIG = {"FILTER_SELECT_MAX_CHOICES": 2}  # the catalogue's three authors count as "many"


class ItalianAuthorsBookView(PowerCRUDMixin, CRUDView):
    """Forms and filters offer only Italian authors; the bulk modal only authors with a country."""

    model = Book
    url_base = "italian-books"
    fields = ["title", "author", "status", "price", "tags"]
    filterset_fields = ["author"]
    bulk_fields = ["author", "tags"]

    def get_relation_queryset(self, field_name: str, queryset: models.QuerySet[Any]) -> models.QuerySet[Any]:
        if field_name == "author":
            return queryset.filter(country="Italy")
        return queryset

    def get_bulk_choices_queryset(
        self, field_name: str, queryset: models.QuerySet[Any]
    ) -> models.QuerySet[Any]:
        if field_name == "author":
            return queryset.exclude(country="Nigeria")
        return queryset


class CountrySearchBookView(PowerCRUDMixin, CRUDView):
    model = Book
    url_base = "country-books"
    fields = ["title", "author"]
    relation_search_fields = {"author": ["country"]}
    relation_page_size = 2


class ItalianOnlyBookView(ItalianAuthorsBookView):
    """Scopes forms and filters only: the bulk modal follows the same one hook."""

    url_base = "italian-only-books"
    get_bulk_choices_queryset = PowerCRUDMixin.get_bulk_choices_queryset


urlpatterns = [
    *app_urlpatterns,
    *ItalianAuthorsBookView.get_urls(),
    *CountrySearchBookView.get_urls(),
    *ItalianOnlyBookView.get_urls(),
]


def search(client: Client, field: str, base: str = "/book/", **params: Any) -> Any:
    params.setdefault("for", "form")
    return client.get(f"{base}relation/{field}/", params)


def found(response: Any) -> list[str]:
    assert response.status_code == 200, response.content.decode()[:300]
    return [r["text"] for r in response.json()["results"]]


def error(response: Any, status: int = 400) -> str:
    assert response.status_code == status, response.content.decode()[:300]
    return str(response.json()["error"])


def logged_in(*codenames: str, name: str = "clerk") -> Client:
    client = Client()
    client.force_login(make_user(name, *codenames))
    return client


def control(page: str, name: str) -> str:
    """The search control of field ``name`` in ``page`` (its input tag)."""
    match = re.search(rf'<input type="text" name="{name}"[^>]*data-pc-relation[^>]*>', page)
    assert match, f"no search control for {name}"
    return match.group(0)


def selected(tag: str) -> list[dict[str, str]]:
    raw = re.search(r'data-pc-selected="([^"]*)"', tag)
    assert raw
    return list(json.loads(html.unescape(raw.group(1))))


# ----- the endpoint: results, scope, pages ----------------------------------------------------------
def test_search_returns_matching_labels_and_ids(admin_client: Client, catalogue: Catalogue) -> None:
    response = search(admin_client, "author", q="calv")
    calvino = catalogue["authors"][1]
    assert response.json() == {"results": [{"id": str(calvino.pk), "text": "Italo Calvino"}], "more": False}
    # Every word must match; no query lists every row in the related model's order.
    assert found(search(admin_client, "author", q="le guin")) == ["Ursula Le Guin"]
    assert found(search(admin_client, "author", q="le calvino")) == []
    assert found(search(admin_client, "author")) == ["Chinua Achebe", "Italo Calvino", "Ursula Le Guin"]
    # A lone number also matches the id.
    assert found(search(admin_client, "author", q=str(calvino.pk))) == ["Italo Calvino"]


def test_many_to_many_and_filters_and_bulk_fields_are_served(
    admin_client: Client, catalogue: Catalogue
) -> None:
    assert found(search(admin_client, "tags", q="sign")) == ["signed"]
    assert found(search(admin_client, "author", **{"for": "filter"}, q="achebe")) == ["Chinua Achebe"]
    assert found(search(admin_client, "genre", **{"for": "bulk"})) == ["Classics", "Fantasy"]


@override_settings(POWERCRUD_SETTINGS={"RELATION_PAGE_SIZE": 20})
def test_a_page_holds_at_most_the_page_size_and_says_when_there_is_more(admin_client: Client) -> None:
    Author.objects.bulk_create(Author(name=f"Writer {i:03d}") for i in range(45))
    first = search(admin_client, "author", q="writer")
    assert found(first) == [f"Writer {i:03d}" for i in range(20)] and first.json()["more"] is True
    second = search(admin_client, "author", q="writer", page="2")
    assert found(second) == [f"Writer {i:03d}" for i in range(20, 40)] and second.json()["more"] is True
    last = search(admin_client, "author", q="writer", page="3")
    assert found(last) == [f"Writer {i:03d}" for i in range(40, 45)] and last.json()["more"] is False
    assert found(search(admin_client, "author", q="writer", page="4")) == []


def test_a_view_sets_the_search_fields_and_page_size(admin_client: Client, catalogue: Catalogue) -> None:
    response = search(admin_client, "author", base="/country-books/", q="ital")
    assert found(response) == ["Italo Calvino"]
    assert found(search(admin_client, "author", base="/country-books/", q="calvino")) == []
    page = search(admin_client, "author", base="/country-books/")
    assert len(found(page)) == 2 and page.json()["more"] is True


def test_limit_choices_to_bounds_the_search_and_the_form(
    admin_client: Client, catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        Book._meta.get_field("author").remote_field, "limit_choices_to", {"country": "Nigeria"}
    )
    for place in ("form", "filter", "bulk"):
        assert found(search(admin_client, "author", **{"for": place})) == ["Chinua Achebe"], place
    # The form refuses what the search never offers.
    calvino = catalogue["authors"][1]
    data = {"title": "New", "author": calvino.pk, "status": "draft", "price": "3"}
    response = admin_client.post("/book/new/", data)
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not Book.objects.filter(title="New").exists()


def test_the_bulk_modal_follows_get_relation_queryset_unless_scoped_on_its_own(
    admin_client: Client, catalogue: Catalogue
) -> None:
    base = "/italian-only-books/"
    assert found(search(admin_client, "author", base=base, **{"for": "bulk"})) == ["Italo Calvino"]
    le_guin = catalogue["authors"][0]
    book = catalogue["books"][1]
    admin_client.post(f"{base}selection/", {"action": "set", "checked": "1", "pk": [str(book.pk)]})
    response = admin_client.post(f"{base}bulk/edit/", {"change_author": "1", "author": str(le_guin.pk)})
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    book.refresh_from_db()
    assert book.author_id != le_guin.pk


def test_each_place_is_scoped_as_its_form_validates(admin_client: Client, catalogue: Catalogue) -> None:
    base = "/italian-books/"
    assert found(search(admin_client, "author", base=base)) == ["Italo Calvino"]
    assert found(search(admin_client, "author", base=base, **{"for": "filter"})) == ["Italo Calvino"]
    assert found(search(admin_client, "author", base=base, **{"for": "bulk"})) == [
        "Italo Calvino",
        "Ursula Le Guin",
    ]
    # get_relation_queryset() scopes the form's validation too.
    le_guin = catalogue["authors"][0]
    data = {"title": "Out of scope", "author": le_guin.pk, "status": "draft", "price": "3"}
    response = admin_client.post(f"{base}new/", data)
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not Book.objects.filter(title="Out of scope").exists()


# ----- permissions ------------------------------------------------------------------------------
def test_the_form_place_needs_add_or_change_on_the_model_and_view_on_the_related(
    catalogue: Catalogue,
) -> None:
    assert found(search(logged_in("add_book", "view_author"), "author", q="calv")) == ["Italo Calvino"]
    assert found(search(logged_in("change_book", "view_author", name="c2"), "author")) != []
    viewer = logged_in("view_book", "view_author", name="viewer")
    assert "permission to use this form" in error(search(viewer, "author"), 403)
    # The filter is the viewer's form.
    assert found(search(viewer, "author", **{"for": "filter"}, q="achebe")) == ["Chinua Achebe"]
    # The bulk modal needs what bulk edit needs.
    assert "permission" in error(
        search(logged_in("add_book", "view_author", name="a3"), "author", **{"for": "bulk"}), 403
    )


def test_no_view_permission_on_the_related_model_is_refused(catalogue: Catalogue) -> None:
    client = logged_in("add_book", "change_book", "view_book", "view_genre")
    assert "permission to view authors" in error(search(client, "author"), 403)
    assert "permission to view authors" in error(search(client, "author", **{"for": "filter"}), 403)
    assert found(search(client, "genre")) == ["Classics", "Fantasy"]
    assert "Italo" not in search(client, "author").content.decode()


def test_no_permission_on_the_model_and_anonymous(catalogue: Catalogue) -> None:
    nobody = logged_in("view_author", name="nobody")
    response = search(nobody, "author")
    assert response.status_code == 403 and "Italo" not in response.content.decode()
    anonymous = search(Client(), "author")
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]


# ----- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=a&q=b", "“q” was sent 2 times"),
        ("q=" + "x" * 101, "longer than 100"),
        ("page=0", "“page”"),
        ("page=-1", "“page”"),
        ("page=abc", "“page”"),
        ("page=1.5", "“page”"),
        ("page=99999999999999999999", "“page”"),
        ("page=1001", "“page”"),
        ("page=1&page=2", "“page” was sent 2 times"),
        ("for=admin", "“for” must be one of form, filter, bulk"),
        ("for=form&for=bulk", "“for” was sent 2 times"),
    ],
)
def test_bad_input_is_a_400_naming_it(
    admin_client: Client, catalogue: Catalogue, query: str, expected: str
) -> None:
    assert expected in error(admin_client.get(f"/book/relation/author/?{query}"))


@pytest.mark.parametrize(
    ("field", "place"),
    [
        ("title", "form"),  # not a relation
        ("nothing", "form"),  # not a field
        ("tags", "filter"),  # a relation, but not one of the filters
        ("status", "bulk"),
        ("books", "form"),  # a reverse relation of nobody's form
    ],
)
def test_a_field_that_is_not_a_relation_of_the_place_is_refused(
    admin_client: Client, catalogue: Catalogue, field: str, place: str
) -> None:
    message = error(search(admin_client, field, **{"for": place}))
    assert f"“{field}” is not a relation field of this {place}" in message


def test_a_field_outside_the_views_form_is_refused(admin_client: Client, catalogue: Catalogue) -> None:
    # CountrySearchBookView's form has title and author only.
    assert "“tags” is not a relation field" in error(search(admin_client, "tags", base="/country-books/"))


@pytest.mark.parametrize("q", ["\x00", "a\x00b", "%", "_", "'", "9" * 40, "💥", " "])
def test_odd_searches_never_fail(admin_client: Client, catalogue: Catalogue, q: str) -> None:
    assert search(admin_client, "author", q=q).status_code == 200


def test_a_fixed_number_of_queries_whatever_the_table_size(
    django_assert_max_num_queries: Any, catalogue: Catalogue
) -> None:
    client = logged_in("change_book", "view_author")
    search(client, "author")  # warm the content types
    with django_assert_max_num_queries(5):  # session, user, user and group permissions, the page
        assert len(found(search(client, "author", q="a"))) == 3
    Author.objects.bulk_create(Author(name=f"Author {i:04d}") for i in range(2000))
    with django_assert_max_num_queries(5):
        response = search(client, "author", q="a")
    assert len(found(response)) == 20 and response.json()["more"] is True


# ----- the control in forms, filters and the bulk modal ----------------------------------------------
def test_small_relations_keep_their_select(admin_client: Client, catalogue: Catalogue) -> None:
    page = admin_client.get("/book/new/").content.decode()
    assert '<select name="author"' in page and "data-pc-relation" not in page
    assert '<select name="author"' in admin_client.get("/book/").content.decode()


@override_settings(POWERCRUD_SETTINGS=BIG)
def test_big_relations_search_in_the_form_with_labels_of_the_current_value(
    admin_client: Client, catalogue: Catalogue
) -> None:
    assert '<select name="author"' not in admin_client.get("/book/new/").content.decode()
    book = catalogue["books"][0]
    page = admin_client.get(f"/book/{book.pk}/edit/").content.decode()
    author = control(page, "author")
    assert 'data-pc-relation="/book/relation/author/?for=form"' in author
    assert f'value="{book.author.pk}"' in author
    assert selected(author) == [{"id": str(book.author.pk), "text": book.author.name}]
    assert "<option" not in page.split('name="author"')[1].split("</div>")[0]
    assert '<select name="genre"' in page  # two genres are not more than two: still a select
    assert 'class="pc-checklist"' in page and 'type="checkbox" name="tags"' in page


@override_settings(POWERCRUD_SETTINGS={"FILTER_SELECT_MAX_CHOICES": 1})
def test_a_big_many_to_many_searches_with_every_current_label(
    admin_client: Client, catalogue: Catalogue
) -> None:
    book = catalogue["books"][0]
    tags = control(admin_client.get(f"/book/{book.pk}/edit/").content.decode(), "tags")
    assert 'data-pc-relation="/book/relation/tags/?for=form"' in tags and "data-pc-multiple" in tags
    assert sorted(o["text"] for o in selected(tags)) == ["award-winner", "signed"]


@override_settings(POWERCRUD_SETTINGS={"FILTER_SELECT_MAX_CHOICES": 1})
def test_without_javascript_the_form_takes_ids_and_validates_them(
    admin_client: Client, catalogue: Catalogue
) -> None:
    calvino = catalogue["authors"][1]
    tags = catalogue["tags"]
    page = admin_client.get("/book/new/").content.decode()
    assert "<noscript>" in page and "Id of the author" in page and "Ids of tags, separated by commas" in page
    data = {"title": "Plain", "author": str(calvino.pk), "status": "draft", "price": "3"}
    response = admin_client.post("/book/new/", {**data, "tags": f"{tags[0].pk}, {tags[1].pk}"})
    assert response.status_code == 302
    book = Book.objects.get(title="Plain")
    assert book.author == calvino and set(book.tags.all()) == set(tags)
    for bad in ("abc", "99999999999999999999999", "-1"):
        response = admin_client.post(
            "/book/new/", {**data, "title": "Bad", "author": bad, "tags": f"1,{bad}"}
        )
        assert response.status_code == 200
        assert "Select a valid choice" in response.content.decode()
        # The refused id comes back in the input, labelled with itself.
        assert selected(control(response.content.decode(), "author")) == [{"id": bad, "text": bad}]
    assert not Book.objects.filter(title="Bad").exists()


@override_settings(POWERCRUD_SETTINGS=BIG)
def test_the_filter_stays_an_exact_filter_in_the_same_place(
    admin_client: Client, catalogue: Catalogue
) -> None:
    small = admin_client.get("/book/").content.decode()
    calvino = catalogue["authors"][1]
    response = admin_client.get("/book/", {"author": str(calvino.pk)})
    page = response.content.decode()
    author = control(page, "author")
    assert 'data-pc-relation="/book/relation/author/?for=filter"' in author
    assert 'id="filter_author"' in author and '<label for="filter_author">Author</label>' in page
    assert selected(author) == [{"id": str(calvino.pk), "text": "Italo Calvino"}]
    assert {row["object"].author for row in response.context_data["rows"]} == {calvino}

    def order(html_page: str) -> list[str]:
        return re.findall(r'<label for="filter_(\w+)"', html_page)

    assert order(page) == order(small)  # the same filters, in the same order


@pytest.mark.parametrize("limit", [0, 1, 2, 3, 4])
def test_has_many_asks_for_the_row_after_the_limit(catalogue: Catalogue, limit: int) -> None:
    authors = Author.objects.order_by("name")  # three
    with CaptureQueriesContext(connection) as queries:
        assert has_many(authors, limit) is (limit < 3)
        assert has_many(authors.filter(country="Italy"), limit) is (limit < 1)
    tail = f"LIMIT 1 OFFSET {limit}" if limit else "LIMIT 1"
    assert [q["sql"].endswith(tail) for q in queries.captured_queries] == [True] * 2


@override_settings(POWERCRUD_SETTINGS=BIG)
def test_a_partial_filters_by_a_big_relation_without_counting_it(
    admin_user: Any, catalogue: Catalogue
) -> None:
    """The htmx partial does not draw the filter form, so it never asks how big a relation
    filter is; the filter still applies (a single id reads the same from either control)."""
    client = HtmxClient()
    client.force_login(admin_user)
    calvino = catalogue["authors"][1]
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/book/", {"author": str(calvino.pk)}, headers={"HX-Target": "pc-content"})
    assert response.status_code == 200 and 'id="pc-filters"' not in response.content.decode()
    assert {row["object"].author for row in response.context_data["rows"]} == {calvino}
    counts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT COUNT(*)")]
    assert len(counts) == 1 and 'FROM "testapp_book"' in counts[0]  # the paginator's count alone


def test_the_filter_is_scoped_by_the_view(admin_client: Client, catalogue: Catalogue) -> None:
    le_guin = catalogue["authors"][0]
    response = admin_client.get("/italian-books/", {"author": str(le_guin.pk)})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()


@override_settings(POWERCRUD_SETTINGS={"FILTER_SELECT_MAX_CHOICES": 1})
def test_the_bulk_modal_searches_and_applies_ids_and_prefills_from_a_run(catalogue: Catalogue) -> None:
    client = HtmxClient()
    client.force_login(make_user("boss2", superuser=True))
    books = catalogue["books"][:3]
    assert select(client, "book", [b.pk for b in books]).status_code == 200
    page = client.get("/book/bulk/edit/").content.decode()
    author = control(page, "author")
    assert 'data-pc-relation="/book/relation/author/?for=bulk"' in author and selected(author) == []
    assert "data-pc-multiple" in control(page, "tags")
    achebe = catalogue["authors"][2]
    tags = catalogue["tags"]
    data = {
        "change_author": "on",
        "author": str(achebe.pk),
        "change_tags": "on",
        "tags": f"{tags[0].pk},{tags[1].pk}",
        "tags__op": "replace",
    }
    response = client.post("/book/bulk/edit/", data)
    assert response.status_code == 204, response.content.decode()[:500]
    for book in books:
        book.refresh_from_db()
        assert book.author == achebe and set(book.tags.all()) == set(tags)

    run = BulkTask.objects.filter(kind="update").latest("pk")
    assert select(client, "book", [b.pk for b in books]).status_code == 200  # an apply may clear it
    again = client.get(f"/book/bulk/edit/?from_run={run.pk}").content.decode()
    assert selected(control(again, "author")) == [{"id": str(achebe.pk), "text": "Chinua Achebe"}]
    assert sorted(o["text"] for o in selected(control(again, "tags"))) == ["award-winner", "signed"]
    # A refused value comes back in the modal with its error, in the same control.
    bad = client.post("/book/bulk/edit/", {"change_author": "on", "author": "nope"}).content.decode()
    assert "Select a valid choice" in bad and selected(control(bad, "author")) == [
        {"id": "nope", "text": "nope"}
    ]
