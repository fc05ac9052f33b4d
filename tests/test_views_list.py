"""The list role: columns, sorting, pagination, filtering, search, HTMX partials, query count."""

from __future__ import annotations

import datetime
import html
import re
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import django_filters
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from powercrud.mixins import PowerCRUDMixin
from powercrud.views import CRUDView
from tests.testapp.models import Author, Book, Tag

pytestmark = pytest.mark.django_db

BOOKS = "/book/"


# ----- helpers ------------------------------------------------------------------------------
def titles(response: Any) -> list[str]:
    return [row["object"].title for row in response.context_data["rows"]]


def pks(response: Any) -> list[Any]:
    return [row["pk"] for row in response.context_data["rows"]]


def total(response: Any) -> int:
    return response.context_data["page_obj"].paginator.count


def links(response: Any, css_class: str) -> list[dict[str, list[str]]]:
    """Query strings of the ``<a class="<css_class>...">`` links, parsed."""
    found = re.findall(rf'<a class="{css_class}[^"]*" href="([^"]*)"', response.content.decode())
    return [parse_qs(urlsplit(html.unescape(href)).query) for href in found]


def cells(response: Any) -> list[str]:
    """The text of every table cell on the page, whitespace trimmed."""
    found = re.findall(r"<td[^>]*>(.*?)</td>", response.content.decode(), flags=re.S)
    # A text cell is wrapped in <span class="pc-cell" title="...">, which truncates it.
    wrapper = r'<span class="pc-cell" title="[^"]*">(.*?)</span>'
    found = [re.sub(wrapper, r"\1", text, flags=re.S) for text in found]
    return [html.unescape(text.strip()) for text in found]


def all_pages(client: Client, query: str, page_size: int = 10) -> list[Book]:
    """Every row of every page, in display order."""
    first = client.get(f"{BOOKS}?{query}&page_size={page_size}")
    objects = [row["object"] for row in first.context_data["rows"]]
    for number in range(2, first.context_data["page_obj"].paginator.num_pages + 1):
        page = client.get(f"{BOOKS}?{query}&page_size={page_size}&page={number}")
        assert page.context_data["page_obj"].number == number
        objects += [row["object"] for row in page.context_data["rows"]]
    return objects


# ----- test views on their own URLconf ------------------------------------------------------
class PriceFilterSet(django_filters.FilterSet):
    max_price = django_filters.NumberFilter(field_name="price", lookup_expr="lte", label="Max price")
    title_starts = django_filters.CharFilter(field_name="title", lookup_expr="istartswith")

    class Meta:
        model = Book
        fields: list[str] = []


class AuthorNameBookView(PowerCRUDMixin, CRUDView):
    """Related fields as ``a__b`` columns, filters and search over a many-to-many path."""

    model = Book
    url_base = "related-books"
    fields = ["title", "author__name", "author__country", "tags"]
    filterset_fields = ["author__country"]
    search_fields = ["title", "tags__name"]
    paginate_by = 10


class CustomFilterBookView(PowerCRUDMixin, CRUDView):
    model = Book
    url_base = "custom-filter-books"
    fields = ["title", "price"]
    filterset_class = PriceFilterSet


class CheapestFirstBookView(PowerCRUDMixin, CRUDView):
    model = Book
    url_base = "cheap-books"
    fields = ["title", "price", "status"]
    ordering = ["price"]
    paginate_by = 5


urlpatterns = [
    *AuthorNameBookView.get_urls(),
    *CustomFilterBookView.get_urls(),
    *CheapestFirstBookView.get_urls(),
]
own_urls = pytest.mark.urls(__name__)


# ----- columns and cells --------------------------------------------------------------------
def test_cells_show_fk_by_str_choices_by_label_and_properties(admin_client, catalogue):
    response = admin_client.get(f"{BOOKS}?page_size=50")
    assert response.status_code == 200
    by_title = {
        row["object"].title: {c["column"].name: c["value"] for c in row["cells"]}
        for row in response.context_data["rows"]
    }
    book_00, book_02 = by_title["Book 00"], by_title["Book 02"]
    assert book_00["author"] == catalogue["authors"][0]
    assert book_00["status"] == "Draft"
    assert book_02["status"] == "Out of print"
    assert book_00["genre"] is None
    assert book_00["tags"] == "award-winner, signed"
    assert book_00["price_band"] == "Budget"
    assert by_title["Book 29"]["price_band"] == "Premium"
    assert book_02["price"] == "7.00"
    shown = cells(response)
    assert "Ursula Le Guin" in shown
    assert "Out of print" in shown
    assert "out_of_print" not in shown
    assert "award-winner, signed" in shown
    assert "Premium" in shown
    assert "7.00" in shown


