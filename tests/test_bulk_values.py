"""field_data: plain JSON-able bulk values, built from cleaned_data and turned back exactly."""

from __future__ import annotations

import datetime
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest

from powercrud.bulk import BulkInputError, M2MChange, from_field_data, to_field_data
from tests.testapp.models import Asset, Author, Book, Genre, Tag

FIELDS = ["status", "price", "published_date", "author", "genre", "is_available", "pages", "tags"]


@pytest.fixture
def related(db: None) -> dict[str, Any]:
    return {
        "author": Author.objects.create(name="Le Guin"),
        "genre": Genre.objects.create(name="Fantasy"),
        "tags": [Tag.objects.create(name="a"), Tag.objects.create(name="b")],
    }


def test_to_field_data_from_cleaned_data(related: dict[str, Any]) -> None:
    tags = related["tags"]
    cleaned = {
        "status": "published",
        "price": Decimal("12.50"),
        "published_date": datetime.date(2024, 1, 31),
        "author": related["author"],
        "genre": None,
        "is_available": True,
        "pages": 320,
        "tags": Tag.objects.filter(pk__in=[t.pk for t in tags]).order_by("pk"),
        "tags__op": "add",
        "title": "not asked for",
    }
    data = to_field_data(Book, FIELDS, cleaned)
    assert data == {
        "status": "published",
        "price": "12.50",
        "published_date": "2024-01-31",
        "author": related["author"].pk,
        "genre": None,
        "is_available": True,
        "pages": 320,
        "tags": {"op": "add", "ids": [tags[0].pk, tags[1].pk]},
    }
    assert json.loads(json.dumps(data)) == data


def test_round_trip_is_exact(related: dict[str, Any]) -> None:
    tag_ids = [t.pk for t in related["tags"]]
    data = {
        "status": "archived",
        "price": "0.05",
        "published_date": "1999-12-31",
        "author": related["author"].pk,
        "genre": related["genre"].pk,
        "is_available": False,
        "pages": None,
        "tags": {"op": "replace", "ids": tag_ids},
    }
    values = from_field_data(Book, FIELDS, json.loads(json.dumps(data)))
    assert values == {
        "status": "archived",
        "price": Decimal("0.05"),
        "published_date": datetime.date(1999, 12, 31),
        "author": related["author"].pk,
        "genre": related["genre"].pk,
        "is_available": False,
        "pages": None,
        "tags": M2MChange(op="replace", ids=tuple(tag_ids)),
    }
    assert type(values["price"]) is Decimal
    assert to_field_data(Book, FIELDS, values) == data


def test_m2m_forms(related: dict[str, Any]) -> None:
    tags = related["tags"]
    assert to_field_data(Book, ["tags"], {"tags": {"op": "remove", "ids": tags}}) == {
        "tags": {"op": "remove", "ids": [t.pk for t in tags]}
    }
    assert to_field_data(Book, ["tags"], {"tags": M2MChange("replace", ())}) == {
        "tags": {"op": "replace", "ids": []}
    }
    assert to_field_data(Book, ["tags"], {"tags": [tags[1]], "tags__op": "add"}) == {
        "tags": {"op": "add", "ids": [tags[1].pk]}
    }


def test_datetimes_uuids_and_text() -> None:
    moment = datetime.datetime(2024, 5, 1, 9, 30, tzinfo=datetime.UTC)
    from django.contrib.auth.models import User

    data = to_field_data(User, ["last_login", "first_name"], {"last_login": moment, "first_name": "Ann"})
    assert data == {"last_login": "2024-05-01T09:30:00+00:00", "first_name": "Ann"}
    assert from_field_data(User, ["last_login", "first_name"], data) == {
        "last_login": moment,
        "first_name": "Ann",
    }
    assert from_field_data(Asset, ["code"], {"code": "A-1"}) == {"code": "A-1"}


