"""The JSON bulk API (``<url_base>/bulk/api/``) and the run's cancel as JSON (``tasks/<pk>/cancel.json``):
every operation in the request (200) and on a worker (202), checks, all-or-nothing and per
row, every refusal as JSON naming the field, the session under Django's CSRF rule, the host's
token hook, another user's run."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.test import Client, override_settings
from django.urls import NoReverseMatch, reverse

from powercrud.checks import check_installation
from powercrud.jobs import progress
from powercrud.jobs.worker import run_bulk_task
from powercrud.models import BulkTask, RowLock
from tests.async_helpers import RecordingRunner, on_workers, powercrud_settings
from tests.conftest import make_user
from tests.testapp.models import Book, Shelf
from tests.testapp.views import BookCRUDView

pytestmark = pytest.mark.django_db

API = "/book/bulk/api/"
HERE = "tests.test_bulk_api"
TOKENS = {"secret-editor": "editor", "secret-boss": "boss"}


def user_for_request(request: HttpRequest) -> User | None:
    """The token hook of these tests: ``Authorization: Token <secret>``."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Token "):
        return None
    username = TOKENS.get(header.removeprefix("Token "))
    if username is None:
        raise PermissionDenied("Unknown token.")
    return User.objects.get(username=username)


NOT_CALLABLE = 42


def with_token_hook() -> Any:
    return powercrud_settings(API_AUTHENTICATE=f"{HERE}.user_for_request")


@pytest.fixture(autouse=True)
def _fresh_runner() -> None:
    RecordingRunner.jobs = []


@pytest.fixture
def editor() -> User:
    return make_user("editor", "view_book", "change_book", "delete_book", "view_shelf", "change_shelf")


@pytest.fixture
def client(editor: User) -> Client:
    client = Client()
    client.force_login(editor)
    return client


def post(client: Client, document: Any, url: str = API, **extra: Any) -> Any:
    body = document if isinstance(document, str | bytes) else json.dumps(document)
    return client.post(url, data=body, content_type="application/json", **extra)


def books(catalogue: dict[str, Any], status: str | None = None) -> list[Book]:
    found = [b for b in catalogue["books"] if status is None or b.status == status]
    return sorted(found, key=lambda b: b.pk)


def prices(pks: list[Any]) -> dict[Any, Decimal]:
    return dict(Book.objects.filter(pk__in=pks).values_list("pk", "price"))


def assert_json_error(response: Any, status: int, field: str | None, says: str = "") -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body.get("field") == field, body
    assert says in body["error"], body
    return body


# ----- update, delete, undo in the request ----------------------------------------------------