def test_header_labels_come_from_verbose_names(admin_client, catalogue):
    response = admin_client.get(BOOKS)
    labels = [h["column"].label for h in response.context_data["headers"]]
    assert labels == [
        "Title",
        "Author",
        "Genre",
        "Status",
        "Price",
        "Published date",
        "Pages",
        "Available",  # verbose_name of is_available
        "Tags",
        "Price band",
    ]
    assert "Available<span" in response.content.decode()


@own_urls
def test_related_path_columns_are_labelled_and_shown(admin_client, catalogue):
    response = admin_client.get("/related-books/?sort=title")
    assert [h["column"].label for h in response.context_data["headers"]] == [
        "Title",
        "Author name",
        "Author country",
        "Tags",
    ]
    first = response.context_data["rows"][0]
    assert [c["value"] for c in first["cells"]] == [
        "Book 00",
        "Ursula Le Guin",
        "United States",
        "award-winner, signed",
    ]


def test_empty_list_says_so(admin_client, db):
    response = admin_client.get("/tag/")
    assert response.status_code == 200
    assert response.context_data["rows"] == []
    assert "No tags yet." in response.content.decode()


# ----- sorting ------------------------------------------------------------------------------
def test_sort_ascending_and_descending(admin_client, catalogue):
    expected = sorted(b.title for b in catalogue["books"])
    asc = admin_client.get(f"{BOOKS}?sort=title&page_size=50")
    desc = admin_client.get(f"{BOOKS}?sort=-title&page_size=50")
    assert titles(asc) == expected
    assert titles(desc) == expected[::-1]
    assert 'aria-sort="ascending"' in asc.content.decode()
    assert 'aria-sort="descending"' in desc.content.decode()


def test_sort_header_link_toggles_direction_and_keeps_state(admin_client, catalogue):
    response = admin_client.get(f"{BOOKS}?sort=title&q=book&is_available=true&page_size=10&page=2")
    sort_links = {q["sort"][0]: q for q in links(response, "pc-sort")}
    assert "-title" in sort_links  # the sorted column flips to descending
    assert "title" not in sort_links
    assert "price" in sort_links
    for query in sort_links.values():
        assert query["q"] == ["book"]
        assert query["is_available"] == ["true"]
        assert query["page_size"] == ["10"]
        assert "page" not in query  # a new sort starts on page one
    desc = admin_client.get(f"{BOOKS}?sort=-title")
    assert "title" in {q["sort"][0] for q in links(desc, "pc-sort")}


def test_sort_by_foreign_key_orders_by_related_name(admin_client, catalogue):
    books = catalogue["books"]
    asc = admin_client.get(f"{BOOKS}?sort=author&page_size=50")
    expected = sorted(books, key=lambda b: (b.author.name, b.pk))
    assert pks(asc) == [b.pk for b in expected]
    assert [str(r["object"].author) for r in asc.context_data["rows"]][:1] == ["Chinua Achebe"]
    desc = admin_client.get(f"{BOOKS}?sort=-author&page_size=50")
    assert [r["object"].author.name for r in desc.context_data["rows"]] == sorted(
        (b.author.name for b in books), reverse=True
    )


@own_urls
def test_sort_by_related_path_field(admin_client, catalogue):
    asc = admin_client.get("/related-books/?sort=author__name&page_size=50")
    desc = admin_client.get("/related-books/?sort=-author__name&page_size=50")
    names = sorted(b.author.name for b in catalogue["books"])
    assert [r["object"].author.name for r in asc.context_data["rows"]] == names
    assert [r["object"].author.name for r in desc.context_data["rows"]] == names[::-1]
    # Equal names keep primary-key order in both directions.
    assert pks(asc)[:10] == sorted(pks(asc)[:10])
    assert pks(desc)[:10] == sorted(pks(desc)[:10])


