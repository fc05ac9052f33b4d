"""A bulk run as JSON (``tasks/<pk>/run.json``): its record and a page of its ledger rows, for
programs; errors are JSON too, and another user's run is a 404."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from powercrud.dashboard import runrows
from powercrud.models import BulkTask
from tests.async_helpers import make_books
from tests.conftest import make_user
from tests.test_ledger import run_sync
from tests.testapp.models import Book

pytestmark = pytest.mark.django_db


def url(run: BulkTask) -> str:
    return reverse("powercrud:tasks-run-json", kwargs={"pk": run.pk})


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def owner() -> User:
    return make_user("owner")


def edited_run(owner: User, count: int = 5) -> BulkTask:
    books = make_books(count)
    Book.objects.filter(pk=books[0].pk).update(price=Decimal("7.25"))
    run, _ = run_sync(Book.objects.filter(pk__in=[b.pk for b in books]), {"price": "7.25"}, reason="Sale")
    BulkTask.objects.filter(pk=run.pk).update(owner=owner)
    run.refresh_from_db()
    return run


def test_the_run_reads_as_json_with_its_counts_and_rows(owner: User) -> None:
    run = edited_run(owner)
    response = client_for(owner).get(url(run), {"outcome": "all"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    doc = response.json()
    assert {k: doc[k] for k in ("id", "kind", "status", "mode", "check", "model", "owner", "reason")} == {
        "id": run.pk,
        "kind": "update",
        "status": "succeeded",
        "mode": "sync",
        "check": False,
        "model": "testapp.book",
        "owner": "owner",
        "reason": "Sale",
    }
    assert doc["counts"] == {"changed": 4, "unchanged": 1}
    assert doc["total"] == doc["done"] == 5 and doc["progress"] == 1
    assert doc["fields"] == ["price"]
    assert doc["finished_at"].startswith(str(run.finished_at.year))
    assert doc["urls"]["outcomes"].endswith(f"/tasks/{run.pk}/outcomes.csv")
    rows = doc["rows"]
    assert rows["count"] == 5 and rows["page"] == 1 and rows["pages"] == 1 and rows["next"] is None
    assert {r["outcome"] for r in rows["results"]} == {"changed", "unchanged"}
    changed = next(r for r in rows["results"] if r["outcome"] == "changed")
    assert Decimal(changed["new"]["price"]) == Decimal("7.25")
    assert set(changed) == {"pk", "outcome", "old", "new", "errors"}
    assert isinstance(changed["pk"], int) and Book.objects.filter(pk=changed["pk"]).exists()


def test_rows_are_paged_and_filtered_by_outcome(owner: User, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runrows, "PER_PAGE", 2)
    run = edited_run(owner)
    client = client_for(owner)
    first = client.get(url(run), {"outcome": "changed"}).json()["rows"]
    assert first["count"] == 4 and first["pages"] == 2 and len(first["results"]) == 2
    assert first["next"] == f"{url(run)}?outcome=changed&page=2"
    second = client.get(first["next"]).json()["rows"]
    assert second["previous"] == f"{url(run)}?outcome=changed&page=1" and second["next"] is None
    seen = {r["pk"] for r in first["results"]} | {r["pk"] for r in second["results"]}
    assert len(seen) == 4


@pytest.mark.parametrize(
    ("query", "field", "says"),
    [
        ({"outcome": "lost"}, "outcome", "“lost” is not a row outcome"),
        ({"outcome": ["all", "failed"]}, "outcome", "sent 2 times"),
        ({"page": "9"}, "page", "pages run from 1 to 1"),
        ({"page": "x"}, "page", "“x” is not a page"),
        ({"page": ["1", "2"]}, "page", "sent 2 times"),
    ],
)
def test_bad_parameters_are_json_400s_naming_the_field(
    owner: User, query: dict[str, Any], field: str, says: str
) -> None:
    run = edited_run(owner)
    response = client_for(owner).get(url(run), query)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["field"] == field and says in body["error"]


def test_another_users_run_is_a_json_404_and_staff_see_it(owner: User) -> None:
    run = edited_run(owner)
    response = client_for(make_user("stranger")).get(url(run))
    assert response.status_code == 404
    assert response.json() == {"error": f"No bulk run #{run.pk} that you may see."}
    staff = make_user("boss", superuser=True)
    assert client_for(staff).get(url(run)).json()["id"] == run.pk


def test_no_sign_in_is_a_json_401_not_the_login_page(owner: User) -> None:
    run = edited_run(owner)
    response = Client().get(url(run))
    assert response.status_code == 401
    assert response.json() == {
        "error": "Sign in, or send the token your project's API authentication expects."
    }


def test_a_run_without_ledger_rows_reads_with_an_empty_page(owner: User) -> None:
    run = BulkTask.objects.create(owner=owner, kind="update", model_label="testapp.book", status="queued")
    doc = client_for(owner).get(url(run)).json()
    assert doc["status"] == "queued" and doc["progress"] is None
    assert doc["rows"] == {
        "outcome": "all",
        "count": 0,
        "page": 1,
        "pages": 0,
        "next": None,
        "previous": None,
        "results": [],
    }
