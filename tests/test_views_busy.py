"""SQLite locked by another writer past its ``timeout``: a 503 that says to try again, never a 500."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError
from django.test import Client

from powercrud.bulk import BulkUpdateService
from powercrud.views import database_busy
from tests.bulk_urls import PlainBookView, book_snapshot, select
from tests.testapp.models import Book

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.bulk_urls")]

BUSY = (
    "The database is busy with another change (SQLite saves one change at a time), so nothing "
    "was saved. Try again in a moment."
)


def test_the_error_sqlite_gives_when_another_writer_holds_the_lock_is_recognised(tmp_path: Path) -> None:
    path = tmp_path / "busy.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError) as caught:
        other.execute("BEGIN IMMEDIATE")
    holder.close()
    other.close()
    assert database_busy(OperationalError(*caught.value.args))
    assert not database_busy(OperationalError("no such table: testapp_book"))


def busy(*args: Any, **kwargs: Any) -> Any:
    raise OperationalError("database is locked")


def test_a_form_save_that_finds_the_database_locked_is_a_503_saying_what_to_do(
    htmx_client: Client, catalogue: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = catalogue["books"][0]
    monkeypatch.setattr(PlainBookView, "persist_single_object", busy)
    data = {"title": "Renamed", "author": book.author_id, "status": "draft", "price": "1.00"}
    response = htmx_client.post(f"/plain-books/{book.pk}/edit/", data)
    assert response.status_code == 503
    html = response.content.decode()
    assert '<h2 id="pc-modal-title">Try again in a moment</h2>' in html
    assert BUSY in html
    book.refresh_from_db()
    assert book.title == "Book 00"


def test_a_bulk_edit_that_finds_the_database_locked_is_a_503_and_writes_nothing(
    htmx_client: Client, catalogue: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    select(htmx_client, "plain-books", [b.pk for b in catalogue["books"][:3]])
    monkeypatch.setattr(BulkUpdateService, "apply", busy)
    before = book_snapshot()
    response = htmx_client.post("/plain-books/bulk/edit/", {"change_status": "1", "status": "archived"})
    assert response.status_code == 503
    assert BUSY in response.content.decode()
    assert book_snapshot() == before


def test_other_database_errors_are_not_hidden(
    htmx_client: Client, catalogue: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("no such table: testapp_book")

    monkeypatch.setattr(PlainBookView, "persist_single_object", broken)
    book = catalogue["books"][0]
    data = {"title": "Renamed", "author": book.author_id, "status": "draft", "price": "1.00"}
    with pytest.raises(OperationalError, match="no such table"):
        htmx_client.post(f"/plain-books/{book.pk}/edit/", data)
    assert Book.objects.get(pk=book.pk).title == "Book 00"
