"""Bad input on every endpoint that writes or reads a selection, sync and async.

Each test proves the same three things: the answer is a readable 200-with-errors or a 400
(never a 500), nothing was written, and, on views that run on a worker, nothing was queued
and no row was locked. What ``tests/test_bulk_security.py``, ``tests/test_selection.py`` and
``tests/test_bulk_views.py`` already prove for the sync path is not repeated here.
"""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django_q.models import OrmQ

from powercrud.jobs.locks import lock_key
from powercrud.jobs.worker import run_bulk_task
from powercrud.models import BulkTask, RowLock
from tests.async_helpers import freeze_now
from tests.bulk_urls import book_snapshot, changes, select, select_all
from tests.conftest import row_cell
from tests.security.conftest import (
    app_queries,
    assert_nothing_queued,
    locked_pks,
    login,
    plant,
    plant_ids,
    selection_key,
)
from tests.security.urls import SCRIPT
from tests.testapp.models import Asset, Book, Shelf, Tag

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.security.urls")]

Catalogue = dict[str, Any]
NO_ROWS = (
    '<div class="pc-alert pc-alert-error" role="alert">'
    "No rows are selected. Select rows in the list first.</div>"
)


def fieldset(page: str, name: str) -> str:
    """The bulk modal's fieldset for field ``name``."""
    for block in re.findall(r"<fieldset.*?</fieldset>", page, re.S):
        if f'name="change_{name}"' in block:
            return block
    raise AssertionError(f"no fieldset for {name}")


def submit(client: Client, url: str, data: Any, capture: Any, **kwargs: Any) -> Any:
    """POST as the browser does; the task's enqueue (an on-commit callback) runs too."""
    with capture(execute=True):
        return client.post(url, data, **kwargs)


def ursula(user_factory: Any) -> Any:
    """A user whose scoped views (``my-books``) show only Ursula Le Guin's ten books."""
    user = user_factory("ursula", "view_book", "change_book", "delete_book")
    user.first_name = "Ursula Le Guin"
    user.save()
    return user


# ----- values: wrong type, not a choice, outside the allowed queryset, model validation -------------
def invalid_values(c: Catalogue) -> list[tuple[str, dict[str, Any]]]:
    ursula_le_guin = c["authors"][0]  # not offered: LimitedBooksView allows Italy and Nigeria only
    signed = c["tags"][1]  # not offered: LimitedBooksView hides the "signed" tag
    return [
        ("price", {"change_price": "1", "price": "abc"}),
        ("is_available", {"change_is_available": "1", "is_available": "maybe"}),
        ("published_date", {"change_published_date": "1", "published_date": "2024-13-45"}),
        ("status", {"change_status": "1", "status": "bogus"}),
        ("status", {"change_status": "1", "status": SCRIPT}),
        ("genre", {"change_genre": "1", "genre": "x"}),
        ("genre", {"change_genre": "1", "genre": "999999"}),
        ("author", {"change_author": "1", "author": ursula_le_guin.pk}),
        ("tags", {"change_tags": "1", "tags__op": "add", "tags": [signed.pk]}),
        ("tags", {"change_tags": "1", "tags__op": "replace", "tags": ["999999"]}),
        ("tags", {"change_tags": "1", "tags__op": "explode", "tags": [c["tags"][0].pk]}),
        ("tags", {"change_tags": "1", "tags__op": "add", "tags": ["abc"]}),
    ]


@pytest.mark.parametrize("base", ["limited-choice-books", "async-limited-books"])
def test_invalid_values_name_their_field_and_nothing_is_written_or_queued(
    htmx_client: Client, catalogue: Catalogue, django_capture_on_commit_callbacks: Any, base: str
) -> None:
    select(htmx_client, base, [b.pk for b in catalogue["books"][:4]])
    before = book_snapshot()
    for field, data in invalid_values(catalogue):
        # A valid second field proves the request is refused as a whole.
        response = submit(
            htmx_client,
            f"/{base}/bulk/edit/",
            {"change_is_available": "1", "is_available": "false", **data},
            django_capture_on_commit_callbacks,
        )
        body = response.content.decode()
        assert response.status_code in (200, 400), (data, response.status_code)
        if response.status_code == 200:
            assert "pc-has-error" in fieldset(body, field), data
            assert body.count("pc-has-error") == 1, data
        else:
            assert f"'{field}'" in html.unescape(body), data
        assert SCRIPT not in body
        assert book_snapshot() == before, data
        assert_nothing_queued()