@pytest.mark.parametrize(
    "sort, key",
    [
        ("status", lambda b: (b.status, b.pk)),
        ("author", lambda b: (b.author.name, b.pk)),
        ("is_available", lambda b: (b.is_available, b.pk)),
    ],
)
def test_equal_sort_values_keep_pk_order_on_every_page(admin_client, catalogue, sort, key):
    ascending = all_pages(admin_client, f"sort={sort}", page_size=7)
    assert [b.pk for b in ascending] == [b.pk for b in sorted(catalogue["books"], key=key)]
    descending = all_pages(admin_client, f"sort=-{sort}", page_size=7)
    # Descending by the value, but still ascending by pk among equal values.
    expected = sorted(catalogue["books"], key=lambda b: b.pk)
    expected = sorted(expected, key=lambda b: key(b)[0], reverse=True)
    assert [b.pk for b in descending] == [b.pk for b in expected]


@pytest.mark.parametrize("sort", ["title", "-title"])
def test_duplicate_titles_keep_pk_order_in_both_directions(admin_client, catalogue, sort):
    # An index on title lets the database walk equal titles backwards for a descending
    # sort; only the pk tie-break keeps them in pk order.
    author = catalogue["authors"][0]
    for _ in range(7):
        Book.objects.create(title="Same title", author=author, price=Decimal("1.00"))
    rows = all_pages(admin_client, f"sort={sort}", page_size=3)
    same = [b.pk for b in rows if b.title == "Same title"]
    assert len(same) == 7
    assert same == sorted(same)
    assert len({b.pk for b in rows}) == len(rows) == 37


@pytest.mark.parametrize("sort", ["genre", "-genre", "status", "-is_available", "-author"])
def test_paging_never_repeats_or_skips_a_row(admin_client, catalogue, sort):
    rows = all_pages(admin_client, f"sort={sort}", page_size=4)
    assert len(rows) == 30
    assert {b.pk for b in rows} == {b.pk for b in catalogue["books"]}
    field = sort.lstrip("-")
    for before, after in zip(rows, rows[1:], strict=False):
        if getattr(before, f"{field}_id", getattr(before, field)) == getattr(
            after, f"{field}_id", getattr(after, field)
        ):
            assert before.pk < after.pk


@pytest.mark.parametrize("sort", ["nope", "-nope", "tags", "price_band", "author__password", "-", ""])
def test_unknown_or_unsortable_sort_is_ignored(admin_client, catalogue, sort):
    default = admin_client.get(f"{BOOKS}?page_size=50")
    response = admin_client.get(f"{BOOKS}?sort={sort}&page_size=50")
    assert response.status_code == 200
    assert pks(response) == pks(default)
    assert titles(default) == sorted(titles(default))  # Book.Meta.ordering
    assert "aria-sort" not in response.content.decode()


@own_urls
def test_view_ordering_is_the_default_sort(admin_client, catalogue):
    response = admin_client.get("/cheap-books/")
    assert [r["object"].price for r in response.context_data["rows"]] == [Decimal(p) for p in range(5, 10)]
    by_status = admin_client.get("/cheap-books/?sort=-status")
    assert by_status.context_data["rows"][0]["object"].status == "published"


# ----- pagination ---------------------------------------------------------------------------
def test_paginate_by(admin_client, catalogue):
    first = admin_client.get(BOOKS)
    second = admin_client.get(f"{BOOKS}?page=2")
    assert len(first.context_data["rows"]) == 25
    assert len(second.context_data["rows"]) == 5
    assert set(pks(first)).isdisjoint(pks(second))
    assert "Showing <strong>26–30</strong> of <strong>30</strong>" in second.content.decode()


@pytest.mark.parametrize("size, rows", [("10", 10), ("50", 30), ("100", 30)])
def test_page_size_choice(admin_client, catalogue, size, rows):
    response = admin_client.get(f"{BOOKS}?page_size={size}")
    assert len(response.context_data["rows"]) == rows
    assert response.context_data["page_obj"].paginator.per_page == int(size)
    assert f'<option value="{size}" selected>' in response.content.decode()