def test_an_update_by_ids_runs_in_the_request_and_answers_its_result(
    client: Client, catalogue: dict[str, Any]
) -> None:
    drafts = books(catalogue, "draft")[:4]
    pks = [b.pk for b in drafts]
    response = post(
        client,
        {"operation": "update", "selection": {"ids": pks}, "values": {"price": "12.50"}, "reason": "Sale"},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    run = BulkTask.objects.get(pk=body["run"])
    assert body["url"] == reverse("powercrud:tasks-run-json", kwargs={"pk": run.pk})
    assert {k: body[k] for k in ("status", "operation", "dry_run", "atomic", "success")} == {
        "status": "succeeded",
        "operation": "update",
        "dry_run": False,
        "atomic": True,
        "success": True,
    }
    assert body["counts"] == {"selected": 4, "succeeded": 4, "changed": 4, "failed": 0}
    assert body["outcomes"] == {"changed": 4}
    assert body["errors"] == [] and body["not_found"] == []
    assert set(prices(pks).values()) == {Decimal("12.50")}
    assert (run.kind, run.mode, run.reason, run.owner.username) == ("update", "sync", "Sale", "editor")
    assert run.stored_request is not None and run.stored_request.view_name.endswith("BookCRUDView")
    # The run's URL reads the same run.
    assert client.get(body["url"]).json()["counts"] == {"changed": 4}


def test_ids_that_name_no_row_are_reported_and_the_rest_run(
    client: Client, catalogue: dict[str, Any]
) -> None:
    pk = books(catalogue, "draft")[0].pk
    body = post(
        client, {"operation": "update", "selection": {"ids": [pk, 999_999]}, "values": {"price": "3.00"}}
    ).json()
    assert body["not_found"] == ["999999"] and body["counts"]["selected"] == 1
    assert prices([pk]) == {pk: Decimal("3.00")}


def test_an_update_by_the_lists_query_changes_every_matching_row(
    client: Client, catalogue: dict[str, Any]
) -> None:
    genre = catalogue["genres"][0]
    expected = set(
        Book.objects.filter(status="draft", title__icontains="Book 1").values_list("pk", flat=True)
    )
    assert 0 < len(expected) < Book.objects.filter(status="draft").count()
    response = post(
        client,
        {
            "operation": "update",
            "selection": {"query": "?status=draft&q=Book+1&sort=-price&page=2"},
            "values": {"genre": genre.pk, "tags": {"op": "add", "ids": [catalogue["tags"][1].pk]}},
        },
    )
    assert response.status_code == 200, response.content
    assert response.json()["counts"]["changed"] == len(expected)
    assert set(Book.objects.filter(genre=genre, tags=catalogue["tags"][1]).values_list("pk", flat=True)) == (
        expected
    )


def test_a_delete_removes_the_rows_and_an_undo_brings_them_back(
    client: Client, catalogue: dict[str, Any]
) -> None:
    pks = [b.pk for b in books(catalogue)[:3]]
    body = post(client, {"operation": "delete", "selection": {"ids": pks}}).json()
    assert body["status"] == "succeeded" and body["counts"]["succeeded"] == 3
    assert not Book.objects.filter(pk__in=pks).exists()
    undo = post(client, {"operation": "undo", "run": body["run"]})
    assert undo.status_code == 200, undo.content
    assert undo.json()["operation"] == "undo" and undo.json()["success"] is True
    assert Book.objects.filter(pk__in=pks).count() == 3
    source = BulkTask.objects.get(pk=undo.json()["run"]).stored_request
    assert source is not None and (source.source_action, source.source_run) == ("undo", body["run"])


def test_an_undo_of_an_edit_restores_the_old_values_once(client: Client, catalogue: dict[str, Any]) -> None:
    drafts = books(catalogue, "draft")[:3]
    before = prices([b.pk for b in drafts])
    run = post(
        client, {"operation": "update", "selection": {"ids": list(before)}, "values": {"price": "1.00"}}
    ).json()["run"]
    response = post(client, {"operation": "undo", "run": run, "reason": "Wrong price"})
    assert response.status_code == 200, response.content
    assert response.json()["counts"]["changed"] == 3
    assert prices(list(before)) == before
    assert BulkTask.objects.get(pk=response.json()["run"]).reason == "Wrong price"
    again = post(client, {"operation": "undo", "run": run})
    assert_json_error(again, 409, "run", "undone")


def test_a_check_writes_nothing_and_shows_examples(client: Client, catalogue: dict[str, Any]) -> None:
    pks = [b.pk for b in books(catalogue, "draft")[:3]]
    before = prices(pks)
    body = post(
        client,
        {"operation": "update", "selection": {"ids": pks}, "values": {"price": "99.00"}, "dry_run": True},
    ).json()
    assert body["dry_run"] is True and body["success"] is True and body["counts"]["succeeded"] == 3
    assert prices(pks) == before
    assert {Decimal(e["new"]["price"]) for e in body["examples"]} == {Decimal("99.00")}
    assert BulkTask.objects.get(pk=body["run"]).dry_run is True
    # A delete check deletes nothing either; and a check cannot be undone.
    check = post(client, {"operation": "delete", "selection": {"ids": pks}, "dry_run": True}).json()
    assert check["dry_run"] is True and Book.objects.filter(pk__in=pks).count() == 3
    assert_json_error(post(client, {"operation": "undo", "run": check["run"]}), 409, "run")


def test_all_or_nothing_with_a_failing_row_writes_nothing(client: Client, catalogue: dict[str, Any]) -> None:
    archived = books(catalogue, "archived")[0]
    pks = [b.pk for b in books(catalogue, "draft")[:3]] + [archived.pk]
    before = prices(pks)
    body = post(
        client, {"operation": "update", "selection": {"ids": pks}, "values": {"price": "9.99"}}
    ).json()
    assert body["success"] is False and body["status"] == "failed" and body["atomic"] is True
    assert body["counts"]["failed"] == 1
    assert body["errors"] == [
        {
            "pk": archived.pk,
            "field": "price",
            "messages": [f"“{archived.title}” is archived; archived books cannot be re-priced."],
        }
    ]
    assert body["errors_complete"] is True
    assert prices(pks) == before


def test_per_row_writes_the_rows_that_pass(client: Client, catalogue: dict[str, Any]) -> None:
    archived = books(catalogue, "archived")[0]
    drafts = [b.pk for b in books(catalogue, "draft")[:3]]
    body = post(
        client,
        {
            "operation": "update",
            "selection": {"ids": [*drafts, archived.pk]},
            "values": {"price": "9.99"},
            "atomic": False,
        },
    ).json()
    assert body["atomic"] is False and body["success"] is False
    assert body["counts"] == {"selected": 4, "succeeded": 3, "changed": 3, "failed": 1}
    assert [e["pk"] for e in body["errors"]] == [archived.pk]
    assert set(prices(drafts).values()) == {Decimal("9.99")}
    assert prices([archived.pk]) == {archived.pk: archived.price}


@pytest.mark.urls("tests.bulk_urls")
def test_rows_outside_get_queryset_are_never_touched(client: Client, catalogue: dict[str, Any]) -> None:
    """``unarchived-books`` leaves archived books out of ``get_queryset()``: by ids they are
    not found, by query they do not match, and they keep their values."""
    archived = [b.pk for b in books(catalogue, "archived")]
    draft = books(catalogue, "draft")[0].pk
    before = prices(archived)
    url = "/unarchived-books/bulk/api/"
    body = post(
        client,
        {"operation": "update", "selection": {"ids": [draft, *archived]}, "values": {"price": "0.50"}},
        url=url,
    ).json()
    assert body["counts"]["selected"] == 1 and body["not_found"] == [str(pk) for pk in archived]
    only_archived = {"operation": "delete", "selection": {"ids": archived}}
    assert_json_error(post(client, only_archived, url=url), 400, "selection", "matches no rows")
    everything = post(
        client, {"operation": "update", "selection": {"query": ""}, "values": {"price": "0.75"}}, url=url
    )
    assert everything.json()["counts"]["selected"] == 30 - len(archived)
    assert prices(archived) == before


def test_a_body_over_the_upload_limit_is_a_413(client: Client, catalogue: dict[str, Any]) -> None:
    ids = [b.pk for b in books(catalogue)]
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=50):
        response = post(client, {"operation": "delete", "selection": {"ids": ids}})
    assert_json_error(response, 413, None, "DATA_UPLOAD_MAX_MEMORY_SIZE")
    assert Book.objects.count() == 30


