"""Fixtures for the demo's tests: the same catalogue as the package's tests, made of the
demo's models (``sample.models``). Every test module here is marked ``demo`` and serves the
demo's URLconf (``sample.urls``) where it makes requests."""

from __future__ import annotations

from typing import Any

import pytest

from sample.models import Author, Book, Genre, Tag
from tests.conftest import make_catalogue


@pytest.fixture
def catalogue(db: None) -> dict[str, Any]:
    """The demo's catalogue: three authors, two genres, two tags and 30 books."""
    return make_catalogue(Author, Genre, Tag, Book)