@pytest.mark.parametrize("size", ["7", "abc", "-10", "0", "100000", "1e3", " 10"])
def test_page_size_outside_the_options_is_ignored(admin_client, catalogue, size):
    response = admin_client.get(f"{BOOKS}?page_size={size}")
    assert response.status_code == 200
    assert response.context_data["page_obj"].paginator.per_page == 25
    assert len(response.context_data["rows"]) == 25


def test_page_size_options_include_the_views_own_default(admin_client, db):
    for i in range(8):
        Author.objects.create(name=f"A{i}")
    response = admin_client.get("/author/")
    assert response.context_data["page_size_options"] == [10, 25, 50, 100]
    cheap = admin_client.get("/book/")
    assert 25 in cheap.context_data["page_size_options"]


@pytest.mark.parametrize("page", ["99", "3"])
def test_page_past_the_end_shows_the_last_page(admin_client, catalogue, page):
    response = admin_client.get(f"{BOOKS}?page={page}&page_size=10")
    assert response.status_code == 200
    assert response.context_data["page_obj"].number == 3
    assert titles(response) == [f"Book {i:02d}" for i in range(20, 30)]


def test_non_numeric_page_shows_the_first_page(admin_client, catalogue):
    response = admin_client.get(f"{BOOKS}?page=abc")
    assert response.status_code == 200
    assert response.context_data["page_obj"].number == 1


def test_page_links_keep_filters_search_sort_and_page_size(admin_client, catalogue):
    response = admin_client.get(f"{BOOKS}?is_available=true&q=book&sort=-price&page_size=10")
    assert total(response) == 15
    page_links = links(response, "pc-page")
    assert page_links  # numbered page plus "Next"
    for query in page_links:
        assert query["is_available"] == ["true"]
        assert query["q"] == ["book"]
        assert query["sort"] == ["-price"]
        assert query["page_size"] == ["10"]
        assert query["page"] == ["2"]
    second = admin_client.get(f"{BOOKS}?is_available=true&q=book&sort=-price&page_size=10&page=2")
    assert {q["page"][0] for q in links(second, "pc-page")} == {"1"}
    assert [r["object"].price for r in second.context_data["rows"]] == sorted(
        (b.price for b in catalogue["books"] if b.is_available), reverse=True
    )[10:]


def test_filter_form_carries_the_sort_and_page_size(admin_client, catalogue):
    page = admin_client.get(f"{BOOKS}?sort=-price&page_size=50").content.decode()
    start = page.index('id="pc-filters"')
    form = page[start : page.index("</form>", start)]
    hidden = re.findall(r'<input type="hidden" name="sort" value="-price"( form="pc-filters")?>', page)
    # The sort travels with the filter form: inside it, or attached to it by form="pc-filters".
    assert hidden
    assert any(hidden) or '<input type="hidden" name="sort" value="-price">' in form
    assert '<option value="50" selected>' in form
    unsorted = admin_client.get(BOOKS).content.decode()
    assert 'name="sort"' not in unsorted


# ----- filtering ----------------------------------------------------------------------------
def test_filter_by_choice(admin_client, catalogue):
    response = admin_client.get(f"{BOOKS}?status=published")
    expected = {b.pk for b in catalogue["books"] if b.status == "published"}
    assert set(pks(response)) == expected
    assert len(expected) == 8
    assert "No books" not in response.content.decode()


def test_filter_by_foreign_key(admin_client, catalogue):
    calvino = catalogue["authors"][1]
    response = admin_client.get(f"{BOOKS}?author={calvino.pk}")
    assert set(pks(response)) == {b.pk for b in catalogue["books"] if b.author_id == calvino.pk}
    assert total(response) == 10


@pytest.mark.parametrize("value, expected", [("true", True), ("false", False)])
def test_filter_by_boolean(admin_client, catalogue, value, expected):
    response = admin_client.get(f"{BOOKS}?is_available={value}")
    assert total(response) == 15
    assert {r["object"].is_available for r in response.context_data["rows"]} == {expected}


def test_filter_by_text_is_case_insensitive_contains(admin_client, catalogue):
    response = admin_client.get("/author/?country=ITAL")
    assert [r["object"].name for r in response.context_data["rows"]] == ["Italo Calvino"]
    assert [r["object"].name for r in admin_client.get("/author/?country=tA").context_data["rows"]] == [
        "Italo Calvino",  # Italy
        "Ursula Le Guin",  # United States
    ]