def test_a_view_that_runs_per_row_by_default_can_be_asked_for_all_or_nothing(editor: User) -> None:
    shelves = [Shelf.objects.create(name=f"S{i}", location="A", capacity=5) for i in range(2)]
    client = Client()
    client.force_login(editor)
    document = {
        "operation": "update",
        "selection": {"ids": [s.pk for s in shelves]},
        "values": {"capacity": 0},
    }
    body = post(client, document, url="/shelf/bulk/api/").json()
    assert body["atomic"] is False and body["counts"]["failed"] == 2  # capacity 0 must be full
    body = post(client, {**document, "atomic": True}, url="/shelf/bulk/api/").json()
    assert body["atomic"] is True and body["success"] is False


def test_rows_held_by_another_run_are_a_409_that_writes_nothing(
    client: Client, editor: User, catalogue: dict[str, Any]
) -> None:
    pks = [b.pk for b in books(catalogue, "draft")[:3]]
    before = prices(pks)
    holder = BulkTask.objects.create(
        owner=editor, kind="update", model_label="testapp.book", status="running"
    )
    RowLock.objects.create(task=holder, model_label="testapp.book", object_pk=str(pks[1]))
    response = post(client, {"operation": "update", "selection": {"ids": pks}, "values": {"price": "1.00"}})
    assert_json_error(response, 409, None, f"#{holder.pk}")
    assert prices(pks) == before