@pytest.mark.parametrize("base", ["plain-books", "async-books"])
def test_a_model_field_validator_is_checked_before_anything_is_queued(
    htmx_client: Client, catalogue: Catalogue, django_capture_on_commit_callbacks: Any, base: str
) -> None:
    """Book.price has MinValueValidator(0): the one value every row would get is judged once,
    in the form, so an async run is never queued only to fail on the worker."""
    select(htmx_client, base, [b.pk for b in catalogue["books"][:4]])
    before = book_snapshot()
    response = submit(
        htmx_client,
        f"/{base}/bulk/edit/",
        {"change_price": "1", "price": "-1"},
        django_capture_on_commit_callbacks,
    )
    assert response.status_code == 200
    block = fieldset(response.content.decode(), "price")
    assert "pc-has-error" in block and "Ensure this value is greater than or equal to 0." in block
    assert book_snapshot() == before
    assert_nothing_queued()


def test_the_choices_hook_restricts_what_can_be_posted_not_only_what_is_offered(
    htmx_client: Client, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    pks = [b.pk for b in catalogue["books"][:3]]
    select(htmx_client, "async-limited-books", pks)
    form = htmx_client.get("/async-limited-books/bulk/edit/").content.decode()
    assert f'value="{catalogue["tags"][1].pk}"' not in fieldset(form, "tags")
    chinua, award = catalogue["authors"][2], catalogue["tags"][0]
    response = submit(
        htmx_client,
        "/async-limited-books/bulk/edit/",
        {
            "change_author": "1",
            "author": chinua.pk,
            "change_tags": "1",
            "tags__op": "add",
            "tags": [award.pk],
        },
        django_capture_on_commit_callbacks,
    )
    assert response.status_code == 202
    task = BulkTask.objects.get()
    assert task.payload["field_data"] == {"author": chinua.pk, "tags": {"op": "add", "ids": [award.pk]}}
    assert run_bulk_task(task.pk) == "succeeded"
    assert set(Book.objects.filter(pk__in=pks).values_list("author", flat=True)) == {chinua.pk}


@pytest.fixture
def shelves(db: None) -> list[Shelf]:
    return [
        Shelf.objects.create(name="Attic", capacity=10),
        Shelf.objects.create(name="Basement", capacity=20, is_full=True),
        Shelf.objects.create(name="Cellar", capacity=30),
    ]


def test_a_model_clean_rule_on_a_worker_names_row_and_field_and_writes_nothing(
    htmx_client: Client, shelves: list[Shelf], django_capture_on_commit_callbacks: Any
) -> None:
    select(htmx_client, "async-shelves", [s.pk for s in shelves], checked=True)
    response = submit(
        htmx_client,
        "/async-shelves/bulk/edit/",
        {"change_capacity": "1", "capacity": "0"},
        django_capture_on_commit_callbacks,
    )
    assert response.status_code == 202
    task = BulkTask.objects.get()
    assert run_bulk_task(task.pk) == "failed"
    task.refresh_from_db()
    message = "A shelf with no capacity must be marked full."
    assert task.errors == [
        {"pk": shelves[0].pk, "field": "capacity", "messages": [message]},
        {"pk": shelves[2].pk, "field": "capacity", "messages": [message]},
    ]
    assert dict(Shelf.objects.values_list("name", "capacity")) == {"Attic": 10, "Basement": 20, "Cellar": 30}
    assert RowLock.objects.count() == 0
    page = htmx_client.get(f"/powercrud/tasks/{task.pk}/").content.decode()
    assert f"#{shelves[0].pk}" in page and "Capacity" in page and message in page


# ----- field names outside bulk_fields, primary keys, non-editable fields -------------------------
@pytest.mark.parametrize(
    ("base", "name"),
    [
        ("async-books", "title"),
        ("async-books", "id"),
        ("async-books", "pk"),
        ("async-books", "pages"),
        ("async-books", "author_id"),
        ("async-books", ""),
        ("async-assets", "id"),  # a UUID primary key, editable=False
        ("async-assets", "code"),
    ],
)
def test_fields_outside_bulk_fields_are_a_400_before_anything_is_queued(
    htmx_client: Client, catalogue: Catalogue, django_capture_on_commit_callbacks: Any, base: str, name: str
) -> None:
    asset = Asset.objects.create(code="A-1", description="old")
    if base == "async-assets":
        select(htmx_client, base, [asset.pk])
        valid = {"change_description": "1", "description": "new"}
    else:
        select(htmx_client, base, [b.pk for b in catalogue["books"][:3]])
        valid = {"change_status": "1", "status": "archived"}
    before = book_snapshot()
    response = submit(
        htmx_client,
        f"/{base}/bulk/edit/",
        {**valid, f"change_{name}": "1", name: "1"},
        django_capture_on_commit_callbacks,
    )
    assert response.status_code == 400
    assert f"“{name}” cannot be changed in bulk here." in response.content.decode()
    assert book_snapshot() == before
    assert Asset.objects.get().description == "old"
    assert_nothing_queued()


# ----- ids outside get_queryset(): posted, or planted in the session -------------------------------
def test_posted_ids_outside_the_scope_are_never_locked_or_written_by_a_worker(
    user_factory: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(ursula(user_factory), htmx=True)
    own = sorted(b.pk for b in catalogue["books"] if b.author == catalogue["authors"][0])
    select(client, "async-my-books", [b.pk for b in catalogue["books"]])  # all 30 posted
    before = book_snapshot()
    response = submit(
        client,
        "/async-my-books/bulk/edit/",
        {"change_price": "1", "price": "1.00"},
        django_capture_on_commit_callbacks,
    )
    assert response.status_code == 202
    task = freeze_now(BulkTask.objects.get())
    assert task.total == 10
    assert locked_pks(task) == sorted(str(pk) for pk in own)
    assert run_bulk_task(task.pk) == "succeeded"
    assert sorted(changes(before, book_snapshot())) == own
    # Bulk delete takes the same scope.
    response = submit(client, "/async-my-books/bulk/delete/", {}, django_capture_on_commit_callbacks)
    assert response.status_code == 202
    task = freeze_now(BulkTask.objects.latest("pk"))
    assert locked_pks(task) == sorted(str(pk) for pk in own)
    assert run_bulk_task(task.pk) == "succeeded"
    assert Book.objects.count() == 20
    assert not Book.objects.filter(pk__in=own).exists()


@pytest.mark.parametrize("atomic", [True, False], ids=["all-or-nothing", "per-row"])
def test_the_worker_reapplies_the_scope_through_the_backend(
    user_factory: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any, atomic: bool
) -> None:
    """Two of Ursula's books pass to another author between submit and run: the worker leaves
    them alone and names them; all-or-nothing then writes nothing, per-row the other eight."""
    base = "rescoped-my-books" if atomic else "rescoped-per-row-my-books"
    client = login(ursula(user_factory), htmx=True)
    own = sorted(b.pk for b in catalogue["books"] if b.author == catalogue["authors"][0])
    select(client, base, [b.pk for b in catalogue["books"]])
    response = submit(
        client,
        f"/{base}/bulk/edit/",
        {"change_price": "1", "price": "1.00"},
        django_capture_on_commit_callbacks,
    )
    assert response.status_code == 202
    task = freeze_now(BulkTask.objects.get())
    assert task.total == 10
    moved = own[:2]
    Book.objects.filter(pk__in=moved).update(author=catalogue["authors"][1])
    before = book_snapshot()
    assert run_bulk_task(task.pk) == "failed"
    task.refresh_from_db()
    assert sorted(e["pk"] for e in task.errors) == moved
    assert task.errors[0]["messages"] == [
        "This book is no longer one you may change (it changed after the task was submitted), "
        "so it was left as it is."
    ]
    written = sorted(changes(before, book_snapshot()))
    if atomic:
        assert written == []
        assert task.message == "2 of 10 rows failed, so nothing was saved (all-or-nothing)."
    else:
        assert written == own[2:]
        assert (task.success_count, task.failure_count) == (8, 2)
        assert task.message == "2 of 10 rows failed; updated 8 (8 changed)."
    assert not RowLock.objects.exists()


def test_a_worker_delete_reapplies_the_scope_too(
    user_factory: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(ursula(user_factory), htmx=True)
    own = sorted(b.pk for b in catalogue["books"] if b.author == catalogue["authors"][0])
    select(client, "rescoped-per-row-my-books", own)
    response = submit(
        client, "/rescoped-per-row-my-books/bulk/delete/", {}, django_capture_on_commit_callbacks
    )
    assert response.status_code == 202
    task = freeze_now(BulkTask.objects.get())
    Book.objects.filter(pk=own[0]).update(author=catalogue["authors"][2])
    assert run_bulk_task(task.pk) == "failed"
    task.refresh_from_db()
    assert [e["pk"] for e in task.errors] == [own[0]]
    assert "no longer one you may delete" in task.errors[0]["messages"][0]
    assert sorted(Book.objects.filter(pk__in=own).values_list("pk", flat=True)) == [own[0]]
    assert not RowLock.objects.exists()


def test_the_same_scope_applies_in_the_request(
    user_factory: Any, catalogue: Catalogue, monkeypatch: Any
) -> None:
    """Sync runs call the backend's ``scope_queryset()`` too, after the view's ``get_queryset()``:
    a row the backend's rule refuses is named and, all-or-nothing, nothing is written."""
    from tests.security.urls import MyBooksBackend

    client = login(ursula(user_factory), htmx=True)
    own = sorted(b.pk for b in catalogue["books"] if b.author == catalogue["authors"][0])
    select(client, "rescoped-my-books", own[:2])  # below 3 rows: in the request
    real_scope = MyBooksBackend.scope_queryset

    def stricter(self: Any, queryset: Any, *, context: Any) -> Any:
        assert context.mode == "sync"
        return real_scope(self, queryset, context=context).exclude(pk=own[1])

    monkeypatch.setattr(MyBooksBackend, "scope_queryset", stricter)
    before = book_snapshot()
    response = client.post("/rescoped-my-books/bulk/edit/", {"change_price": "1", "price": "1.00"})
    assert response.status_code == 200
    body = html.unescape(response.content.decode())
    assert (
        f"<tr>{row_cell(f'/rescoped-my-books/{own[1]}/', own[1])}<td>—</td>"
        "<td>This book is no longer one you may change, so it was "
        "left as it is.</td></tr>"
    ) in body
    assert changes(before, book_snapshot()) == {}  # all-or-nothing
    run = BulkTask.objects.get()  # the run is recorded, as it ended: failed, in the request
    assert (run.mode, run.status, run.failure_count, run.success_count) == ("sync", "failed", 1, 0)
    assert run.errors == [
        {
            "pk": own[1],
            "field": None,
            "messages": ["This book is no longer one you may change, so it was left as it is."],
        }
    ]


def test_single_row_urls_outside_the_scope_are_a_404(user_factory: Any, catalogue: Catalogue) -> None:
    client = login(ursula(user_factory))
    other = next(b for b in catalogue["books"] if b.author != catalogue["authors"][0])
    data = {"title": "Taken", "author": catalogue["authors"][0].pk, "status": "draft", "price": "1"}
    before = book_snapshot()
    for url in (f"/my-books/{other.pk}/", f"/my-books/{other.pk}/edit/", f"/my-books/{other.pk}/delete/"):
        assert client.get(url).status_code == 404, url
        if not url.endswith(f"{other.pk}/"):
            assert client.post(url, data).status_code == 404, url
    assert book_snapshot() == before


def planted_shapes(everything: list[int], outside: list[int]) -> list[dict[str, Any]]:
    return [
        {"mode": "ids", "ids": [str(pk) for pk in everything]},
        {"mode": "all", "query": "", "excluded": [], "included": [str(pk) for pk in outside]},
        {"mode": "all", "query": "q=Book", "excluded": [], "included": [str(pk) for pk in outside]},
    ]


@pytest.mark.parametrize("shape", [0, 1, 2])
@pytest.mark.parametrize("base", ["my-books", "async-my-books"])
def test_ids_planted_in_the_session_outside_the_owners_scope_are_never_touched(
    user_factory: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any, base: str, shape: int
) -> None:
    client = login(ursula(user_factory), htmx=True)
    own = sorted(b.pk for b in catalogue["books"] if b.author == catalogue["authors"][0])
    everything = [b.pk for b in catalogue["books"]]
    plant(client, base, planted_shapes(everything, sorted(set(everything) - set(own)))[shape])
    before = book_snapshot()
    response = submit(
        client,
        f"/{base}/bulk/edit/",
        {"change_price": "1", "price": "1.00"},
        django_capture_on_commit_callbacks,
    )
    if base == "async-my-books":
        assert response.status_code == 202
        task = freeze_now(BulkTask.objects.get())
        assert locked_pks(task) == sorted(str(pk) for pk in own)
        assert run_bulk_task(task.pk) == "succeeded"
    else:
        assert response.status_code == 204
    assert sorted(changes(before, book_snapshot())) == own


@pytest.mark.parametrize("kind", ["edit", "delete"])
def test_rows_the_scope_filters_out_are_never_locked_or_touched_on_a_worker(
    htmx_client: Client, catalogue: Catalogue, django_capture_on_commit_callbacks: Any, kind: str
) -> None:
    archived = sorted(b.pk for b in catalogue["books"] if b.status == "archived")
    plant_ids(htmx_client, "async-unarchived-books", [b.pk for b in catalogue["books"]])
    response = submit(
        htmx_client,
        f"/async-unarchived-books/bulk/{kind}/",
        {"change_genre": "1", "genre": ""} if kind == "edit" else {},
        django_capture_on_commit_callbacks,
    )
    assert response.status_code == 202
    task = freeze_now(BulkTask.objects.get())
    assert task.total == 30 - len(archived) == 23
    assert not set(locked_pks(task)) & {str(pk) for pk in archived}
    assert run_bulk_task(task.pk) == "succeeded"
    survivors = Book.objects.filter(pk__in=archived)
    assert survivors.count() == len(archived)
    assert sorted(survivors.filter(genre__isnull=False).values_list("pk", flat=True)) == sorted(
        b.pk for b in catalogue["books"] if b.status == "archived" and b.genre_id is not None
    )


# ----- a malformed or oversized stored selection ----------------------------------------------------
MALFORMED_STORED = [
    {"mode": "ids", "ids": ["abc"]},
    {"mode": "ids", "ids": [""]},
    {"mode": "ids", "ids": ["1.5"]},
    {"mode": "ids", "ids": [str(uuid.UUID(int=7))]},
    {"mode": "ids", "ids": [str(2**70)]},
    {"mode": "ids", "ids": [None]},
    {"mode": "ids", "ids": [[1]]},
    {"mode": "ids", "ids": "12"},
    {"mode": "all", "query": "", "excluded": ["abc"]},
    {"mode": "all", "query": "", "included": [SCRIPT]},
    {"mode": "all", "query": ["status=draft"]},
]
ENDPOINTS = [
    ("get", "/book/"),
    ("get", "/book/selection/"),
    ("post", "/book/selection/"),
    ("get", "/book/bulk/edit/"),
    ("post", "/book/bulk/edit/"),
    ("get", "/book/bulk/delete/"),
    ("post", "/book/bulk/delete/"),
]


@pytest.mark.parametrize("stored", MALFORMED_STORED, ids=[str(s)[:50] for s in MALFORMED_STORED])
def test_a_malformed_stored_selection_is_an_empty_one_never_a_500(
    admin_user: Any, catalogue: Catalogue, stored: dict[str, Any]
) -> None:
    client = login(admin_user, raise_request_exception=False)
    before = book_snapshot()
    for method, url in ENDPOINTS:
        plant(client, "book", stored)
        data = (
            {"action": "set", "checked": "1", "pk": [str(catalogue["books"][0].pk)]}
            if url.endswith("selection/")
            else {"change_status": "1", "status": "archived"}
        )
        response = getattr(client, method)(url, data)
        assert response.status_code in (200, 400), (method, url, response.status_code)
        if method == "post" and "/bulk/" in url:
            assert response.status_code == 400
            assert response.content.decode() == NO_ROWS
        if method == "post" and url.endswith("selection/"):  # the bad ids are replaced, not kept
            assert client.session[selection_key("book")] == {
                "mode": "ids",
                "ids": [str(catalogue["books"][0].pk)],
                "query": "",
                "excluded": [],
                "included": [],
            }
    assert book_snapshot() == before


@override_settings(POWERCRUD_SETTINGS={"SELECTION_ID_CAP": 5})
@pytest.mark.parametrize(
    "stored",
    [
        {"mode": "ids", "ids": [str(n) for n in range(1, 7)]},
        {"mode": "all", "query": "", "excluded": ["1", "2", "3"], "included": ["4", "5", "6"]},
    ],
)
@pytest.mark.parametrize("base", ["book", "async-books"])
def test_a_stored_selection_over_the_cap_is_refused_before_any_query_lock_or_enqueue(
    htmx_client: Client,
    catalogue: Catalogue,
    django_capture_on_commit_callbacks: Any,
    base: str,
    stored: dict[str, Any],
) -> None:
    plant(htmx_client, base, stored)
    htmx_client.get("/genre/")  # load the session and the user once
    before = book_snapshot()
    for url, data in (
        (f"/{base}/bulk/edit/", {"change_status": "1", "status": "archived"}),
        (f"/{base}/bulk/delete/", {}),
    ):
        with CaptureQueriesContext(connection) as captured:
            response = submit(htmx_client, url, data, django_capture_on_commit_callbacks)
        assert response.status_code == 400
        assert response.content.decode() == NO_ROWS
        assert app_queries(captured) == []
    assert book_snapshot() == before
    assert_nothing_queued()


# ----- NUL characters (PostgreSQL refuses them in any text parameter) --------------------------------
@pytest.mark.parametrize("htmx", [False, True])
def test_a_nul_character_in_a_search_is_a_word_break_never_a_500(
    admin_user: Any, catalogue: Catalogue, htmx: bool
) -> None:
    client = login(admin_user, htmx=htmx, raise_request_exception=False)
    for url in ("/book/?q=Book%0001", "/author/?q=%00", "/asset/?q=%00&in_service=%00"):
        assert client.get(url).status_code == 200, url
    response = client.post("/book/selection/", {"action": "all", "query": "q=Book%0001"})
    assert response.status_code == 200
    assert "<strong>1</strong> selected" in response.content.decode()  # "Book 01", as the list shows
    plant(client, "book", {"mode": "all", "query": "q=%00"})  # stored earlier, or tampered
    assert client.get("/book/").status_code == 200
    response = client.post("/book/bulk/edit/", {"change_status": "1", "status": "out_of_print"})
    assert response.status_code in (204, 302)
    assert Book.objects.filter(status="out_of_print").count() == 30


def test_a_nul_character_is_not_a_valid_text_key() -> None:
    from django.contrib.sessions.models import Session

    from powercrud.bulk.selection import SelectionError, clean_pks

    assert clean_pks(Session, ["abc", " abc "], cap=5) == ["abc"]
    with pytest.raises(SelectionError, match="is not a valid id for session"):
        clean_pks(Session, ["abc\x00"], cap=5)


# ----- malformed ids, UUID keys end to end --------------------------------------------------------
@pytest.mark.parametrize(
    "raw", ["abc", "", "1", "1.5", str(uuid.UUID(int=7))[:-1], str(uuid.UUID(int=7)) + "0", SCRIPT]
)
def test_malformed_ids_for_a_uuid_key_are_a_400(htmx_client: Client, raw: str) -> None:
    asset = Asset.objects.create(code="A-1")
    select(htmx_client, "async-assets", [asset.pk])
    response = htmx_client.post("/async-assets/selection/", {"action": "set", "checked": "1", "pk": [raw]})
    assert response.status_code == 400
    assert "is not a valid id for asset." in response.content.decode()
    assert SCRIPT not in response.content.decode()
    assert htmx_client.session[selection_key("async-assets", "testapp.asset")]["ids"] == [str(asset.pk)]


def test_uuid_primary_keys_end_to_end_on_a_worker(
    htmx_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    assets = [Asset.objects.create(code=f"A-{i}", description="old") for i in range(3)]
    chosen = [assets[0].pk, assets[2].pk]
    response = select(htmx_client, "async-assets", [str(chosen[0]).upper(), chosen[1].hex, str(chosen[0])])
    assert response.status_code == 200
    response = submit(
        htmx_client,
        "/async-assets/bulk/edit/",
        {"change_description": "1", "description": "Moved", "change_in_service": "1", "in_service": "false"},
        django_capture_on_commit_callbacks,
    )
    assert response.status_code == 202
    task = freeze_now(BulkTask.objects.get())
    assert locked_pks(task) == sorted(lock_key(Asset, pk) for pk in chosen)
    assert run_bulk_task(task.pk) == "succeeded"
    assert dict(Asset.objects.values_list("code", "description")) == {
        "A-0": "Moved",
        "A-1": "old",
        "A-2": "Moved",
    }
    assert dict(Asset.objects.values_list("code", "in_service")) == {"A-0": False, "A-1": True, "A-2": False}
    select(htmx_client, "async-assets", [chosen[1]], checked=False)
    response = submit(htmx_client, "/async-assets/bulk/delete/", {}, django_capture_on_commit_callbacks)
    assert response.status_code == 202
    assert run_bulk_task(BulkTask.objects.latest("pk").pk) == "succeeded"
    assert sorted(Asset.objects.values_list("code", flat=True)) == ["A-1", "A-2"]
    assert RowLock.objects.count() == 0


# ----- malformed or missing payload parts --------------------------------------------------------------
def payloads(c: Catalogue) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    tag = str(c["tags"][0].pk)
    return [
        ({"data": {}}, {"errors": "Choose at least one field to change."}),
        ({"data": {"change_status": "1"}}, {"field": "status"}),
        (
            {"data": {"change_status": ["1", "0"], "status": "published"}},
            {"refused": "change_status"},
        ),
        ({"data": {"change_tags": "1", "tags": [tag]}}, {"field": "tags"}),
        (
            {"data": {"change_tags": "1", "tags__op": ["add", "explode"], "tags": [tag]}},
            {"refused": "tags__op"},
        ),
        ({"data": {"change_tags": "1", "tags__op": "", "tags": [tag]}}, {"field": "tags"}),
        ({"data": {"change_genre": "1"}}, {"ok": True}),  # no value: clear the nullable genre... of nothing
        ({"data": '{"change_status": "1", "status": "archived"}', "content_type": "application/json"}, {}),
        ({"data": "change_status=1&status=%ZZ%00", "content_type": "application/x-www-form-urlencoded"}, {}),
        ({"data": b"\xff\xfe\x00garbage", "content_type": "multipart/form-data; boundary=x"}, {}),
        ({"data": {"change_status": "1", "status": "archived", "upload": ("a.txt", b"x")}}, {"ok": True}),
    ]


def test_malformed_or_missing_payload_parts_are_never_a_500_nor_queued(
    catalogue: Catalogue, admin_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client = login(admin_user, htmx=True, raise_request_exception=False)
    pks = [b.pk for b in catalogue["books"][1:4]]  # none of them has tags
    for request, expect in payloads(catalogue):
        select(client, "async-books", pks)
        before = book_snapshot()
        kwargs = {"content_type": request["content_type"]} if "content_type" in request else {}
        data = request["data"]
        if isinstance(data, dict) and "upload" in data:
            from django.core.files.uploadedfile import SimpleUploadedFile

            data = {**data, "upload": SimpleUploadedFile(*data["upload"])}
        response = submit(
            client, "/async-books/bulk/edit/", data, django_capture_on_commit_callbacks, **kwargs
        )
        assert response.status_code in (200, 202, 400), (request, response.status_code)
        body = response.content.decode(errors="replace")
        if "errors" in expect:
            assert response.status_code == 200 and expect["errors"] in body, request
        if "refused" in expect:
            assert response.status_code == 400 and f"“{expect['refused']}” was sent 2 times" in body, request
        if "field" in expect:
            assert response.status_code == 200 and "pc-has-error" in fieldset(body, expect["field"]), request
        if expect.get("ok"):
            assert response.status_code == 202, request
            task = BulkTask.objects.get()
            assert run_bulk_task(task.pk) == "succeeded"
            task.delete()
            OrmQ.objects.all().delete()
        else:
            assert response.status_code != 202, request
            assert book_snapshot() == before, request
            assert_nothing_queued()


# ----- oversized input -------------------------------------------------------------------------------
def test_more_fields_than_django_accepts_is_a_400_with_nothing_stored(
    admin_user: Any, catalogue: Catalogue
) -> None:
    client = login(admin_user)
    client.get("/genre/")
    with CaptureQueriesContext(connection) as captured:
        response = client.post(
            "/book/selection/", {"action": "set", "checked": "1", "pk": [str(n) for n in range(1, 1200)]}
        )
    assert response.status_code == 400  # DATA_UPLOAD_MAX_NUMBER_FIELDS (1,000)
    assert app_queries(captured) == []
    assert selection_key("book") not in client.session


@pytest.mark.parametrize("csrf", [False, True])
def test_a_huge_body_is_a_400_before_any_query_lock_or_enqueue(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any, csrf: bool
) -> None:
    client = login(admin_user, htmx=True, enforce_csrf_checks=csrf)
    if csrf:  # the selection POST itself would need a token
        plant(client, "async-books", {"mode": "all", "query": ""})
    else:
        select_all(client, "async-books", "")
    client.get("/genre/", HTTP_HX_BOOSTED="true")  # the whole page: it sets the CSRF cookie
    before = book_snapshot()
    huge = {
        "change_status": "1",
        "status": "archived",
        "csrfmiddlewaretoken": "x",
        "padding": "x" * 2_700_000,
    }
    many_tags = {"change_tags": "1", "tags__op": "add", "tags": [str(n) for n in range(1, 1100)]}
    for data in (huge, many_tags):
        with CaptureQueriesContext(connection) as captured:
            response = submit(client, "/async-books/bulk/edit/", data, django_capture_on_commit_callbacks)
        assert response.status_code == 400  # DATA_UPLOAD_MAX_MEMORY_SIZE, DATA_UPLOAD_MAX_NUMBER_FIELDS
        assert "Traceback" not in response.content.decode()
        assert app_queries(captured) == []
    assert book_snapshot() == before
    assert_nothing_queued()


def test_tags_are_checked_against_the_database_range_not_just_their_format(
    htmx_client: Client, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    select(htmx_client, "async-books", [catalogue["books"][1].pk])
    Tag.objects.create(name=SCRIPT)
    for raw in (str(2**70), "-1", "0", "1e3"):
        response = submit(
            htmx_client,
            "/async-books/bulk/edit/",
            {"change_tags": "1", "tags__op": "replace", "tags": [raw]},
            django_capture_on_commit_callbacks,
        )
        assert response.status_code in (200, 400), raw
        assert SCRIPT not in response.content.decode()
    assert_nothing_queued()
