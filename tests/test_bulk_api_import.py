"""The JSON bulk API's import (``{"operation": "import", "rows": [...]}``): each mode, natural
keys, checks, all-or-nothing and per row, the 202 path, undo of an API import, every refusal as
JSON naming the key or row, the host's token hook and the session under Django's CSRF rule."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.urls import reverse

from powercrud.jobs.worker import run_bulk_task
from powercrud.mixins import PowerCRUDMixin
from powercrud.models import BulkTask, RunRow
from powercrud.views import CRUDView
from tests.async_helpers import RecordingRunner, on_workers, powercrud_settings
from tests.conftest import make_user
from tests.testapp.models import Book, Edition
from tests.testapp.urls import urlpatterns as app_urlpatterns


class EditionImportView(PowerCRUDMixin, CRUDView):
    """Imports editions (unique on code + language), on a worker from three rows up when the
    tests ask; editions in language "zz" are outside its scope."""

    model = Edition
    url_base = "api-editions"
    fields = ["code", "language", "title", "copies"]
    import_fields = ["code", "language", "title", "copies"]
    bulk_async = True

    def get_queryset(self) -> Any:
        return super().get_queryset().exclude(language="zz")


class BookImportView(PowerCRUDMixin, CRUDView):
    """Imports books: authors and genres by name (natural keys) or primary key, tags as a list."""

    model = Book
    url_base = "api-books"
    fields = ["title", "author", "genre", "status", "price", "tags"]
    import_fields = ["title", "author", "genre", "status", "price", "tags"]


urlpatterns = [*app_urlpatterns, *EditionImportView.get_urls(), *BookImportView.get_urls()]
pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]

API = "/api-editions/bulk/api/"
BOOKS_API = "/api-books/bulk/api/"
HERE = "tests.test_bulk_api_import"


def user_for_request(request: Any) -> User | None:
    """The token hook of these tests: ``Authorization: Token importer``."""
    header = request.headers.get("Authorization", "")
    if header != "Token importer":
        return None
    return User.objects.get(username="importer")


@pytest.fixture(autouse=True)
def _fresh_runner() -> None:
    RecordingRunner.jobs = []


@pytest.fixture
def importer() -> User:
    return make_user(
        "importer",
        "add_edition",
        "change_edition",
        "delete_edition",
        "view_edition",
        "add_book",
        "view_book",
        "change_book",
    )


@pytest.fixture
def client(importer: User) -> Client:
    client = Client()
    client.force_login(importer)
    return client


@pytest.fixture
def editions() -> dict[str, Edition]:
    return {
        "en": Edition.objects.create(code="B1", language="en", title="Old", copies=1),
        "fr": Edition.objects.create(code="B1", language="fr", title="Vieux", copies=2),
        "zz": Edition.objects.create(code="B1", language="zz", title="Hidden", copies=9),
    }


def post(client: Client, document: Any, url: str = API, **extra: Any) -> Any:
    body = document if isinstance(document, str | bytes) else json.dumps(document)
    return client.post(url, data=body, content_type="application/json", **extra)


def row(code: str, language: str, title: str, copies: Any = 1) -> dict[str, Any]:
    return {"code": code, "language": language, "title": title, "copies": copies}


def stock() -> dict[tuple[str, str], tuple[str, int]]:
    return {(e.code, e.language): (e.title, e.copies) for e in Edition.objects.all()}


def assert_json_error(response: Any, status: int, field: str | None, says: str = "") -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body.get("field") == field, body
    assert says in body["error"], body
    return body


IMPORT_COUNTS = ("new", "updated", "unchanged", "skipped", "failed")


def import_counts(body: dict[str, Any]) -> dict[str, int]:
    return {name: body["counts"][name] for name in IMPORT_COUNTS}


# ----- the modes -------------------------------------------------------------------------------


def test_a_create_runs_in_the_request_as_a_recorded_import(client: Client, importer: User) -> None:
    response = post(
        client,
        {
            "operation": "import",
            "rows": [
                row("A1", "en", "One", 3),
                {"copies": "4", "title": "Two", "language": "en", "code": "A2"},
            ],
            "reason": "Spring list",
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()
    run = BulkTask.objects.get(pk=body["run"])
    assert body["url"] == reverse("powercrud:tasks-run-json", kwargs={"pk": run.pk})
    assert (body["operation"], body["status"], body["success"], body["dry_run"]) == (
        "import",
        "succeeded",
        True,
        False,
    )
    assert import_counts(body) == {"new": 2, "updated": 0, "unchanged": 0, "skipped": 0, "failed": 0}
    assert body["outcomes"] == {"created": 2} and body["errors"] == []
    assert stock() == {("A1", "en"): ("One", 3), ("A2", "en"): ("Two", 4)}
    assert (run.kind, run.mode, run.reason, run.owner, run.total) == (
        "import",
        "sync",
        "Spring list",
        importer,
        2,
    )
    stored = run.stored_request
    assert stored is not None and stored.view_name.endswith("EditionImportView")
    assert "rows" not in stored.import_data and stored.import_spec.mode == "create"
    assert client.get(body["url"]).json()["counts"] == {"created": 2}


def test_an_upsert_updates_matches_inserts_the_rest_and_refuses_rows_outside_the_scope(
    client: Client, editions: dict[str, Edition]
) -> None:
    rows = [
        row("B1", "en", "New", 5),  # updated
        row("B1", "fr", "Vieux", 2),  # unchanged
        row("B2", "en", "Fresh", 1),  # new
        row("B1", "zz", "Seen", 1),  # an edition this view does not show
    ]
    response = post(
        client,
        {"operation": "import", "rows": rows, "mode": "upsert", "key": ["code", "language"], "atomic": False},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert import_counts(body) == {"new": 1, "updated": 1, "unchanged": 1, "skipped": 0, "failed": 1}
    assert [(e["row"], e["pk"]) for e in body["errors"]] == [(3, editions["zz"].pk)]
    assert stock() == {
        ("B1", "en"): ("New", 5),
        ("B1", "fr"): ("Vieux", 2),
        ("B2", "en"): ("Fresh", 1),
        ("B1", "zz"): ("Hidden", 9),
    }


def test_skip_leaves_existing_rows_and_reports_them_as_skipped(
    client: Client, editions: dict[str, Edition]
) -> None:
    rows = [row("B1", "en", "Changed?", 7), row("B3", "en", "Third", 1)]
    body = post(
        client, {"operation": "import", "rows": rows, "mode": "skip", "key": ["code", "language"]}
    ).json()
    assert import_counts(body) == {"new": 1, "updated": 0, "unchanged": 0, "skipped": 1, "failed": 0}
    assert stock()[("B1", "en")] == ("Old", 1) and stock()[("B3", "en")] == ("Third", 1)


def test_relations_are_found_by_natural_key_or_primary_key(client: Client, catalogue: dict[str, Any]) -> None:
    calvino = catalogue["authors"][1]
    tags = catalogue["tags"]
    rows = [
        {
            "title": "Cosmicomics",
            "author": "Italo Calvino",
            "genre": "Classics",
            "price": "9.50",
            "status": "Published",
            "tags": [tags[0].name, tags[1].name],
        },
        {
            "title": "Nobody",
            "author": "No Such Writer",
            "genre": None,
            "price": "1.00",
            "status": "draft",
            "tags": [],
        },
    ]
    document = {
        "operation": "import",
        "rows": rows,
        "natural_keys": {"author": "name", "genre": "name", "tags": "name"},
        "atomic": False,
    }
    response = post(client, document, BOOKS_API)
    assert response.status_code == 200, response.content
    body = response.json()
    assert import_counts(body)["new"] == 1 and import_counts(body)["failed"] == 1
    [error] = body["errors"]
    assert (error["row"], error["field"]) == (1, "author") and "No Such Writer" in " ".join(error["messages"])
    book = Book.objects.get(title="Cosmicomics")
    assert (book.author, book.genre.name, book.status) == (calvino, "Classics", "published")
    assert set(book.tags.all()) == set(tags)
    assert not Book.objects.filter(title="Nobody").exists()
    # By primary key: the natural key left out.
    by_pk = dict(rows[0], title="By key", author=calvino.pk, genre=None, tags=[])
    body = post(client, {"operation": "import", "rows": [by_pk]}, BOOKS_API).json()
    assert body["success"] is True and Book.objects.get(title="By key").author == calvino


# ----- checks, all-or-nothing, per row ------------------------------------------------------------


def test_a_check_writes_nothing_and_reports_the_counts(client: Client, editions: dict[str, Edition]) -> None:
    before = stock()
    rows = [
        row("B1", "en", "New", 5),
        row("B1", "fr", "Vieux", 2),
        row("B9", "en", "Nine"),
        row("B8", "en", "", 1),
    ]
    response = post(
        client,
        {"operation": "import", "rows": rows, "mode": "upsert", "key": ["code", "language"], "dry_run": True},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["dry_run"] is True and body["success"] is False
    assert import_counts(body) == {"new": 1, "updated": 1, "unchanged": 1, "skipped": 0, "failed": 1}
    assert [(e["row"], e["field"]) for e in body["errors"]] == [(3, "title")]
    assert body["examples"]
    assert stock() == before
    assert BulkTask.objects.get(pk=body["run"]).dry_run is True


def test_all_or_nothing_with_a_failing_last_row_writes_nothing(client: Client) -> None:
    rows = [row("C1", "en", "One"), row("C2", "en", "Two"), row("C3", "en", "Three", -1)]
    body = post(client, {"operation": "import", "rows": rows, "atomic": True}).json()
    assert body["success"] is False and body["atomic"] is True
    assert [(e["row"], e["field"]) for e in body["errors"]] == [(2, "copies")]
    assert body["errors"][0]["messages"][0].startswith("Line 2: ")
    assert Edition.objects.count() == 0


def test_per_row_writes_the_rows_that_pass(client: Client) -> None:
    rows = [row("C1", "en", "One"), row("C2", "en", "Two", "many"), row("C3", "en", "Three")]
    body = post(client, {"operation": "import", "rows": rows, "atomic": False}).json()
    assert body["success"] is False
    assert import_counts(body) == {"new": 2, "updated": 0, "unchanged": 0, "skipped": 0, "failed": 1}
    assert [(e["row"], e["field"]) for e in body["errors"]] == [(1, "copies")]
    assert set(stock()) == {("C1", "en"), ("C3", "en")}
    failed = RunRow.objects.get(run_id=body["run"], outcome="failed")
    assert failed.object_pk == "line 1"


# ----- on a worker -----------------------------------------------------------------------------


def test_a_large_import_goes_to_a_worker_and_answers_202(
    client: Client, editions: dict[str, Edition], django_capture_on_commit_callbacks: Any
) -> None:
    rows = [row("B1", "en", "Worked", 8), row("D1", "en", "D"), row("D2", "en", "D")]
    document = {"operation": "import", "rows": rows, "mode": "upsert", "key": ["code", "language"]}
    with on_workers():
        with django_capture_on_commit_callbacks(execute=True):
            check = post(client, {**document, "dry_run": True})
        assert check.status_code == 200 and RecordingRunner.jobs == []  # a check stays in the request
        with django_capture_on_commit_callbacks(execute=True):
            response = post(client, document)
    assert response.status_code == 202, response.content
    body = response.json()
    run = BulkTask.objects.get(pk=body["run"])
    url = reverse("powercrud:tasks-run-json", kwargs={"pk": run.pk})
    assert body == {"run": run.pk, "url": url, "status": "queued", "operation": "import"}
    assert response["Location"] == url
    assert RecordingRunner.jobs == [("powercrud.jobs.worker.run_bulk_task", (run.pk,), run.task_name)]
    assert (run.kind, run.mode, run.total) == ("import", "async", 3)
    assert stock()[("B1", "en")] == ("Old", 1)  # not before the worker runs it
    assert run_bulk_task(run.pk) == "succeeded"
    assert stock()[("B1", "en")] == ("Worked", 8) and ("D2", "en") in stock()
    assert client.get(url).json()["counts"] == {"changed": 1, "created": 2}


# ----- undo ------------------------------------------------------------------------------------


def test_an_api_import_is_undone_through_the_api(client: Client, editions: dict[str, Edition]) -> None:
    rows = [row("B1", "en", "New", 5), row("E1", "en", "Created")]
    done = post(client, {"operation": "import", "rows": rows, "mode": "upsert", "key": ["code", "language"]})
    run = done.json()["run"]
    assert stock()[("B1", "en")] == ("New", 5)
    response = post(client, {"operation": "undo", "run": run, "reason": "Wrong file"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["operation"], body["success"]) == ("undo", True)
    assert stock()[("B1", "en")] == ("Old", 1) and ("E1", "en") not in stock()
    undo = BulkTask.objects.get(pk=body["run"])
    assert (undo.kind, undo.reason, undo.stored_request.source_run) == ("import", "Wrong file", run)
    assert_json_error(post(client, {"operation": "undo", "run": run}), 409, "run")


def test_another_users_import_is_not_found(client: Client, editions: dict[str, Edition]) -> None:
    run = post(client, {"operation": "import", "rows": [row("F1", "en", "F")]}).json()["run"]
    other = Client()
    other.force_login(make_user("other", "add_edition", "change_edition", "view_edition"))
    assert_json_error(post(other, {"operation": "undo", "run": run}), 404, "run")
    assert_json_error(post(other, {"operation": "undo", "run": 2**70}), 404, "run")
    assert ("F1", "en") in stock()


# ----- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "field", "says"),
    [
        ({"operation": "import"}, "rows", "missing"),
        ({"operation": "import", "rows": {"code": "A"}}, "rows", "non-empty list"),
        ({"operation": "import", "rows": []}, "rows", "an empty list"),
        ({"operation": "import", "rows": [row("A", "en", "x"), "A,en,x"]}, "rows[1]", "must be an object"),
        ({"operation": "import", "rows": [{}]}, "rows[0]", "empty"),
        ({"operation": "import", "rows": [{**row("A", "en", "x"), "isbn": "1"}]}, "rows[0].isbn", "isbn"),
        (
            {
                "operation": "import",
                "rows": [row("A", "en", "x"), {"code": "B", "language": "en", "title": "y"}],
            },
            "rows[1]",
            "copies",
        ),
        ({"operation": "import", "rows": [row("A", "en", {"x": 1})]}, "rows[0].title", "not an object"),
        ({"operation": "import", "rows": [row("A", "en", "x", [[1]])]}, "rows[0].copies", "holding a list"),
        ({"operation": "import", "rows": [row("A", "en", "x")], "mode": "merge"}, "mode", "merge"),
        ({"operation": "import", "rows": [row("A", "en", "x")], "mode": "upsert"}, "key", "code"),
        (
            {"operation": "import", "rows": [row("A", "en", "x")], "mode": "skip", "key": ["title"]},
            "key",
            "unique",
        ),
        (
            {"operation": "import", "rows": [row("A", "en", "x")], "key": ["code", "language"]},
            "key",
            "create",
        ),
        (
            {
                "operation": "import",
                "rows": [{"code": "A", "title": "x"}],
                "mode": "upsert",
                "key": ["code", "language"],
            },
            "key",
            "language",
        ),
        (
            {"operation": "import", "rows": [row("A", "en", "x")], "natural_keys": {"title": "name"}},
            "natural_keys.title",
            "relation",
        ),
        (
            {"operation": "import", "rows": [row("A", "en", "x")], "selection": {"ids": [1]}},
            "selection",
            "import",
        ),
        (
            {"operation": "update", "selection": {"ids": [1]}, "values": {"x": 1}, "mode": "skip"},
            "mode",
            "update",
        ),
        ('{"operation": "import", "rows": [{"code": "A", "code": "B"}]}', "code", "twice"),
    ],
)
def test_bad_documents_are_a_400_naming_the_key_or_row(
    client: Client, document: Any, field: str, says: str
) -> None:
    assert_json_error(post(client, document), 400, field, says)
    assert Edition.objects.count() == 0


def test_a_natural_key_the_related_model_cannot_find_by_is_a_400(
    client: Client, catalogue: dict[str, Any]
) -> None:
    rows = [{"title": "T", "author": "Italo Calvino", "price": "1.00", "status": "draft"}]
    for natural, says in (("nope", "nope"), ("birth_year", "birth_year")):
        document = {"operation": "import", "rows": rows, "natural_keys": {"author": natural}}
        assert_json_error(post(client, document, BOOKS_API), 400, "natural_keys.author", says)
    assert not Book.objects.filter(title="T").exists()


def test_too_many_rows_are_a_413(client: Client) -> None:
    rows = [row(f"G{i}", "en", "x" * 50) for i in range(40)]
    with powercrud_settings(IMPORT_MAX_BYTES=2000):
        assert_json_error(
            post(client, {"operation": "import", "rows": rows}), 413, "rows", "IMPORT_MAX_BYTES"
        )
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=2000):
        assert_json_error(
            post(client, {"operation": "import", "rows": rows}), 413, None, "DATA_UPLOAD_MAX_MEMORY_SIZE"
        )
    assert Edition.objects.count() == 0
    assert post(client, {"operation": "import", "rows": rows}).status_code == 200
    assert Edition.objects.count() == 40


def test_a_view_without_import_fields_refuses_an_import_with_a_400(
    client: Client, catalogue: dict[str, Any]
) -> None:
    before = Book.objects.count()
    document = {"operation": "import", "rows": [{"title": "T"}]}
    assert_json_error(post(client, document, "/book/bulk/api/"), 400, "operation", "import_fields")
    assert Book.objects.count() == before


def test_a_view_with_only_import_fields_has_the_endpoint_for_imports_alone(client: Client) -> None:
    response = post(client, {"operation": "import", "rows": [row("H1", "en", "H")]}, "/edition/bulk/api/")
    assert response.status_code == 200, response.content
    assert_json_error(
        post(client, {"operation": "delete", "selection": {"ids": [1]}}, "/edition/bulk/api/"),
        400,
        "operation",
        "no bulk delete",
    )
    assert Client().post("/genre/bulk/api/").status_code == 404  # neither bulk roles nor import


def test_permissions_add_and_change_for_an_upsert(editions: dict[str, Edition]) -> None:
    document = {
        "operation": "import",
        "rows": [row("B1", "en", "Mine", 4)],
        "mode": "upsert",
        "key": ["code", "language"],
    }
    viewer = Client()
    viewer.force_login(make_user("viewer", "view_edition", "change_edition"))
    assert_json_error(post(viewer, {**document, "mode": "create", "key": []}), 403, None, "permission")
    adder = Client()
    adder.force_login(make_user("adder", "view_edition", "add_edition"))
    assert_json_error(post(adder, document), 403, "mode", "upsert")
    assert stock()[("B1", "en")] == ("Old", 1)
    created = post(adder, {"operation": "import", "rows": [row("B7", "en", "Seven")]})
    assert created.status_code == 200 and ("B7", "en") in stock()
    # Undo of an import needs the import's permission, and delete for the rows it created.
    assert_json_error(post(viewer, {"operation": "undo", "run": created.json()["run"]}), 403, None)
    assert_json_error(post(adder, {"operation": "undo", "run": created.json()["run"]}), 403, "run", "delete")
    assert ("B7", "en") in stock()


# ----- who is asking ---------------------------------------------------------------------------


def test_a_token_from_the_hook_imports_without_csrf(importer: User) -> None:
    client = Client(enforce_csrf_checks=True)
    document = {"operation": "import", "rows": [row("T1", "en", "Token")]}
    with powercrud_settings(API_AUTHENTICATE=f"{HERE}.user_for_request"):
        assert_json_error(post(client, document), 401, None, "Sign in")
        response = post(client, document, HTTP_AUTHORIZATION="Token importer")
        assert response.status_code == 200, response.content
        assert BulkTask.objects.get(pk=response.json()["run"]).owner == importer
        undo = post(
            client, {"operation": "undo", "run": response.json()["run"]}, HTTP_AUTHORIZATION="Token importer"
        )
        assert undo.status_code == 200, undo.content
    assert ("T1", "en") not in stock()


def test_a_session_import_needs_the_csrf_token(importer: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(importer)
    document = {"operation": "import", "rows": [row("S1", "en", "Session")]}
    assert_json_error(post(client, document), 403, "csrf", "CSRF")
    assert Edition.objects.count() == 0
    client.cookies["csrftoken"] = "a" * 32
    response = post(client, document, HTTP_X_CSRFTOKEN="a" * 32)
    assert response.status_code == 200, response.content
    assert ("S1", "en") in stock()