@own_urls
def test_filter_by_related_text_path_is_contains(admin_client, catalogue):
    response = admin_client.get("/related-books/?author__country=ital&page_size=50")
    assert total(response) == 10
    assert {r["object"].author.name for r in response.context_data["rows"]} == {"Italo Calvino"}
    assert "Author country</label>" in response.content.decode()


def test_filters_combine(admin_client, catalogue):
    achebe = catalogue["authors"][2]
    response = admin_client.get(f"{BOOKS}?author={achebe.pk}&is_available=true&status=out_of_print")
    expected = {
        b.pk
        for b in catalogue["books"]
        if b.author_id == achebe.pk and b.is_available and b.status == "out_of_print"
    }
    assert set(pks(response)) == expected
    assert expected  # the fixture has such books


@own_urls
def test_custom_filterset_class(admin_client, catalogue):
    response = admin_client.get("/custom-filter-books/?max_price=9.50&page_size=50")
    assert titles(response) == ["Book 00", "Book 01", "Book 02", "Book 03", "Book 04"]
    page = response.content.decode()
    assert "Max price</label>" in page
    assert 'name="status"' not in page  # only the FilterSet's own fields are offered
    both = admin_client.get("/custom-filter-books/?max_price=20&title_starts=book 1")
    assert titles(both) == [f"Book {i}" for i in range(10, 16)]


@pytest.mark.parametrize(
    "query",
    [
        "author=abc",
        "author=999999",
        "genre=-1",
        "status=zzz",
        "is_available=maybe",
        "author=1%27--",
        "author=%00",
        "is_available=true&status=nonsense",
    ],
)
def test_invalid_filter_values_do_not_fail(admin_client, catalogue, query):
    response = admin_client.get(f"{BOOKS}?{query}&page_size=50")
    assert response.status_code == 200
    if query.startswith("is_available=true"):
        assert total(response) == 15  # the valid filter still applies
    else:
        assert total(response) == 30


def test_invalid_filter_value_is_reported_next_to_the_field(admin_client, catalogue):
    page = admin_client.get(f"{BOOKS}?status=zzz").content.decode()
    assert 'class="pc-field-error"' in page
    assert "Select a valid choice" in page


@own_urls
def test_invalid_custom_filter_value_does_not_fail(admin_client, catalogue):
    response = admin_client.get("/custom-filter-books/?max_price=cheap&page_size=50")
    assert response.status_code == 200
    assert total(response) == 30


# ----- search -------------------------------------------------------------------------------
def test_search_over_related_field(admin_client, catalogue):
    response = admin_client.get(f"{BOOKS}?q=CALVINO&page_size=50")
    assert {r["object"].author.name for r in response.context_data["rows"]} == {"Italo Calvino"}
    assert total(response) == 10


def test_search_over_own_field(admin_client, catalogue):
    response = admin_client.get(f"{BOOKS}?q=book 07")
    assert titles(response) == ["Book 07"]


def test_search_needs_every_word_in_some_field(admin_client, catalogue):
    response = admin_client.get(f"{BOOKS}?q=calvino  0&page_size=50")
    assert titles(response) == ["Book 01", "Book 04", "Book 07", "Book 10"]


def test_search_without_matches(admin_client, catalogue):
    response = admin_client.get(f"{BOOKS}?q=zzz")
    assert response.context_data["rows"] == []
    assert "No books match these filters." in response.content.decode()


def test_search_combines_with_filter_and_sort(admin_client, catalogue):
    response = admin_client.get(f"{BOOKS}?q=le guin&is_available=true&sort=-title&page_size=50")
    expected = sorted(
        (b.title for b in catalogue["books"] if b.author.name == "Ursula Le Guin" and b.is_available),
        reverse=True,
    )
    assert titles(response) == expected
    assert expected


@own_urls
def test_search_over_many_to_many_does_not_repeat_rows(admin_client, catalogue):
    # Book 00 has two tags that both contain "n"; it must still appear once.
    response = admin_client.get("/related-books/?q=n")
    assert pks(response) == [catalogue["books"][0].pk]
    assert total(response) == 1
    Tag.objects.create(name="nobel")
    catalogue["books"][1].tags.add(*Tag.objects.all())
    response = admin_client.get("/related-books/?q=n&sort=title")
    assert titles(response) == ["Book 00", "Book 01"]


