"""A parameter that takes one value and arrives with several is refused, never guessed.

``QueryDict.get()`` takes the last value, so ``dry_run=1&dry_run=0`` ran a real delete and
``tags__op=add&tags__op=remove`` applied a remove. Each such request is now a 400 that names
the parameter, with nothing written, queued or locked, in both modes.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.http import QueryDict

from powercrud.params import RepeatedParameter, refuse_repeated, single
from tests.bulk_urls import book_snapshot
from tests.security.conftest import assert_nothing_queued, login, plant_ids, selection_key
from tests.testapp.models import Book

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.security.urls")]

Catalogue = dict[str, Any]
BASES = ["plain-books", "async-books"]  # in the request; on a worker from the first row


def post(client: Any, url: str, body: str, capture: Any) -> Any:
    """POST ``body`` exactly as given (a browser form may repeat a name), running on-commit work."""
    with capture(execute=True):
        return client.post(url, body, content_type="application/x-www-form-urlencoded")


def refused(response: Any, name: str, times: int = 2) -> bool:
    return response.status_code == 400 and f"“{name}” was sent {times} times" in response.content.decode()


# ----- the helpers -------------------------------------------------------------------------------
def test_single_takes_the_one_value_or_the_default() -> None:
    assert single(QueryDict("a=1"), "a") == "1"
    assert single(QueryDict(""), "a", "none") == "none"
    with pytest.raises(RepeatedParameter) as caught:
        single(QueryDict("a=1&a=1"), "a")  # the same value twice is still two values
    assert caught.value.name == "a"
    assert caught.value.message.startswith("The parameter “a” was sent 2 times, but it takes one value")


def test_refuse_repeated_checks_only_the_names_given() -> None:
    data = QueryDict("tags=1&tags=2&status=x&unknown=1&unknown=2")
    refuse_repeated(data, ["status", "absent"])  # tags may repeat; unknown is nobody's
    with pytest.raises(RepeatedParameter, match="“tags” was sent 2 times"):
        refuse_repeated(data, ["status", "tags"])


# ----- bulk delete ---------------------------------------------------------------------------------
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("body", ["dry_run=1&dry_run=0", "dry_run=0&dry_run=1"])
def test_a_bulk_delete_with_dry_run_twice_deletes_nothing(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any, base: str, body: str
) -> None:
    client = login(admin_user, htmx=True)
    pks = [book.pk for book in catalogue["books"][:3]]
    plant_ids(client, base, pks)
    response = post(client, f"/{base}/bulk/delete/", body, django_capture_on_commit_callbacks)
    assert refused(response, "dry_run")
    assert Book.objects.filter(pk__in=pks).count() == 3
    assert_nothing_queued()
    assert client.session[selection_key(base)]["ids"] == [str(pk) for pk in pks]  # kept


# ----- bulk edit -----------------------------------------------------------------------------------
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize(
    ("body", "name"),
    [
        ("change_status=1&status=archived&status=published", "status"),
        ("change_status=1&change_status=1&status=archived", "change_status"),
        ("change_tags=1&tags__op=add&tags__op=remove&tags={tag}", "tags__op"),
        ("change_status=1&status=archived&dry_run=1&dry_run=0", "dry_run"),
        ("change_price=1&price=1.00&price=2.00", "price"),
    ],
)
def test_a_bulk_edit_with_a_one_value_parameter_twice_writes_nothing(
    admin_user: Any,
    catalogue: Catalogue,
    django_capture_on_commit_callbacks: Any,
    base: str,
    body: str,
    name: str,
) -> None:
    client = login(admin_user, htmx=True)
    plant_ids(client, base, [book.pk for book in catalogue["books"][:3]])
    before = book_snapshot()
    tag = catalogue["tags"][0].pk
    response = post(client, f"/{base}/bulk/edit/", body.format(tag=tag), django_capture_on_commit_callbacks)
    assert refused(response, name)
    assert book_snapshot() == before
    assert_nothing_queued()


@pytest.mark.parametrize("base", BASES)
def test_many_to_many_choices_may_repeat(
    admin_user: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any, base: str
) -> None:
    """The one parameter meant to carry several values still does."""
    client = login(admin_user, htmx=True)
    books = catalogue["books"][1:4]
    plant_ids(client, base, [book.pk for book in books])
    first, second = (tag.pk for tag in catalogue["tags"][:2])
    body = f"change_tags=1&tags__op=add&tags={first}&tags={second}"
    response = post(client, f"/{base}/bulk/edit/", body, django_capture_on_commit_callbacks)
    assert response.status_code == (202 if base == "async-books" else 204)
    if base == "async-books":
        from powercrud.jobs.worker import run_bulk_task
        from powercrud.models import BulkTask

        assert run_bulk_task(BulkTask.objects.get().pk) == "succeeded"
    for book in books:
        assert {first, second} <= set(book.tags.values_list("pk", flat=True))


# ----- selection -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "name"),
    [
        ("action=clear&action=all", "action"),
        ("action=set&pk={pk}&checked=1&checked=0", "checked"),
        ("action=all&query=status%3Ddraft&query=", "query"),
    ],
)
def test_a_selection_change_with_a_one_value_parameter_twice_changes_nothing(
    admin_user: Any, catalogue: Catalogue, body: str, name: str
) -> None:
    client = login(admin_user, htmx=True)
    pks = [book.pk for book in catalogue["books"][:2]]
    plant_ids(client, "plain-books", pks)
    response = client.post(
        "/plain-books/selection/",
        body.format(pk=catalogue["books"][5].pk),
        content_type="application/x-www-form-urlencoded",
    )
    assert refused(response, name)
    assert client.session[selection_key("plain-books")] == {"mode": "ids", "ids": [str(pk) for pk in pks]}
