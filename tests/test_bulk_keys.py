"""A batch's keys in one parameter: the same rows as ``pk__in``, one placeholder instead of N."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection

from powercrud.bulk.keys import in_batch
from tests.async_helpers import make_books
from tests.testapp.models import Asset, Book

pytestmark = pytest.mark.django_db


def test_integer_keys_select_the_same_rows_with_one_parameter() -> None:
    books = make_books(30)
    wanted = [b.pk for b in books[3:20:2]]
    rows = Book.objects.filter(in_batch(Book, "default", wanted))
    assert sorted(rows.values_list("pk", flat=True)) == wanted
    sql, params = rows.query.sql_with_params()
    assert len(params) == 1  # the whole batch
    assert ("json_each" if connection.vendor == "sqlite" else "= ANY(") in sql


def test_other_keys_and_an_empty_batch_keep_pk_in() -> None:
    assets = [Asset.objects.create(code=f"A{i}") for i in range(3)]
    chosen = [assets[0].pk, assets[2].pk]
    rows = Asset.objects.filter(in_batch(Asset, "default", chosen))
    assert set(rows.values_list("pk", flat=True)) == set(chosen)
    assert len(rows.query.sql_with_params()[1]) == 2
    assert not Book.objects.filter(in_batch(Book, "default", [])).exists()
    assert not Asset.objects.filter(in_batch(Asset, "default", [uuid.uuid4()])).exists()


def test_keys_that_are_not_plain_integers_keep_pk_in() -> None:
    books = make_books(3)
    mixed = [books[0].pk, str(books[1].pk)]  # a str key is prepared by Django, not trusted
    rows = Book.objects.filter(in_batch(Book, "default", mixed))
    assert sorted(rows.values_list("pk", flat=True)) == [books[0].pk, books[1].pk]
    assert len(rows.query.sql_with_params()[1]) == 2
