"""``<script>alert(1)</script>`` in data (titles, names, tags, descriptions, a username), in
the query string, in validation messages that echo input and in a backend's error messages
renders escaped on every page; spreadsheet formulas in the outcomes CSV are neutralised; an
exception in a backend shows no internals anywhere."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.test import Client

from powercrud.jobs.worker import run_bulk_task
from powercrud.models import BulkTask, RowLock
from tests.bulk_urls import book_snapshot, select
from tests.security.conftest import login, plant_ids
from tests.security.urls import ESCAPED, FORMULAS, SCRIPT, SECRET
from tests.testapp.models import Asset, Author, Book, Genre, Tag

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.security.urls")]

Catalogue = dict[str, Any]


@pytest.fixture
def poisoned(catalogue: Catalogue) -> Catalogue:
    """The catalogue with the script in two titles, an author, a genre, a tag and an asset."""
    books = catalogue["books"]
    Book.objects.filter(pk__in=[books[0].pk, books[3].pk]).update(title=SCRIPT)
    Author.objects.filter(pk=catalogue["authors"][1].pk).update(name=SCRIPT)
    Genre.objects.filter(pk=catalogue["genres"][0].pk).update(name=SCRIPT)
    Tag.objects.filter(pk=catalogue["tags"][0].pk).update(name=SCRIPT)
    Asset.objects.create(code="A-1", description=SCRIPT)
    return catalogue


def assert_escaped(body: str, where: Any, shown: bool = True) -> None:
    assert SCRIPT not in body, where
    if shown:
        assert ESCAPED in body, where


def test_data_renders_escaped_on_every_page(admin_user: Any, poisoned: Catalogue) -> None:
    book = poisoned["books"][0]  # a script title, two tags (one a script), no genre
    author = poisoned["authors"][0]  # Ursula: her books include the script titles, so she is protected
    pages = [
        "/book/",
        f"/book/?q={SCRIPT}&sort={SCRIPT}&status={SCRIPT}&page_size={SCRIPT}&page={SCRIPT}",
        f"/book/{book.pk}/",
        f"/book/{book.pk}/edit/",
        "/book/new/",
        f"/book/{book.pk}/delete/",
        "/book/bulk/edit/",
        "/book/bulk/delete/",
        "/book/selection/",
        "/author/",
        "/genre/",
        "/tag/",
        "/asset/",
    ]
    for htmx in (False, True):
        client = login(admin_user, htmx=htmx)
        select(client, "book", [book.pk, poisoned["books"][3].pk])
        for url in pages:
            response = client.get(url)
            assert response.status_code == 200, url
            shown = not url.endswith(("selection/", "bulk/delete/"))  # counts only, no row data
            assert_escaped(response.content.decode(), (url, htmx), shown=shown)
        # A refused delete names the rows that block it: their titles, escaped.
        response = client.post(f"/author/{author.pk}/delete/")
        assert response.status_code == 409
        assert_escaped(response.content.decode(), "protected delete")
    # The message after a save names the row: escaped in the toast of the next page.
    client = login(admin_user)
    data = {"title": SCRIPT, "author": author.pk, "status": "draft", "price": "1"}
    response = client.post(f"/book/{poisoned['books'][1].pk}/edit/", data, follow=True)
    assert response.redirect_chain == [("/book/", 302)]
    assert_escaped(response.content.decode(), "saved message")
    assert f"Book “{ESCAPED}” saved." in response.content.decode()


def test_validation_messages_that_echo_input_are_escaped(htmx_client: Client, poisoned: Catalogue) -> None:
    select(htmx_client, "book", [poisoned["books"][1].pk])
    before = book_snapshot()
    posts = [
        ("/book/bulk/edit/", {"change_status": "1", "status": SCRIPT}),
        ("/book/bulk/edit/", {"change_tags": "1", "tags__op": SCRIPT, "tags": [SCRIPT]}),
        ("/book/bulk/edit/", {"change_published_date": "1", "published_date": SCRIPT}),
        (
            "/book/new/",
            {"title": SCRIPT, "author": SCRIPT, "status": SCRIPT, "price": SCRIPT, "tags": [SCRIPT]},
        ),
        (f"/book/{poisoned['books'][1].pk}/edit/", {"title": "x", "status": SCRIPT, "price": "1"}),
        ("/book/bulk/edit/", {f"change_{SCRIPT}": "1"}),
        ("/book/selection/", {"action": "set", "checked": "1", "pk": [SCRIPT]}),
        ("/book/selection/", {"action": SCRIPT}),
    ]
    for url, data in posts:
        response = htmx_client.post(url, data)
        assert response.status_code in (200, 400), url
        assert_escaped(response.content.decode(), (url, data), shown=data.get("action") != SCRIPT)
    assert book_snapshot() == before


def read_csv(response: Any) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_a_queued_run_and_its_task_pages_escape_data_and_backend_messages(
    user_factory: Any, poisoned: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    owner = user_factory(SCRIPT, "view_book", "change_book")  # a username no form would accept
    client = login(owner, htmx=True)
    books = poisoned["books"]
    select(client, "script-error-books", [books[i].pk for i in (0, 3, 5, 6, 7, 8)])
    data = {
        "change_author": "1",
        "author": poisoned["authors"][1].pk,
        "change_tags": "1",
        "tags__op": "add",
        "tags": [poisoned["tags"][0].pk],
    }
    with django_capture_on_commit_callbacks(execute=True):
        started = client.post("/script-error-books/bulk/edit/", data)
    assert started.status_code == 202
    assert_escaped(started.content.decode(), "task started", shown=False)
    task = BulkTask.objects.get()
    assert run_bulk_task(task.pk) == "failed"
    task.refresh_from_db()
    assert SCRIPT in task.message and len(task.errors) == len(FORMULAS) == 6
    staff = login(user_factory("root", superuser=True), htmx=True)
    pages = {
        "detail": f"/powercrud/tasks/{task.pk}/",
        "progress": f"/powercrud/tasks/{task.pk}/progress/",
        "list": "/powercrud/tasks/",
        "list, filtered": f"/powercrud/tasks/?status={SCRIPT}&model_label={SCRIPT}&sort={SCRIPT}",
    }
    for name, url in pages.items():
        for viewer in (client, staff):
            body = viewer.get(url).content.decode()
            assert_escaped(body, (name, viewer is staff))
    # The detail page names the chosen author and tag (both scripts), escaped.
    detail = client.get(pages["detail"]).content.decode()
    assert f"Add: {ESCAPED}" in detail and detail.count(ESCAPED) >= 5
    # The CSV: no cell a spreadsheet would run as a formula.
    # Every row of the run from its ledger; the error columns are the last two.
    rows = read_csv(client.get(f"/powercrud/tasks/{task.pk}/outcomes.csv"))
    assert rows[0][:2] == ["pk", "outcome"] and rows[0][-2:] == ["error field", "error messages"]
    cells = [cell for row in rows[1:] for cell in row]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    failed = [row for row in rows[1:] if row[1] == "failed"]
    assert sorted(row[-2] for row in failed) == sorted(f"'{formula}" for formula in FORMULAS)
    assert all(row[-1] == f"'{row[-2][1:]} {SCRIPT}" for row in failed)
    assert RowLock.objects.count() == 0


def test_a_backend_exception_shows_no_internals_in_the_request_or_on_task_pages(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user, htmx=True, raise_request_exception=False)
    edit = {"change_status": "1", "status": "archived"}
    internals = (SECRET, "hunter2", "Traceback", "RuntimeError", SCRIPT, "tests.security")
    # In the request (4 rows, below the view's async threshold of 5): a server error, rolled back.
    plant_ids(client, "exploding-books", [b.pk for b in catalogue["books"][:4]])
    before = book_snapshot()
    response = client.post("/exploding-books/bulk/edit/", edit)
    assert response.status_code == 500
    assert not [text for text in internals if text in response.content.decode()]
    assert book_snapshot() == before
    assert RowLock.objects.count() == 0
    # On a worker (6 rows): the task fails with a readable reason.
    plant_ids(client, "exploding-books", [b.pk for b in catalogue["books"][:6]])
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post("/exploding-books/bulk/edit/", edit).status_code == 202
    task = BulkTask.objects.get()
    assert run_bulk_task(task.pk) == "failed"
    task.refresh_from_db()
    assert task.message == (
        "The task stopped because of an unexpected error; nothing was saved. "
        f"The details are in the worker log under powercrud-bulk-{task.pk}."
    )
    for url in (
        f"/powercrud/tasks/{task.pk}/",
        f"/powercrud/tasks/{task.pk}/progress/",
        "/powercrud/tasks/",
        f"/powercrud/tasks/{task.pk}/outcomes.csv",
    ):
        response = client.get(url)
        body = (b"".join(response.streaming_content) if response.streaming else response.content).decode()
        assert not [text for text in internals if text in body], url
        if url.endswith("outcomes.csv"):  # every row from the ledger: none was reached
            assert body.count("not_reached") == 6, url
        elif "tasks/" + str(task.pk) in url:
            assert "The task stopped because of an unexpected error" in body, url
    assert book_snapshot() == before
    assert RowLock.objects.count() == 0
