"""``powercrud.columns``: which columns a list shows, their labels, sort keys and cell values."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import FieldDoesNotExist

from powercrud import columns as cols
from powercrud.columns import Column
from tests.testapp.models import Asset, Author, Book, Genre, Shelf, ShelfEvent, Tag


def test_resolve_field_path_follows_relations():
    chain = cols.resolve_field_path(Book, "author__name")
    assert chain == [Book._meta.get_field("author"), Author._meta.get_field("name")]
    assert cols.resolve_field_path(Book, "tags__name")[-1] == Tag._meta.get_field("name")


def test_resolve_field_path_names_the_bad_part():
    with pytest.raises(FieldDoesNotExist, match="Author has no field named 'nope'"):
        cols.resolve_field_path(Book, "author__nope")
    with pytest.raises(FieldDoesNotExist) as excinfo:
        cols.resolve_field_path(Book, "title__length")
    assert str(excinfo.value) == "Book.title is not a relation"


def test_default_field_names_skip_the_primary_key():
    assert cols.default_field_names(Book) == [
        "title",
        "author",
        "genre",
        "status",
        "price",
        "published_date",
        "pages",
        "is_available",
        "tags",
    ]
    assert cols.default_field_names(Asset) == ["code", "description", "in_service"]


def test_build_columns_for_the_book_list():
    fields = ["title", "author", "genre", "status", "price", "pages", "is_available", "tags", "author__name"]
    assert cols.build_columns(Book, fields, ["price_band"]) == [
        Column("title", "Title", "field", "title", "start"),
        Column("author", "Author", "related", "author__name"),  # sorts by Author.Meta.ordering
        Column("genre", "Genre", "related", "genre__name"),
        Column("status", "Status", "field", "status", "start"),
        Column("price", "Price", "field", "price", "end"),
        Column("pages", "Pages", "field", "pages", "end"),
        Column("is_available", "Available", "field", "is_available", "center"),
        Column("tags", "Tags", "many", None),
        Column("author__name", "Author name", "field", "author__name"),
        Column("price_band", "Price band", "property", None),
    ]


def test_property_label_uses_short_description(monkeypatch):
    def loudness(self: Book) -> str:
        return self.title.upper()

    loudness.short_description = "Shouted title"  # type: ignore[attr-defined]
    monkeypatch.setattr(Book, "loud", property(loudness), raising=False)
    assert cols.build_columns(Book, [], ["loud"]) == [Column("loud", "Shouted title", "property", None)]


def test_related_sort_key_follows_the_related_models_ordering():
    # ShelfEvent.shelf -> Shelf.Meta.ordering = ["name"].
    assert cols.build_columns(ShelfEvent, ["shelf"])[0].sort_key == "shelf__name"


def test_related_sort_key_without_ordering_falls_back_to_the_key(monkeypatch):
    monkeypatch.setattr(Genre._meta, "ordering", [])
    assert cols.build_columns(Book, ["genre"])[0].sort_key == "genre_id"
    monkeypatch.setattr(Genre._meta, "ordering", ["-name"])
    assert cols.build_columns(Book, ["genre"])[0].sort_key == "genre__name"


def test_select_related_and_prefetch_paths():
    fields = ["title", "author", "genre__name", "tags", "author__country", "price"]
    assert cols.select_related_paths(Book, fields) == ["author", "genre"]
    assert cols.prefetch_paths(Book, fields) == ["tags"]
    assert cols.select_related_paths(ShelfEvent, ["shelf__name", "message"]) == ["shelf"]
    assert cols.select_related_paths(Book, ["title", "price"]) == []
    assert cols.prefetch_paths(Author, ["books"]) == ["books"]
    assert cols.select_related_paths(Author, ["books"]) == []


@pytest.mark.django_db
def test_cell_values(catalogue):
    book = Book.objects.get(title="Book 02")  # out of print, no tags, genre "Fantasy"
    tagged = Book.objects.get(title="Book 00")  # draft, both tags, no genre
    columns = {
        c.name: c
        for c in cols.build_columns(
            Book, ["author", "genre", "status", "tags", "genre__name"], ["price_band"]
        )
    }
    assert cols.cell_value(book, columns["author"]) == catalogue["authors"][2]
    assert cols.cell_value(book, columns["status"]) == "Out of print"
    assert cols.cell_value(book, columns["genre"]) == catalogue["genres"][0]
    assert cols.cell_value(book, columns["genre__name"]) == "Fantasy"
    assert cols.cell_value(book, columns["tags"]) == ""
    assert cols.cell_value(book, columns["price_band"]) == "Budget"
    assert cols.cell_value(tagged, columns["tags"]) == "award-winner, signed"
    assert cols.cell_value(tagged, columns["genre"]) is None
    assert cols.cell_value(tagged, columns["genre__name"]) is None  # through a null relation
    assert cols.cell_value(tagged, columns["status"]) == "Draft"


@pytest.mark.django_db
def test_cell_value_of_plain_fields():
    shelf = Shelf(name="A", capacity=3, is_full=True)
    columns = {c.name: c for c in cols.build_columns(Shelf, ["name", "capacity", "is_full"])}
    assert cols.cell_value(shelf, columns["capacity"]) == 3
    assert cols.cell_value(shelf, columns["is_full"]) is True
    assert cols.cell_value(shelf, columns["name"]) == "A"


@pytest.mark.parametrize(
    "value, shown",
    [
        (Decimal("5.00"), "5.00"),
        (Decimal("1234.5"), "1234.5"),
        (datetime.date(2000, 1, 1), "Jan. 1, 2000"),
        (1.5, "1.5"),
        ("text", "text"),
        (None, None),
        (True, True),
        (7, 7),
    ],
)
def test_format_value(value, shown):
    assert cols.format_value(value) == shown


def test_format_value_uses_the_active_language():
    from django.utils import translation

    with translation.override("de"):
        assert cols.format_value(Decimal("5.50")) == "5,50"
        assert cols.format_value(datetime.date(2000, 1, 2)) == "2. Januar 2000"