# ----- HTMX ---------------------------------------------------------------------------------
def test_htmx_request_gets_only_the_content_partial(htmx_client, catalogue):
    response = htmx_client.get(f"{BOOKS}?sort=-title&page_size=10")
    page = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in page
    assert page.lstrip().startswith('<div id="pc-content"')
    assert 'id="pc-filters"' not in page
    assert titles(response) == [f"Book {i:02d}" for i in range(29, 19, -1)]
    assert "Book 29" in cells(response)


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_HX_BOOSTED": "true"},
        {"HTTP_HX_HISTORY_RESTORE_REQUEST": "true"},
    ],
)
def test_boosted_and_history_restore_requests_get_the_full_page(htmx_client, catalogue, headers):
    page = htmx_client.get(BOOKS, **headers).content.decode()
    assert "<html" in page
    assert 'id="pc-filters"' in page
    assert 'id="pc-content"' in page


def test_plain_request_gets_the_full_page(admin_client, catalogue):
    page = admin_client.get(BOOKS).content.decode()
    assert page.lstrip().startswith("<!doctype html>")
    assert 'id="pc-filters"' in page
    assert 'id="pc-content"' in page
    assert 'id="pc-modal"' in page


# ----- query count --------------------------------------------------------------------------
@pytest.fixture
def many_books(catalogue: dict[str, Any]) -> None:
    """120 more books, each with a genre and both tags, so every column has work to do."""
    authors, genres, tags = catalogue["authors"], catalogue["genres"], catalogue["tags"]
    books = Book.objects.bulk_create(
        Book(
            title=f"Extra {i:03d}",
            author=authors[i % 3],
            genre=genres[i % 2],
            status="published",
            price=Decimal("12.50"),
            published_date=datetime.date(2020, 1, 1),
            pages=200,
        )
        for i in range(120)
    )
    books = list(Book.objects.filter(title__startswith="Extra"))
    Through = Book.tags.through
    Through.objects.bulk_create(Through(book_id=b.pk, tag_id=t.pk) for b in books for t in tags)


def test_list_query_count_does_not_grow_with_rows(client, user_factory, many_books):
    user = user_factory("clerk", "view_book", "add_book", "change_book", "delete_book")
    client.force_login(user)
    client.get(f"{BOOKS}?page_size=10")  # warm caches outside the measurement
    counts = {}
    for size in (10, 100):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"{BOOKS}?page_size={size}&sort=author")
        assert len(response.context_data["rows"]) == size
        assert response.context_data["rows"][0]["update_url"]  # action links are built per row
        counts[size] = len(queries)
    assert counts[100] == counts[10], counts
    assert counts[10] <= 15, counts  # session, user, permissions, count, rows, prefetch, filter choices


def test_filtered_htmx_list_query_count_does_not_grow_with_rows(htmx_client, many_books):
    counts = {}
    for size in (10, 100):
        with CaptureQueriesContext(connection) as queries:
            response = htmx_client.get(f"{BOOKS}?page_size={size}&q=extra&status=published")
        assert len(response.context_data["rows"]) == size
        counts[size] = len(queries)
    assert counts[100] == counts[10], counts


def test_a_foreign_key_filter_over_a_big_table_becomes_a_search_control(admin_client, catalogue):
    """Still an exact filter on the key, in the same place; drawn as a relation search
    (tests/test_relations.py covers the control and its endpoint)."""
    from django.test import override_settings

    calvino = catalogue["authors"][1]
    with override_settings(POWERCRUD_SETTINGS={"FILTER_SELECT_MAX_CHOICES": 2}):
        response = admin_client.get("/book/", {"author": str(calvino.pk)})
        page = response.content.decode()
    assert response.status_code == 200
    assert 'data-pc-relation="/book/relation/author/?for=filter"' in page
    assert '<select name="author"' not in page
    titles = {row["object"].author.name for row in response.context_data["rows"]}
    assert titles == {"Italo Calvino"}


def test_a_foreign_key_filter_over_a_small_table_stays_a_select(admin_client, catalogue):
    response = admin_client.get("/book/")
    assert '<select name="author"' in response.content.decode()


