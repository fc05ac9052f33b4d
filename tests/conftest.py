"""Shared fixtures: users by permission, a small catalogue of the test app's models
(``tests.testapp``), and an HTMX-speaking client."""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection, models
from django.test import Client

from tests.testapp.models import Author, Book, Genre, Tag

APP_LABELS = ("testapp", "powercrud")


class HtmxClient(Client):
    """A test client whose requests carry ``HX-Request`` (and optionally a target)."""

    def generic(self, method: str, path: str, *args: Any, **extra: Any) -> Any:  # type: ignore[override]
        extra.setdefault("HTTP_HX_REQUEST", "true")
        return super().generic(method, path, *args, **extra)


@contextlib.contextmanager
def model_table(model: type[models.Model]) -> Iterator[Any]:
    """``model`` (a model made inside a test) with its table, dropped when the block ends."""
    with connection.schema_editor() as editor:
        editor.create_model(model)
    try:
        yield model
    finally:
        with connection.schema_editor() as editor:
            editor.delete_model(model)


def make_user(username: str, *codenames: str, superuser: bool = False) -> User:
    user = User.objects.create_user(username, password="pw", is_superuser=superuser, is_staff=superuser)
    if codenames:
        # The test app's and powercrud's own permissions (the demo app has a "change_book" too).
        found = Permission.objects.filter(codename__in=codenames, content_type__app_label__in=APP_LABELS)
        assert found.count() == len(set(codenames)), f"unknown permission among {codenames}"
        user.user_permissions.set(found)
    return user


@pytest.fixture
def admin_user(db: None) -> User:
    return make_user("boss", superuser=True)


@pytest.fixture
def user_factory(db: None) -> Callable[..., User]:
    return make_user


@pytest.fixture
def admin_client(admin_user: User) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def htmx_client(admin_user: User) -> HtmxClient:
    client = HtmxClient()
    client.force_login(admin_user)
    return client


def make_catalogue(
    author: Any = Author, genre: Any = Genre, tag: Any = Tag, book: Any = Book
) -> dict[str, Any]:
    """Three authors, two genres, two tags and 30 books with varied, predictable values, made
    with the given model classes (the test app's by default; the demo's tests pass their own)."""
    authors = [
        author.objects.create(name=name, country=country)
        for name, country in [
            ("Ursula Le Guin", "United States"),
            ("Italo Calvino", "Italy"),
            ("Chinua Achebe", "Nigeria"),
        ]
    ]
    genres = [genre.objects.create(name="Fantasy"), genre.objects.create(name="Classics")]
    tags = [tag.objects.create(name="award-winner"), tag.objects.create(name="signed")]
    books = []
    statuses = [s for s, _ in book.Status.choices]
    for i in range(30):
        books.append(
            book.objects.create(
                title=f"Book {i:02d}",
                author=authors[i % 3],
                genre=genres[i % 2] if i % 5 else None,
                status=statuses[i % 4],
                price=Decimal("5.00") + i,
                published_date=datetime.date(2000, 1, 1) + datetime.timedelta(days=i * 40),
                pages=100 + i * 10,
                is_available=i % 2 == 0,
            )
        )
    books[0].tags.set(tags)
    return {"authors": authors, "genres": genres, "tags": tags, "books": books}


@pytest.fixture
def catalogue(db: None) -> dict[str, Any]:
    """The test app's catalogue (``make_catalogue``)."""
    return make_catalogue()


@pytest.fixture
def shop(db: None) -> dict[str, Any]:
    """Two authors, two genres, three tags and ten books (eight drafts, two published;
    Book 00 tagged tag-0, Book 01 tagged tag-0 and tag-1), for the bulk service tests."""
    authors = [Author.objects.create(name=f"Author {i}") for i in range(2)]
    genres = [Genre.objects.create(name=f"Genre {i}") for i in range(2)]
    tags = [Tag.objects.create(name=f"tag-{i}") for i in range(3)]
    Book.objects.bulk_create(
        Book(
            title=f"Book {i:02d}",
            author=authors[i % 2],
            genre=genres[0],
            status="draft" if i < 8 else "published",
            price=Decimal("10.00") + i,
            published_date=datetime.date(2020, 1, 1),
            pages=100,
            is_available=True,
        )
        for i in range(10)
    )
    books = list(Book.objects.order_by("pk"))
    books[0].tags.set([tags[0]])
    books[1].tags.set([tags[0], tags[1]])
    return {"authors": authors, "genres": genres, "tags": tags, "books": books}


def row_cell(url: str, pk: Any) -> str:
    """The first cell of a row error in the bulk modal: the row's key, linked to its page."""
    return (
        f'<td><a class="pc-link" href="{url}" target="_blank" rel="noopener">#{pk}'
        '<span class="pc-visually-hidden"> (opens in a new tab)</span></a></td>'
    )
