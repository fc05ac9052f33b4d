"""Who may do what: every role of a CRUD view against users holding each model permission,
in a view that runs bulk work in the request and in one that queues it; the task pages
against owners, other users, staff and permission holders; and what happens to a queued
task when its owner loses the permission (the rule is in docs/security.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from powercrud.jobs.worker import run_bulk_task
from powercrud.models import BulkTask, RowLock
from tests.bulk_urls import book_snapshot
from tests.security.conftest import locked_pks, login, plant_ids, selection_key
from tests.testapp.models import Book

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.security.urls")]

Catalogue = dict[str, Any]
DENIED = "You do not have permission to do this."
ALL = ("view_book", "add_book", "change_book", "delete_book")
USERS = {"none": (), "view": ("view_book",), "add": ("add_book",), "change": ("change_book",)}
USERS |= {"delete": ("delete_book",), "all": ALL}


@dataclass(frozen=True)
class Case:
    """One request of the matrix: the role, its permission, and what an allowed request does."""

    role: str
    method: str
    perm: str
    url: Callable[[str, Catalogue, int], str]
    data: Callable[[Catalogue], dict[str, Any]]
    allowed_status: Callable[[bool], int]  # given "the view queues bulk work"
    effect: Callable[[Catalogue, int, bool], None]  # checks what an allowed request did


def book(c: Catalogue, offset: int, index: int) -> Book:
    return c["books"][offset + index]


def nothing(c: Catalogue, offset: int, queued: bool) -> None:
    return None


def created(c: Catalogue, offset: int, queued: bool) -> None:
    assert Book.objects.filter(title=f"New {offset}").exists()


def updated(c: Catalogue, offset: int, queued: bool) -> None:
    assert Book.objects.get(pk=book(c, offset, 1).pk).title == f"Changed {offset}"


def deleted(c: Catalogue, offset: int, queued: bool) -> None:
    assert not Book.objects.filter(pk=book(c, offset, 2).pk).exists()


def bulk_edited(c: Catalogue, offset: int, queued: bool) -> None:
    pks = [book(c, offset, 3).pk, book(c, offset, 4).pk]
    if queued:
        task = BulkTask.objects.get(kind="update")
        assert locked_pks(task) == sorted(str(pk) for pk in pks)
        assert run_bulk_task(task.pk) == "succeeded"
    assert set(Book.objects.filter(pk__in=pks).values_list("status", flat=True)) == {"out_of_print"}


def bulk_deleted(c: Catalogue, offset: int, queued: bool) -> None:
    pks = [book(c, offset, 3).pk, book(c, offset, 4).pk]
    if queued:
        task = BulkTask.objects.get(kind="delete")
        assert run_bulk_task(task.pk) == "succeeded"
    assert not Book.objects.filter(pk__in=pks).exists()


def selected(c: Catalogue, offset: int, queued: bool) -> None:
    return None  # checked by the caller: the session holds the new selection


CASES = [
    Case("list", "get", "view", lambda b, c, o: f"/{b}/", dict, lambda q: 200, nothing),
    Case("detail", "get", "view", lambda b, c, o: f"/{b}/{book(c, o, 0).pk}/", dict, lambda q: 200, nothing),
    Case("create", "get", "add", lambda b, c, o: f"/{b}/new/", dict, lambda q: 200, nothing),
    Case(
        "create",
        "post",
        "add",
        lambda b, c, o: f"/{b}/new/",
        lambda c: {"title": "New {offset}", "author": c["authors"][0].pk, "status": "draft", "price": "1"},
        lambda q: 302,
        created,
    ),
    Case(
        "update",
        "get",
        "change",
        lambda b, c, o: f"/{b}/{book(c, o, 1).pk}/edit/",
        dict,
        lambda q: 200,
        nothing,
    ),
    Case(
        "update",
        "post",
        "change",
        lambda b, c, o: f"/{b}/{book(c, o, 1).pk}/edit/",
        lambda c: {
            "title": "Changed {offset}",
            "author": c["authors"][0].pk,
            "status": "draft",
            "price": "2",
        },
        lambda q: 302,
        updated,
    ),
    Case(
        "delete",
        "get",
        "delete",
        lambda b, c, o: f"/{b}/{book(c, o, 2).pk}/delete/",
        dict,
        lambda q: 200,
        nothing,
    ),
    Case(
        "delete",
        "post",
        "delete",
        lambda b, c, o: f"/{b}/{book(c, o, 2).pk}/delete/",
        dict,
        lambda q: 302,
        deleted,
    ),
    Case("selection", "get", "view", lambda b, c, o: f"/{b}/selection/", dict, lambda q: 200, nothing),
    Case(
        "selection",
        "post",
        "view",
        lambda b, c, o: f"/{b}/selection/",
        lambda c: {"action": "set", "checked": "1", "pk": "{extra}"},
        lambda q: 200,
        selected,
    ),
    Case("bulk-edit", "get", "change", lambda b, c, o: f"/{b}/bulk/edit/", dict, lambda q: 200, nothing),
    Case(
        "bulk-edit",
        "post",
        "change",
        lambda b, c, o: f"/{b}/bulk/edit/",
        lambda c: {"change_status": "1", "status": "out_of_print"},
        lambda q: 202 if q else 302,
        bulk_edited,
    ),
    Case("bulk-delete", "get", "delete", lambda b, c, o: f"/{b}/bulk/delete/", dict, lambda q: 200, nothing),
    Case(
        "bulk-delete",
        "post",
        "delete",
        lambda b, c, o: f"/{b}/bulk/delete/",
        dict,
        lambda q: 202 if q else 302,
        bulk_deleted,
    ),
]


def state() -> tuple[Any, ...]:
    return (
        book_snapshot(),
        list(BulkTask.objects.values_list("pk", "status")),
        list(RowLock.objects.values_list("object_pk", flat=True)),
    )


def fill(data: dict[str, Any], offset: int, extra: str) -> dict[str, Any]:
    return {k: v.format(offset=offset, extra=extra) if isinstance(v, str) else v for k, v in data.items()}


@pytest.mark.parametrize("base", ["plain-books", "async-books"])
@pytest.mark.parametrize("holder", list(USERS))
def test_every_role_needs_its_model_permission(
    user_factory: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any, holder: str, base: str
) -> None:
    perms = {codename.split("_")[0] for codename in USERS[holder]}
    client = login(user_factory(f"user-{holder}", *USERS[holder]))
    queued = base == "async-books"
    offset = 0
    extra = str(catalogue["books"][20].pk)
    for case in CASES:
        if case.role.startswith("bulk-"):
            plant_ids(client, base, [book(catalogue, offset, 3).pk, book(catalogue, offset, 4).pk])
        before, stored = state(), client.session.get(selection_key(base))
        with django_capture_on_commit_callbacks(execute=True):
            response = getattr(client, case.method)(
                case.url(base, catalogue, offset), fill(case.data(catalogue), offset, extra)
            )
        label = (holder, base, case.role, case.method)
        if case.perm in perms:
            assert response.status_code == case.allowed_status(queued), label
            case.effect(catalogue, offset, queued)
            if case.role == "selection" and case.method == "post":
                assert extra in client.session[selection_key(base)]["ids"], label
            if case.role.startswith("bulk-") and case.method == "post":
                offset += 5  # the next bulk case works on rows this one did not touch
        else:
            assert response.status_code == 403, label
            assert DENIED in response.content.decode(), label
            assert state() == before, label
            assert client.session.get(selection_key(base)) == stored, label
    assert RowLock.objects.count() == 0


# ----- the task pages -------------------------------------------------------------------------------
@pytest.fixture
def queued_task(user_factory: Any, catalogue: Catalogue, django_capture_on_commit_callbacks: Any) -> BulkTask:
    """A task queued through HTTP by "owner", who may change books."""
    owner = user_factory("owner", "view_book", "change_book")
    client = login(owner)
    plant_ids(client, "async-books", [catalogue["books"][0].pk, catalogue["books"][1].pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/async-books/bulk/edit/", {"change_status": "1", "status": "archived"})
    assert response.status_code == 202
    return BulkTask.objects.get(owner=owner)


def task_urls(task: BulkTask) -> dict[str, str]:
    base = f"/powercrud/tasks/{task.pk}/"
    return {"detail": base, "progress": f"{base}progress/", "outcomes": f"{base}outcomes.csv"}


@pytest.mark.parametrize(
    ("who", "sees", "cancel_status"),
    [
        ("owner", True, 302),
        ("stranger", False, 404),  # another user, even one who may change every book
        ("staff", True, 403),  # staff see every task but cancel only their own
        ("canceller", False, 404),  # change_bulktask cancels what one sees, and sees own tasks only
        ("superuser", True, 302),
    ],
)
def test_task_pages_show_a_user_only_what_they_may_see(
    queued_task: BulkTask, user_factory: Any, who: str, sees: bool, cancel_status: int
) -> None:
    users = {
        "owner": lambda: queued_task.owner,
        "stranger": lambda: user_factory("stranger", *ALL),
        "staff": lambda: User.objects.create_user("staffer", is_staff=True),
        "canceller": lambda: user_factory("canceller", "change_bulktask"),
        "superuser": lambda: user_factory("root", superuser=True),
    }
    client = login(users[who]())
    for name, url in task_urls(queued_task).items():
        for method in ("get", "head"):
            response = getattr(client, method)(url)
            assert response.status_code == (200 if sees else 404), (who, name, method)
    listing = client.get("/powercrud/tasks/").content.decode()
    assert (task_urls(queued_task)["detail"] in listing) is sees
    response = client.post(f"/powercrud/tasks/{queued_task.pk}/cancel/")
    assert response.status_code == cancel_status
    queued_task.refresh_from_db()
    cancelled = cancel_status == 302
    assert queued_task.status == ("cancelled" if cancelled else "queued")
    assert not RowLock.objects.filter(task=queued_task).exists()  # a queued run holds no row yet


def test_anonymous_users_see_no_task_page(queued_task: BulkTask) -> None:
    for url in [*task_urls(queued_task).values(), "/powercrud/tasks/"]:
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert Client().post(f"/powercrud/tasks/{queued_task.pk}/cancel/").status_code == 302
    queued_task.refresh_from_db()
    assert queued_task.status == "queued"


# ----- a permission removed after queueing -------------------------------------------------------------
def test_a_task_runs_as_queued_when_its_owner_loses_the_permission(
    queued_task: BulkTask, catalogue: Catalogue, django_capture_on_commit_callbacks: Any
) -> None:
    """The rule: permission is checked when the task is submitted; the worker runs the task as
    queued. Revoking a permission stops new submissions at once; a task already queued is
    stopped by cancelling it (its owner, or a holder of powercrud.change_bulktask who sees it)."""
    owner = queued_task.owner
    owner.user_permissions.remove(
        Permission.objects.get(codename="change_book", content_type__app_label="testapp")
    )
    owner = User.objects.get(pk=owner.pk)  # a fresh permission cache, as the next request has
    assert not owner.has_perm("testapp.change_book")
    client = login(owner)
    # New submissions are refused at once ...
    plant_ids(client, "async-books", [catalogue["books"][5].pk])
    with django_capture_on_commit_callbacks(execute=True):
        assert (
            client.post("/async-books/bulk/edit/", {"change_status": "1", "status": "draft"}).status_code
            == 403
        )
    assert BulkTask.objects.count() == 1
    # ... the queued task runs as it was authorised ...
    assert run_bulk_task(queued_task.pk) == "succeeded"
    pks = [catalogue["books"][0].pk, catalogue["books"][1].pk]
    assert set(Book.objects.filter(pk__in=pks).values_list("status", flat=True)) == {"archived"}


def test_a_queued_task_can_be_cancelled_by_its_owner_after_losing_the_permission(
    queued_task: BulkTask, catalogue: Catalogue
) -> None:
    owner = queued_task.owner
    owner.user_permissions.clear()
    client = login(User.objects.get(pk=owner.pk))
    assert client.post(f"/powercrud/tasks/{queued_task.pk}/cancel/").status_code == 302
    assert run_bulk_task(queued_task.pk) == "skipped"
    queued_task.refresh_from_db()
    assert queued_task.status == "cancelled"
    assert Book.objects.filter(status="archived").count() == 7  # the catalogue's own archived books
    assert RowLock.objects.count() == 0
