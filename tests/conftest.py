"""Shared fixtures: users by permission, a small catalogue, and an HTMX-speaking client."""

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

from sample.models import Author, Book, Genre, Tag


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
        user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
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


@pytest.fixture
def catalogue(db: None) -> dict[str, Any]:
    """Three authors, two genres, two tags and 30 books with varied, predictable values."""
    authors = [
        Author.objects.create(name=name, country=country)
        for name, country in [
            ("Ursula Le Guin", "United States"),
            ("Italo Calvino", "Italy"),
            ("Chinua Achebe", "Nigeria"),
        ]
    ]
    genres = [Genre.objects.create(name="Fantasy"), Genre.objects.create(name="Classics")]
    tags = [Tag.objects.create(name="award-winner"), Tag.objects.create(name="signed")]
    books = []
    statuses = [s for s, _ in Book.Status.choices]
    for i in range(30):
        books.append(
            Book.objects.create(
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
