"""``update_each()``: a different value for each row, in one statement where the database allows."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.db import connection

from powercrud.bulk.setwise import update_each
from tests.async_helpers import make_books
from tests.testapp.models import Asset, Book

pytestmark = pytest.mark.django_db


def test_each_row_gets_its_own_values_in_one_statement(django_assert_num_queries: object) -> None:
    books = make_books(5)
    rows = [
        (
            b.pk,
            [
                Decimal(f"{i}.25"),
                "archived" if i % 2 else "draft",
                None if i == 2 else datetime.date(2020, 1, i + 1),
            ],
        )
        for i, b in enumerate(books)
    ]
    with django_assert_num_queries(1):  # type: ignore[operator]
        update_each(Book, "default", ["price", "status", "published_date"], rows)
    got = {b.pk: (b.price, b.status, b.published_date) for b in Book.objects.all()}
    assert got == {pk: tuple(values) for pk, values in rows}


def test_the_same_extra_values_for_every_row_and_other_keys() -> None:
    books = make_books(2)
    update_each(Book, "default", ["price"], [(books[0].pk, [Decimal("1.50")])], also={"status": "published"})
    first, second = Book.objects.order_by("pk")
    assert (first.price, first.status) == (Decimal("1.50"), "published")
    assert second.status == "draft"  # not in rows
    asset = Asset.objects.create(code="A1")  # a UUID key: Django's bulk_update
    update_each(Asset, "default", ["description"], [(asset.pk, ["moved"])])
    asset.refresh_from_db()
    assert asset.description == "moved"
    assert connection.vendor in ("sqlite", "postgresql")