@pytest.mark.parametrize(
    ("fields", "data", "field", "message"),
    [
        (["nope"], {"nope": 1}, "nope", "'nope' is not a field of testapp.Book."),
        (
            ["id"],
            {"id": 1},
            "id",
            "'id' is the primary key of testapp.Book; it cannot be bulk edited.",
        ),
        (["price"], {}, "price", "field_data has no value for 'price', which is in fields_to_update."),
        (
            ["price"],
            {"price": "1.00", "pages": 3},
            "pages",
            "field_data has 'pages', which is not in fields_to_update.",
        ),
        (["price", "price"], {"price": "1"}, "price", "'price' is listed twice in fields_to_update."),
        (
            ["tags"],
            {"tags": {"op": "merge", "ids": [1]}},
            "tags",
            "'tags' has unknown operation 'merge'; use one of add, remove, replace.",
        ),
        (
            ["tags"],
            {"tags": {"op": "add", "ids": 1}},
            "tags",
            "'tags' ids must be a list of primary keys, got 1.",
        ),
        (
            ["tags"],
            {"tags": [1, 2]},
            "tags",
            '\'tags\' expects {"op": "add"|"remove"|"replace", "ids": [...]}, got [1, 2].',
        ),
        (
            ["tags"],
            {"tags": {"op": "add", "ids": ["x"]}},
            "tags",
            "Invalid value for 'tags': “x” value must be an integer.",
        ),
        (
            ["tags"],
            {"tags": {"op": "add", "ids": [1], "all": True}},
            "tags",
            "'tags' has unknown keys 'all'.",
        ),
        (
            ["price"],
            {"price": "cheap"},
            "price",
            "Invalid value for 'price': “cheap” value must be a decimal number.",
        ),
        (["price"], {"price": [1]}, "price", "'price' expects a single value, got [1]."),
        (
            ["price"],
            {"price": None},
            "price",
            "'price' cannot be empty (None); the field is not nullable.",
        ),
        (
            ["pages"],
            {"pages": True},
            "pages",
            "'pages' expects a positive integer, got the boolean True.",
        ),
        (["pages"], {"pages": 1.5}, "pages", "'pages' expects a whole number, got 1.5."),
        (
            ["is_available"],
            {"is_available": "maybe"},
            "is_available",
            "'is_available' expects true or false, got 'maybe'.",
        ),
        (
            ["published_date"],
            {"published_date": "2024-02-30"},
            "published_date",
            "Invalid value for 'published_date': “2024-02-30” value has the correct format "
            "(YYYY-MM-DD) but it is an invalid date.",
        ),
        (
            ["published_date"],
            {"published_date": 20240131},
            "published_date",
            "Invalid value for 'published_date': 20240131 is not a valid date (without time).",
        ),
        (
            ["author"],
            {"author": {"pk": 1}},
            "author",
            "'author' expects a single value, got {'pk': 1}.",
        ),
        (
            ["author"],
            {"author": 2**63},
            "author",
            "Invalid value for 'author': Ensure this value is less than or equal to 9223372036854775807.",
        ),
        (
            ["tags"],
            {"tags": {"op": "remove", "ids": [-(2**63) - 1]}},
            "tags",
            "Invalid value for 'tags': Ensure this value is greater than or equal to -9223372036854775808.",
        ),
        (
            ["author"],
            {"author": "three"},
            "author",
            "Invalid value for 'author': “three” value must be an integer.",
        ),
    ],
)
def test_from_field_data_rejects(fields: list[str], data: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(BulkInputError) as info:
        from_field_data(Book, fields, data)
    assert info.value.field == field
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


def test_reverse_relations_are_rejected() -> None:
    with pytest.raises(BulkInputError) as info:
        from_field_data(Author, ["books"], {"books": {"op": "add", "ids": [1]}})
    assert str(info.value) == (
        "'books' on testapp.Author is not a stored field of the model (a reverse relation or a "
        "virtual field); bulk edit writes the model's own fields."
    )


def test_non_editable_fields_are_rejected() -> None:
    with pytest.raises(BulkInputError) as info:
        from_field_data(Asset, ["id"], {"id": str(uuid.uuid4())})
    assert str(info.value) == "'id' is the primary key of testapp.Asset; it cannot be bulk edited."


def test_field_data_must_be_a_mapping() -> None:
    with pytest.raises(BulkInputError, match=r"^field_data must be a dict, not list\.$"):
        from_field_data(Book, ["price"], [("price", "1")])  # type: ignore[arg-type]


def test_to_field_data_errors(related: dict[str, Any]) -> None:
    with pytest.raises(BulkInputError) as info:
        to_field_data(Book, ["tags"], {"tags": related["tags"]})
    assert str(info.value) == (
        "'tags' needs an operation: one of add, remove, replace (in cleaned_data['tags__op']), got None."
    )
    with pytest.raises(BulkInputError) as info:
        to_field_data(Book, ["author"], {"author": related["genre"]})
    assert (
        str(info.value) == "'author' expects a testapp.Author object or its primary key, got a testapp.Genre."
    )
    with pytest.raises(BulkInputError) as info:
        to_field_data(Book, ["price"], {})
    assert str(info.value) == "No value for 'price' in the submitted data."