# ----- on a worker ----------------------------------------------------------------------------


def test_a_large_run_goes_to_a_worker_and_answers_202_with_its_url(
    client: Client, catalogue: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    pks = [b.pk for b in books(catalogue, "draft")[:4]]
    with on_workers(), django_capture_on_commit_callbacks(execute=True):
        response = post(
            client, {"operation": "update", "selection": {"ids": pks}, "values": {"price": "4.40"}}
        )
    assert response.status_code == 202, response.content
    body = response.json()
    run = BulkTask.objects.get(pk=body["run"])
    url = reverse("powercrud:tasks-run-json", kwargs={"pk": run.pk})
    assert body == {
        "run": run.pk,
        "url": url,
        "status": "queued",
        "operation": "update",
        "not_found": [],
    }
    assert response["Location"] == url
    assert RecordingRunner.jobs == [("powercrud.jobs.worker.run_bulk_task", (run.pk,), run.task_name)]
    assert set(prices(pks).values()) != {Decimal("4.40")}  # not before the worker runs it
    assert run_bulk_task(run.pk) == "succeeded"
    assert set(prices(pks).values()) == {Decimal("4.40")}
    assert client.get(url).json()["status"] == "succeeded"


def test_a_query_selection_on_a_worker_reaches_every_matching_row(
    client: Client, catalogue: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    drafts = [b.pk for b in books(catalogue, "draft")]
    assert len(drafts) > 3
    with on_workers(), django_capture_on_commit_callbacks(execute=True):
        response = post(
            client,
            {
                "operation": "update",
                "selection": {"query": "status=draft"},
                "values": {"status": "published"},
            },
        )
    assert response.status_code == 202, response.content
    assert "selected" not in response.json()  # the worker counts the rows it locks
    run = response.json()["run"]
    assert run_bulk_task(run) == "succeeded"
    assert set(Book.objects.filter(pk__in=drafts).values_list("status", flat=True)) == {"published"}
    doc = client.get(response["Location"]).json()
    assert doc["total"] == len(drafts) and doc["counts"] == {"changed": len(drafts)}


def test_an_undo_and_a_delete_go_to_a_worker_by_size_too(
    client: Client, catalogue: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    pks = [b.pk for b in books(catalogue, "draft")[:4]]
    before = prices(pks)
    run = post(
        client, {"operation": "update", "selection": {"ids": pks}, "values": {"price": "2.00"}}
    ).json()["run"]
    with on_workers(), django_capture_on_commit_callbacks(execute=True):
        undo = post(client, {"operation": "undo", "run": run})
    assert undo.status_code == 202, undo.content
    assert run_bulk_task(undo.json()["run"]) == "succeeded"
    assert prices(pks) == before
    with on_workers(), django_capture_on_commit_callbacks(execute=True):
        delete = post(client, {"operation": "delete", "selection": {"ids": pks[:3]}})
    assert delete.status_code == 202, delete.content
    assert delete.json()["operation"] == "delete" and Book.objects.filter(pk__in=pks).count() == 4
    assert run_bulk_task(delete.json()["run"]) == "succeeded"
    assert list(Book.objects.filter(pk__in=pks).values_list("pk", flat=True)) == [pks[3]]


# ----- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "status", "field", "says"),
    [
        ("{not json", 400, None, "not valid JSON"),
        ("[1, 2]", 400, None, "must be a JSON object"),
        ('{"operation": "update", "operation": "delete"}', 400, "operation", "appears twice"),
        ('{"operation": "delete", "selection": {"ids": [1], "ids": [2]}}', 400, "ids", "appears twice"),
        ('{"operation": "delete", "selection": {"ids": [NaN]}}', 400, None, "NaN"),
        ({"operation": "delete", "selection": {"ids": [1]}, "colour": "red"}, 400, "colour", "Unknown key"),
        ({"selection": {"ids": [1]}}, 400, "operation", "missing"),
        ({"operation": "merge", "selection": {"ids": [1]}}, 400, "operation", "Unknown operation"),
        ({"operation": 3}, 400, "operation", "must be text"),
        ({"operation": "update", "selection": {"ids": [1]}}, 400, "values", "missing"),
        ({"operation": "delete"}, 400, "selection", "missing"),
        (
            {"operation": "delete", "selection": {"ids": [1]}, "values": {"price": "1"}},
            400,
            "values",
            "does not go",
        ),
        ({"operation": "undo"}, 400, "run", "missing"),
        ({"operation": "undo", "run": "7"}, 400, "run", "must be a number"),
        ({"operation": "undo", "run": 7, "dry_run": True}, 400, "dry_run", "cannot be a check"),
        ({"operation": "delete", "selection": {"ids": [1]}, "atomic": "yes"}, 400, "atomic", "true or false"),
        ({"operation": "delete", "selection": {"ids": [1]}, "reason": 5}, 400, "reason", "must be text"),
        ({"operation": "delete", "selection": {"ids": [1]}, "reason": "a\x00b"}, 400, "reason", "NUL"),
        (
            {"operation": "update", "selection": {"ids": [1]}, "values": {"author": "1\x00"}},
            400,
            "values.author",
            "Null",
        ),
        ({"operation": "delete", "selection": {"query": "q=x&author=1\x00"}}, 400, "selection.query", "Null"),
        ({"operation": "delete", "selection": []}, 400, "selection", "must be an object"),
        ({"operation": "delete", "selection": {}}, 400, "selection", "exactly one"),
        ({"operation": "delete", "selection": {"ids": [1], "query": ""}}, 400, "selection", "exactly one"),
        ({"operation": "delete", "selection": {"ids": []}}, 400, "selection.ids", "non-empty"),
        ({"operation": "delete", "selection": {"ids": [{"pk": 1}]}}, 400, "selection.ids", "ids"),
        ({"operation": "delete", "selection": {"ids": ["abc"]}}, 400, "selection.ids", "not a valid id"),
        ({"operation": "delete", "selection": {"ids": [999_999]}}, 400, "selection", "matches no rows"),
        ({"operation": "delete", "selection": {"query": 5}}, 400, "selection.query", "must be text"),
        ({"operation": "delete", "selection": {"query": "statuss=draft"}}, 400, "selection.query", "statuss"),
        ({"operation": "delete", "selection": {"query": "view=mine"}}, 400, "selection.query", "“view”"),
        ({"operation": "delete", "selection": {"query": "status=lost"}}, 400, "selection.query", "status"),
        (
            {"operation": "delete", "selection": {"query": "status=draft&status=published"}},
            400,
            "selection.query",
            "more than once",
        ),
        ({"operation": "update", "selection": {"ids": [1]}, "values": {}}, 400, "values", "non-empty"),
        (
            {"operation": "update", "selection": {"ids": [1]}, "values": {"title": "x"}},
            400,
            "values.title",
            "Allowed",
        ),
        (
            {"operation": "update", "selection": {"ids": [1]}, "values": {"price": "-1"}},
            400,
            "values.price",
            "greater",
        ),
        (
            {"operation": "update", "selection": {"ids": [1]}, "values": {"price": [1]}},
            400,
            "values.price",
            "a list",
        ),
        (
            {"operation": "update", "selection": {"ids": [1]}, "values": {"is_available": 1}},
            400,
            "values.is_available",
            "true or false",
        ),
        (
            {"operation": "update", "selection": {"ids": [1]}, "values": {"status": "lost"}},
            400,
            "values.status",
            "valid choice",
        ),
        (
            {"operation": "update", "selection": {"ids": [1]}, "values": {"author": 999_999}},
            400,
            "values.author",
            "valid choice",
        ),
        (
            {"operation": "update", "selection": {"ids": [1]}, "values": {"tags": [1]}},
            400,
            "values.tags",
            "op",
        ),
        (
            {
                "operation": "update",
                "selection": {"ids": [1]},
                "values": {"tags": {"op": "swap", "ids": [1]}},
            },
            400,
            "values.tags",
            "add",
        ),
        (
            {"operation": "update", "selection": {"ids": [1]}, "values": {"price": "1"}, "reason": "x" * 501},
            400,
            "reason",
            "too long",
        ),
        ({"operation": "undo", "run": 999_999}, 404, "run", "No bulk run"),
    ],
)
def test_bad_input_is_a_json_error_naming_the_field(
    client: Client, catalogue: dict[str, Any], document: Any, status: int, field: str | None, says: str
) -> None:
    if isinstance(document, dict) and document.get("selection") == {"ids": [1]}:
        document = {**document, "selection": {"ids": [books(catalogue)[1].pk]}}
    before = list(Book.objects.order_by("pk").values())
    assert_json_error(post(client, document), status, field, says)
    assert list(Book.objects.order_by("pk").values()) == before
    assert not BulkTask.objects.exists()


def test_a_field_error_lists_every_fields_messages(client: Client, catalogue: dict[str, Any]) -> None:
    body = post(
        client,
        {
            "operation": "update",
            "selection": {"ids": [books(catalogue)[0].pk]},
            "values": {"price": "-1", "published_date": "soon"},
        },
    ).json()
    assert set(body["errors"]) == {"values.price", "values.published_date"}


def test_the_wrong_content_type_and_method_are_json_errors(client: Client, catalogue: dict[str, Any]) -> None:
    form = client.post(API, {"operation": "delete"})
    assert_json_error(form, 415, "Content-Type", "application/json")
    got = client.get(API)
    assert_json_error(got, 405, None, "POST")
    assert got["Allow"] == "POST"


def test_a_defect_is_logged_and_still_answers_json(
    client: Client, catalogue: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the view")

    monkeypatch.setattr(BookCRUDView, "build_bulk_request", broken)
    response = post(client, {"operation": "delete", "selection": {"ids": [books(catalogue)[0].pk]}})
    assert_json_error(response, 500, None, "its log has the details")
    assert "a bug in the view" in caplog.text
    assert Book.objects.count() == 30


def test_permissions_follow_the_operation(catalogue: dict[str, Any]) -> None:
    pk = books(catalogue, "draft")[0].pk
    viewer = Client()
    viewer.force_login(make_user("viewer", "view_book"))
    assert_json_error(
        post(viewer, {"operation": "delete", "selection": {"ids": [pk]}}), 403, None, "permission"
    )
    changer = Client()
    changer.force_login(make_user("changer", "view_book", "change_book"))
    assert_json_error(post(changer, {"operation": "delete", "selection": {"ids": [pk]}}), 403, None, "delete")
    ok = post(changer, {"operation": "update", "selection": {"ids": [pk]}, "values": {"price": "1.00"}})
    assert ok.status_code == 200
    # An undo needs the permission of what it undoes: a delete's undo, the delete permission.
    boss = Client()
    boss.force_login(make_user("boss", superuser=True))
    deleted = post(boss, {"operation": "delete", "selection": {"ids": [pk]}}).json()["run"]
    BulkTask.objects.filter(pk=deleted).update(owner=User.objects.get(username="changer"))
    assert_json_error(post(changer, {"operation": "undo", "run": deleted}), 403, None, "undo a bulk delete")
    assert not Book.objects.filter(pk=pk).exists()


def test_another_users_run_is_a_404_and_staff_may_undo_it(editor: User, catalogue: dict[str, Any]) -> None:
    pks = [b.pk for b in books(catalogue, "draft")[:2]]
    before = prices(pks)
    owner = Client()
    owner.force_login(editor)
    run = post(owner, {"operation": "update", "selection": {"ids": pks}, "values": {"price": "6.00"}}).json()[
        "run"
    ]
    stranger = Client()
    stranger.force_login(make_user("stranger", "view_book", "change_book"))
    assert_json_error(post(stranger, {"operation": "undo", "run": run}), 404, "run", f"#{run}")
    assert_json_error(
        post(stranger, {"operation": "undo", "run": run}, url="/shelf/bulk/api/"), 403, None, "permission"
    )
    boss = Client()
    boss.force_login(make_user("boss", superuser=True))
    assert post(boss, {"operation": "undo", "run": run}).status_code == 200
    assert prices(pks) == before


def test_a_run_of_another_model_is_not_found_on_this_screen(editor: User, catalogue: dict[str, Any]) -> None:
    client = Client()
    client.force_login(editor)
    run = post(
        client,
        {"operation": "update", "selection": {"ids": [books(catalogue)[0].pk]}, "values": {"price": "1"}},
    ).json()["run"]
    assert_json_error(post(client, {"operation": "undo", "run": run}, url="/shelf/bulk/api/"), 404, "run")


def test_only_views_with_bulk_roles_have_the_endpoint() -> None:
    assert reverse("testapp:book-bulk-api") == API
    with pytest.raises(NoReverseMatch):
        reverse("testapp:author-bulk-api")


# ----- who is asking --------------------------------------------------------------------------


def test_nobody_signed_in_is_a_json_401_not_the_login_page(catalogue: dict[str, Any]) -> None:
    response = post(Client(), {"operation": "delete", "selection": {"ids": [books(catalogue)[0].pk]}})
    assert_json_error(response, 401, None, "Sign in")
    assert Book.objects.count() == 30


def test_a_session_post_needs_the_csrf_token(editor: User, catalogue: dict[str, Any]) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(editor)
    document = {"operation": "delete", "selection": {"ids": [books(catalogue)[0].pk]}}
    assert_json_error(post(client, document), 403, "csrf", "CSRF")
    assert Book.objects.count() == 30
    token = "a" * 32
    client.cookies["csrftoken"] = token
    assert_json_error(post(client, document, HTTP_X_CSRFTOKEN="b" * 32), 403, "csrf", "CSRF")
    response = post(client, document, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200, response.content
    assert Book.objects.count() == 29


def test_a_token_from_the_hook_signs_in_without_csrf(editor: User, catalogue: dict[str, Any]) -> None:
    client = Client(enforce_csrf_checks=True)  # no session, no cookie
    pk = books(catalogue, "draft")[0].pk
    document = {"operation": "update", "selection": {"ids": [pk]}, "values": {"price": "2.25"}}
    with with_token_hook():
        assert_json_error(post(client, document), 401, None, "Sign in")
        assert_json_error(
            post(client, document, HTTP_AUTHORIZATION="Token wrong"), 401, None, "Unknown token"
        )
        response = post(client, document, HTTP_AUTHORIZATION="Token secret-editor")
        assert response.status_code == 200, response.content
        run = BulkTask.objects.get(pk=response.json()["run"])
        assert run.owner == editor and prices([pk]) == {pk: Decimal("2.25")}
        # The run's JSON and its undo answer the same token.
        doc = client.get(response.json()["url"], HTTP_AUTHORIZATION="Token secret-editor")
        assert doc.status_code == 200 and doc.json()["id"] == run.pk
        undo = post(client, {"operation": "undo", "run": run.pk}, HTTP_AUTHORIZATION="Token secret-editor")
        assert undo.status_code == 200
    # Without the hook configured, a token is nobody.
    assert_json_error(post(client, document, HTTP_AUTHORIZATION="Token secret-editor"), 401, None)


def test_a_token_for_an_inactive_user_is_refused(editor: User, catalogue: dict[str, Any]) -> None:
    User.objects.filter(pk=editor.pk).update(is_active=False)
    document = {"operation": "delete", "selection": {"ids": [books(catalogue)[0].pk]}}
    with with_token_hook():
        response = post(Client(), document, HTTP_AUTHORIZATION="Token secret-editor")
    assert_json_error(response, 401, None, "no active user")


@pytest.mark.parametrize(
    ("path", "check_id", "says"),
    [
        ("nowhere.user_for_request", "powercrud.E021", "does not import"),
        (f"{HERE}.no_such_function", "powercrud.E021", "does not import"),
        (f"{HERE}.NOT_CALLABLE", "powercrud.E022", "not callable"),
    ],
)
def test_a_hook_path_that_cannot_work_is_a_system_check_error(path: str, check_id: str, says: str) -> None:
    with powercrud_settings(API_AUTHENTICATE=path):
        found = [e for e in check_installation() if e.id in ("powercrud.E021", "powercrud.E022")]
    assert [e.id for e in found] == [check_id] and says in found[0].msg
    with with_token_hook():
        assert [e for e in check_installation() if e.id in ("powercrud.E021", "powercrud.E022")] == []


# ----- cancel ---------------------------------------------------------------------------------


def cancel_url(run: int) -> str:
    return reverse("powercrud:tasks-cancel-json", kwargs={"pk": run})


def queued_run(client: Client, catalogue: dict[str, Any], capture: Any) -> int:
    pks = [b.pk for b in books(catalogue, "draft")[:3]]
    with on_workers(), capture(execute=True):
        response = post(
            client, {"operation": "update", "selection": {"ids": pks}, "values": {"price": "7.00"}}
        )
    assert response.status_code == 202
    run: int = response.json()["run"]
    return run


def test_cancel_of_a_queued_run_ends_it_and_frees_its_rows(
    client: Client, catalogue: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    run = queued_run(client, catalogue, django_capture_on_commit_callbacks)
    response = client.post(cancel_url(run))
    assert response.status_code == 200, response.content
    body = response.json()
    assert {k: body[k] for k in ("run", "status", "cancel_requested")} == {
        "run": run,
        "status": "cancelled",
        "cancel_requested": False,
    }
    assert body["url"] == reverse("powercrud:tasks-run-json", kwargs={"pk": run})
    assert not RowLock.objects.exists()
    assert run_bulk_task(run) == "skipped"  # the job, delivered anyway, does nothing
    assert_json_error(client.post(cancel_url(run)), 409, None, "already ended")


def test_cancel_of_a_running_run_asks_it_to_stop(
    client: Client, catalogue: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    run = queued_run(client, catalogue, django_capture_on_commit_callbacks)
    BulkTask.objects.filter(pk=run).update(status="running")
    task = BulkTask.objects.get(pk=run)
    try:
        response = client.post(cancel_url(run))
        assert response.status_code == 202, response.content
        assert response.json()["cancel_requested"] is True and response.json()["status"] == "running"
        assert response["Location"] == reverse("powercrud:tasks-run-json", kwargs={"pk": run})
    finally:
        progress.forget(task)  # the live store outlives the test's transaction


def test_cancel_refusals_are_json(
    editor: User, client: Client, catalogue: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    run = queued_run(client, catalogue, django_capture_on_commit_callbacks)
    stranger = Client()
    stranger.force_login(make_user("stranger"))
    assert_json_error(stranger.post(cancel_url(run)), 404, None, f"#{run}")
    assert_json_error(Client().post(cancel_url(run)), 401, None, "Sign in")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(editor)
    assert_json_error(strict.post(cancel_url(run)), 403, "csrf", "CSRF")
    got = client.get(cancel_url(run))
    assert got.status_code == 405
    with with_token_hook():
        by_token = Client(enforce_csrf_checks=True).post(
            cancel_url(run), HTTP_AUTHORIZATION="Token secret-editor"
        )
    assert by_token.status_code == 200 and by_token.json()["status"] == "cancelled"