def test_htmx_updates_send_the_clear_link_out_of_band(htmx_client, catalogue):
    filtered = htmx_client.get("/book/", {"status": "published"}).content.decode()
    clear = '<a class="pc-btn pc-btn-ghost" href="/book/">Clear</a>'
    assert f'<span id="pc-clear-filters" hx-swap-oob="true">{clear}' in filtered
    unfiltered = htmx_client.get("/book/").content.decode()
    assert '<span id="pc-clear-filters" hx-swap-oob="true"></span>' in unfiltered


def query_kinds(queries: CaptureQueriesContext) -> list[str]:
    """Each query as ``<first table>`` (``count <table>`` for a count), in order."""
    kinds = []
    for query in queries.captured_queries:
        table = re.search(r'FROM "(\w+)"', query["sql"])
        name = table.group(1) if table else query["sql"][:40]
        kinds.append(f"count {name}" if query["sql"].startswith("SELECT COUNT(*)") else name)
    return kinds


# What page 1 of the list asks the database, query by query. A change that adds one must say
# why here: bench/list_page.py measures this page against a plain ListView, which makes 6.
LIST_PAGE_QUERIES = [
    "django_session",  # the session (and the selection in it)
    "auth_user",  # the user
    "powercrud_viewpreference",  # the user's columns, saved views and display settings: one query
    "count testapp_book",  # the paginator's count
    "testapp_book",  # the page's rows, authors and genres joined
    "testapp_tag",  # their tags, prefetched
]
# The filter form is drawn on full pages only, and its relation filters decide there (not in
# the htmx partial) whether they are a select or a search control.
FULL_PAGE_ONLY = [
    "powercrud_bulktask",  # background runs that ended unseen (a toast each), full pages only
    "testapp_genre",  # is the genre filter a select or a search? (a 201st row: search)
    "testapp_genre",  # the genre filter's options
    "testapp_author",  # the same for the author filter
    "testapp_author",  # its options (three authors here: a select; the demo's 5,000 search)
]


def test_the_list_page_makes_a_known_set_of_queries(admin_client, htmx_client, catalogue):
    admin_client.get(BOOKS)  # warm caches outside the measurement
    with CaptureQueriesContext(connection) as full:
        admin_client.get(BOOKS)
    with CaptureQueriesContext(connection) as partial:
        htmx_client.get(BOOKS, headers={"HX-Target": "pc-content"})
    assert query_kinds(full) == LIST_PAGE_QUERIES + FULL_PAGE_ONLY
    assert query_kinds(partial) == LIST_PAGE_QUERIES


def test_a_list_request_asks_for_its_roles_once_and_reverses_each_url_once(
    admin_client, catalogue, monkeypatch
):
    """get_roles() walks every role's feature hooks and reverse() resolves a URL name: both
    cost a list page 3.5 M instructions when asked again and again (17 and 14 times)."""
    from powercrud import views
    from tests.testapp.views import BookCRUDView

    admin_client.get(BOOKS)  # the URLconf is imported (and asks every view) on the first request
    asked = []
    real_roles = BookCRUDView.get_roles.__func__
    monkeypatch.setattr(
        BookCRUDView, "get_roles", classmethod(lambda cls: asked.append(cls) or real_roles(cls))
    )
    reversed_urls = []
    real_reverse = views.reverse

    def counting_reverse(name, **kwargs):
        reversed_urls.append((name, repr(kwargs)))
        return real_reverse(name, **kwargs)

    monkeypatch.setattr(views, "reverse", counting_reverse)
    response = admin_client.get(BOOKS)
    assert response.status_code == 200 and 'data-pc-menu="columns"' in response.content.decode()
    assert len(asked) == 1
    assert len(reversed_urls) == len(set(reversed_urls)) > 3
    # Each instance keeps its own: a second request asks again.
    admin_client.get(BOOKS)
    assert len(asked) == 2


def test_the_list_builds_its_columns_once_a_request(admin_client, catalogue, monkeypatch):
    """The sort, the headers and the rows each ask for the columns; they are built once."""
    from powercrud import columns

    built = []
    real = columns.build_columns
    monkeypatch.setattr(columns, "build_columns", lambda *a, **k: built.append(1) or real(*a, **k))
    response = admin_client.get(BOOKS, {"sort": "-price"})
    assert response.status_code == 200
    assert len(built) == 1
