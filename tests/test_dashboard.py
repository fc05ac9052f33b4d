"""The task dashboard (``powercrud.dashboard``): scoping, filters, progress, outcomes CSV, cancel, admin.

Tasks are made directly as ``BulkTask`` rows; no worker runs here.
"""

from __future__ import annotations

import csv
import datetime
import io
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from powercrud.dashboard import format_duration, outcome_rows
from powercrud.jobs import progress
from powercrud.models import BulkTask, RowLock
from tests.conftest import HtmxClient

SCRIPT = "<script>alert(1)</script>"
Status = BulkTask.Status


def make_task(owner: User | None, **values: Any) -> BulkTask:
    values.setdefault("kind", BulkTask.Kind.UPDATE)
    values.setdefault("model_label", "testapp.book")
    values.setdefault("total", 10)
    values.setdefault(
        "payload", {"fields_to_update": ["status"], "field_data": {"status": "published"}, "atomic": True}
    )
    return BulkTask.objects.create(owner=owner, **values)


def finished(owner: User | None, status: str = Status.SUCCEEDED, **values: Any) -> BulkTask:
    now = timezone.now()
    values.setdefault("started_at", now - datetime.timedelta(seconds=75))
    values.setdefault("finished_at", now)
    values.setdefault("done", values.get("total", 10))
    return make_task(owner, status=status, **values)


def client_for(user: User, cls: type[Client] = Client, **kwargs: Any) -> Client:
    client = cls(**kwargs)
    client.force_login(user)
    return client


def url(name: str, task: BulkTask | None = None) -> str:
    return reverse(f"powercrud:tasks-{name}", kwargs={"pk": task.pk} if task else None)


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice", password="pw")


@pytest.fixture
def bob(db: None) -> User:
    return User.objects.create_user("bob", password="pw")


@pytest.fixture
def staff(db: None) -> User:
    return User.objects.create_user("stella", password="pw", is_staff=True)


# ----- access and scoping -----------------------------------------------------------------------


def test_urls():
    assert reverse("powercrud:tasks-list") == "/powercrud/tasks/"
    assert reverse("powercrud:tasks-detail", kwargs={"pk": 7}) == "/powercrud/tasks/7/"
    assert reverse("powercrud:tasks-progress", kwargs={"pk": 7}) == "/powercrud/tasks/7/progress/"
    assert reverse("powercrud:tasks-outcomes", kwargs={"pk": 7}) == "/powercrud/tasks/7/outcomes.csv"
    assert reverse("powercrud:tasks-cancel", kwargs={"pk": 7}) == "/powercrud/tasks/7/cancel/"


@pytest.mark.parametrize("name", ["list", "detail", "progress", "outcomes"])
def test_anonymous_users_go_to_login(alice, name):
    task = make_task(alice)
    response = Client().get(url(name, None if name == "list" else task))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_anonymous_cancel_goes_to_login_and_changes_nothing(alice):
    task = make_task(alice)
    response = Client().post(url("cancel", task))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    task.refresh_from_db()
    assert task.status == Status.QUEUED


def test_list_shows_only_own_tasks(alice, bob):
    mine = make_task(alice)
    theirs = make_task(bob, model_label="testapp.author")
    response = client_for(alice).get(url("list"))
    assert response.status_code == 200
    html = response.content.decode()
    assert url("detail", mine) in html
    assert url("detail", theirs) not in html
    assert "bob" not in html
    # The model filter offers only the models of the tasks the user sees.
    assert 'value="testapp.book"' in html
    assert 'value="testapp.author"' not in html


def test_staff_see_every_task(alice, bob, staff):
    tasks = [make_task(alice), make_task(bob), make_task(None)]
    html = client_for(staff).get(url("list")).content.decode()
    for task in tasks:
        assert url("detail", task) in html
    assert "for every user" in html


def test_list_is_newest_first_with_readable_columns(alice):
    old = finished(alice, total=1200, success_count=1150, failure_count=50, status=Status.FAILED)
    BulkTask.objects.filter(pk=old.pk).update(created_at=timezone.now() - datetime.timedelta(days=1))
    new = make_task(alice, model_label="testapp.author", kind=BulkTask.Kind.DELETE)
    html = client_for(alice).get(url("list")).content.decode()
    assert html.index(url("detail", new)) < html.index(url("detail", old))
    assert "Authors" in html and "Books" in html  # verbose names, not labels
    assert "Bulk delete" in html and "Bulk edit" in html
    assert "1,150" in html and "1,200" in html  # counts with thousand separators
    assert "1 min 15 s" in html  # duration


def test_list_filters_by_status_model_and_kind(alice):
    failed = finished(alice, status=Status.FAILED)
    done = finished(alice)
    author = make_task(alice, model_label="testapp.author", kind=BulkTask.Kind.DELETE)
    client = client_for(alice)

    html = client.get(url("list"), {"status": "failed"}).content.decode()
    assert url("detail", failed) in html
    assert url("detail", done) not in html and url("detail", author) not in html

    html = client.get(url("list"), {"model_label": "testapp.author"}).content.decode()
    assert url("detail", author) in html
    assert url("detail", failed) not in html and url("detail", done) not in html

    html = client.get(url("list"), {"kind": "delete", "status": "queued"}).content.decode()
    assert url("detail", author) in html and url("detail", done) not in html

    html = client.get(url("list"), {"status": "running"}).content.decode()
    assert "No bulk runs match these filters." in html


def test_list_sorts_by_a_column(alice):
    small = finished(alice, total=5)
    big = finished(alice, total=500)
    html = client_for(alice).get(url("list"), {"sort": "total"}).content.decode()
    assert html.index(url("detail", small)) < html.index(url("detail", big))
    html = client_for(alice).get(url("list"), {"sort": "-total"}).content.decode()
    assert html.index(url("detail", big)) < html.index(url("detail", small))


def test_list_polls_only_while_a_shown_task_is_active(alice):
    task = make_task(alice, status=Status.RUNNING, done=3)
    client = client_for(alice, HtmxClient)
    html = client.get(url("list")).content.decode()
    assert "data-pc-poll" in html and 'hx-trigger="every 2s"' in html
    assert "<html" not in html  # an HTMX request gets the content partial only
    BulkTask.objects.filter(pk=task.pk).update(status=Status.SUCCEEDED, done=10)
    html = client.get(url("list")).content.decode()
    assert "data-pc-poll" not in html and "every" not in html


def test_empty_list(alice):
    html = client_for(alice).get(url("list")).content.decode()
    assert "No bulk runs yet." in html


def test_detail_of_another_users_task_is_404(alice, bob):
    theirs = make_task(bob)
    client = client_for(alice)
    for name in ("detail", "progress", "outcomes"):
        assert client.get(url(name, theirs)).status_code == 404
    assert client.get("/powercrud/tasks/999999/").status_code == 404


def test_task_with_no_owner_is_staff_only(alice, staff):
    orphan = finished(None)
    assert client_for(alice).get(url("detail", orphan)).status_code == 404
    assert client_for(staff).get(url("detail", orphan)).status_code == 200


def test_host_can_require_a_permission_through_role_permissions(alice, monkeypatch):
    from powercrud.dashboard import BulkTaskView

    monkeypatch.setattr(BulkTaskView, "role_permissions", {"list": ["powercrud.view_bulktask"]})
    client = client_for(alice)
    assert client.get(url("list")).status_code == 403
    alice.user_permissions.add(Permission.objects.get(codename="view_bulktask"))
    assert client_for(User.objects.get(pk=alice.pk)).get(url("list")).status_code == 200


# ----- detail ------------------------------------------------------------------------------------


def test_detail_shows_errors_message_timings_and_changes(alice, catalogue):
    author = catalogue["authors"][1]
    tags = catalogue["tags"]
    task = finished(
        alice,
        status=Status.FAILED,
        total=30,
        success_count=28,
        failure_count=2,
        attempts=1,
        message="28 rows saved, 2 failed.",
        errors=[
            {"pk": 4, "field": "price", "messages": ["Ensure this value is greater than or equal to 0."]},
            {"pk": 9, "field": None, "messages": ["First problem.", "Second problem."]},
        ],
        payload={
            "fields_to_update": [
                "status",
                "author",
                "price",
                "is_available",
                "published_date",
                "tags",
                "genre",
            ],
            "field_data": {
                "status": "published",
                "author": author.pk,
                "price": "12.50",
                "is_available": False,
                "published_date": "2024-01-31",
                "tags": {"op": "add", "ids": [tags[0].pk, tags[1].pk]},
                "genre": None,
            },
            "bulk_fields": ["status", "author", "price", "is_available", "published_date", "tags", "genre"],
            "atomic": False,
        },
    )
    response = client_for(alice).get(url("detail", task))
    assert response.status_code == 200
    html = response.content.decode()
    assert f"Task #{task.pk}" in html
    assert "28 rows saved, 2 failed." in html
    assert "#4" in html and "Price" in html and "Ensure this value is greater than or equal to 0." in html
    assert "First problem.<br>Second problem." in html and "whole row" in html
    # The payload in words: the choice label, the author's name, the tag names, the date.
    assert "Published" in html
    assert author.name in html
    assert "Add: award-winner, signed" in html
    assert "Jan. 31, 2024" in html
    assert "(empty)" in html  # genre cleared
    assert "Per row" in html
    assert "1 min 15 s" in html
    assert "Download outcomes (CSV)" in html and url("outcomes", task) in html
    assert "Cancel task" not in html
    assert 'hx-trigger="every' not in html  # finished: no polling


def test_detail_of_a_running_task_polls_and_offers_cancel(alice):
    task = make_task(alice, status=Status.RUNNING, started_at=timezone.now(), done=4)
    html = client_for(alice).get(url("detail", task)).content.decode()
    assert 'hx-trigger="every 1s"' in html
    assert html.count("every 1s") == 1  # the page polls; its progress fragment does not
    assert html.count('class="pc-badge pc-badge-running"') == 1  # in the heading only
    assert "Cancel task" in html and url("cancel", task) in html
    assert "csrfmiddlewaretoken" in html
    assert "Download outcomes" not in html


def test_detail_of_a_delete_task_and_a_gone_related_row(alice):
    delete = finished(alice, kind=BulkTask.Kind.DELETE, payload={})
    html = client_for(alice).get(url("detail", delete)).content.decode()
    assert "Deletes the 10 selected books." in html
    edit = finished(
        alice,
        payload={"fields_to_update": ["author"], "bulk_fields": ["author"], "field_data": {"author": 987654}},
    )
    html = client_for(alice).get(url("detail", edit)).content.decode()
    assert "#987654 (no longer exists)" in html


def test_detail_of_a_task_whose_model_is_gone(alice):
    task = finished(
        alice,
        model_label="gone.widget",
        payload={"fields_to_update": ["x"], "bulk_fields": ["x"], "field_data": {"x": 1}},
    )
    html = client_for(alice).get(url("detail", task)).content.decode()
    assert "gone.widget" in html


def test_staff_see_another_users_task_but_cannot_cancel_it(alice, staff):
    task = make_task(alice)
    client = client_for(staff)
    html = client.get(url("detail", task)).content.decode()
    assert "Cancel task" not in html
    response = client.post(url("cancel", task))
    assert response.status_code == 403
    task.refresh_from_db()
    assert task.status == Status.QUEUED


# ----- escaping ----------------------------------------------------------------------------------


def test_task_text_is_escaped_everywhere(alice):
    task = finished(
        alice,
        status=Status.FAILED,
        failure_count=1,
        message=f"Failed: {SCRIPT}",
        errors=[{"pk": SCRIPT, "field": SCRIPT, "messages": [SCRIPT]}],
        payload={"fields_to_update": ["title"], "bulk_fields": ["title"], "field_data": {"title": SCRIPT}},
        model_label=SCRIPT,
    )
    client = client_for(alice)
    for name in ("detail", "progress"):
        html = client.get(url(name, task)).content.decode()
        assert SCRIPT not in html, name
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, name
    html = client.get(url("list")).content.decode()
    assert SCRIPT not in html


# ----- progress fragment -------------------------------------------------------------------------


def test_progress_fragment_of_a_running_task_polls(alice):
    task = make_task(alice, status=Status.RUNNING, total=1000, done=450, started_at=timezone.now())
    response = client_for(alice, HtmxClient).get(url("progress", task))
    assert response.status_code == 200
    html = response.content.decode()
    assert "45%" in html and 'value="45"' in html
    assert "<strong>450</strong> of 1,000 rows processed" in html
    assert 'hx-trigger="every 1s"' in html
    assert f'hx-get="{url("progress", task)}"' in html
    assert html.count('class="pc-badge pc-badge-running"') == 1
    assert "<html" not in html


def test_progress_fragment_of_a_queued_task(alice):
    html = client_for(alice).get(url("progress", make_task(alice))).content.decode()
    assert "Waiting for a worker" in html and "0%" in html and 'hx-trigger="every 1s"' in html


def test_progress_fragment_stops_polling_when_the_task_has_ended(alice):
    task = finished(alice, total=200, success_count=200, message="Updated 200 books.")
    response = client_for(alice, HtmxClient).get(url("progress", task))
    assert response.status_code == 286  # htmx stops polling
    assert response.headers["HX-Trigger"] == '{"pcRefresh": {}}'  # the list behind refreshes
    html = response.content.decode()
    assert "every" not in html and "hx-get" not in html
    assert "100%" in html and "200 updated" in html and "Updated 200 books." in html
    # A plain (non-HTMX) request gets a plain 200.
    assert client_for(alice).get(url("progress", task)).status_code == 200


def test_progress_fragment_of_a_failed_task_previews_its_errors(alice):
    errors = [{"pk": n, "field": "price", "messages": [f"Bad price {n}."]} for n in range(8)]
    task = finished(alice, status=Status.FAILED, failure_count=8, errors=errors, message="Nothing was saved.")
    html = client_for(alice, HtmxClient).get(url("progress", task)).content.decode()
    assert "Bad price 4." in html and "Bad price 5." not in html  # the first five
    assert "See all 8 row errors" in html and url("detail", task) in html


@pytest.mark.django_db(transaction=True)
def test_list_and_progress_show_live_progress_of_a_running_task():
    """Progress a worker writes to the live store shows before the task's transaction commits."""
    alice = User.objects.create_user("alice", password="pw")
    task = make_task(alice, status=Status.RUNNING, total=1000, started_at=timezone.now())
    store = progress.live_store()
    try:
        store.write(task, 620, 1000)
    finally:
        store.close()
    try:
        client = client_for(alice)
        assert "62%" in client.get(url("progress", task)).content.decode()
        assert "620 / 1,000" in client.get(url("list")).content.decode()
    finally:
        progress.forget(task)


# ----- outcomes CSV ------------------------------------------------------------------------------


def read_csv(response: Any) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def test_outcomes_csv_of_a_per_row_task(alice):
    task = finished(
        alice,
        status=Status.FAILED,
        total=10,
        success_count=7,
        failure_count=2,
        errors=[
            {"pk": 3, "field": "price", "messages": ["Too low.", "Really."]},
            {"pk": 8, "field": None, "messages": ['=HYPERLINK("http://x")']},
        ],
        errors_omitted=0,
        message="7 saved, 3 failed.",
        payload={
            "fields_to_update": ["price"],
            "bulk_fields": ["price"],
            "field_data": {"price": "1"},
            "atomic": False,
        },
    )
    response = client_for(alice).get(url("outcomes", task))
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="task-{task.pk}-outcomes.csv"'
    rows = read_csv(response)
    assert rows[0] == ["pk", "outcome", "field", "message"]
    assert rows[1] == ["3", "failed", "price", "Too low. Really."]
    assert rows[2] == ["8", "failed", "", '\'=HYPERLINK("http://x")']  # never a spreadsheet formula
    assert rows[3] == [
        "",
        "updated",
        "",
        "7 rows updated; a task does not store the ids of rows that succeeded.",
    ]
    assert rows[4] == ["", "not changed", "", "1 row not updated. 7 saved, 3 failed."]
    assert len(rows) == 5


def test_outcomes_csv_of_a_succeeded_and_of_an_all_or_nothing_task(alice):
    ok = finished(alice, total=5, success_count=5, kind=BulkTask.Kind.DELETE, message="Deleted 5 books.")
    assert list(outcome_rows(ok)) == [
        (None, "deleted", "", "5 rows deleted; a task does not store the ids of rows that succeeded.")
    ]
    failed = finished(
        alice,
        status=Status.FAILED,
        total=4,
        failure_count=1,
        success_count=0,
        errors=[{"pk": 2, "field": "price", "messages": ["Too low."]}],
        errors_omitted=1200,
        message="Nothing was saved.",
    )
    assert list(outcome_rows(failed)) == [
        (2, "failed", "price", "Too low."),
        (None, "failed", "", "1200 rows more failed; only the first 1000 row errors are stored with a task."),
        (None, "not changed", "", "3 rows not updated. Nothing was saved."),
    ]


def test_outcomes_of_cancelled_crashed_and_running_tasks(alice):
    cancelled = finished(
        alice, status=Status.CANCELLED, message="Cancelled after 3 of 10 rows; nothing was saved."
    )
    assert list(outcome_rows(cancelled)) == [
        (None, "cancelled", "", "10 rows not updated. Cancelled after 3 of 10 rows; nothing was saved.")
    ]
    crashed = finished(alice, status=Status.FAILED, total=1, message="The task stopped because of an error.")
    assert list(outcome_rows(crashed)) == [
        (None, "not changed", "", "1 row not updated. The task stopped because of an error.")
    ]
    running = make_task(alice, status=Status.RUNNING, done=4)
    assert list(outcome_rows(running)) == [
        (None, "pending", "", "The task is running: 4 of 10 rows processed.")
    ]


# ----- cancel ------------------------------------------------------------------------------------


def test_cancel_a_queued_task_ends_it_and_releases_its_locks(alice):
    task = make_task(alice)
    RowLock.objects.create(task=task, model_label="testapp.book", object_pk="1")
    client = client_for(alice)
    response = client.post(url("cancel", task))
    assert response.status_code == 302
    assert response["Location"] == url("detail", task)
    task.refresh_from_db()
    assert task.status == Status.CANCELLED and task.cancel_requested and task.finished_at is not None
    assert not RowLock.objects.filter(task=task).exists()
    page = client.get(response["Location"]).content.decode()
    assert "was cancelled before it started" in page


def test_cancel_a_running_task_requests_a_stop(alice):
    task = make_task(alice, status=Status.RUNNING, started_at=timezone.now())
    try:
        response = client_for(alice, HtmxClient).post(url("cancel", task))
        assert response.status_code == 200
        assert "pcSaved" in response["HX-Trigger"] and "will stop at its next batch" in response["HX-Trigger"]
        html = response.content.decode()
        assert "Cancelling…" in html and "Cancel task" not in html
        task.refresh_from_db()
        assert task.status == Status.RUNNING  # the worker ends it
        assert progress.live_progress([task])[0].cancel_requested
    finally:
        progress.forget(task)


@pytest.mark.parametrize("status", [Status.SUCCEEDED, Status.FAILED, Status.CANCELLED])
def test_cancel_a_finished_task_is_refused(alice, status):
    task = finished(alice, status=status)
    response = client_for(alice).post(url("cancel", task))
    assert response.status_code == 409
    assert "has already ended" in response.content.decode()
    task.refresh_from_db()
    assert task.status == status


def test_cancel_another_users_task_is_404(alice, bob):
    task = make_task(bob)
    assert client_for(alice).post(url("cancel", task)).status_code == 404
    task.refresh_from_db()
    assert task.status == Status.QUEUED


def test_a_user_with_change_permission_may_cancel_any_visible_task(alice, admin_user):
    task = make_task(alice)
    assert client_for(admin_user).post(url("cancel", task)).status_code == 302
    task.refresh_from_db()
    assert task.status == Status.CANCELLED


def test_cancel_needs_post_and_csrf(alice):
    task = make_task(alice)
    assert client_for(alice).get(url("cancel", task)).status_code == 405
    response = client_for(alice, enforce_csrf_checks=True).post(url("cancel", task))
    assert response.status_code == 403
    task.refresh_from_db()
    assert task.status == Status.QUEUED


def test_other_actions_refuse_post(alice):
    task = make_task(alice)
    client = client_for(alice)
    for name in ("detail", "progress", "outcomes"):
        assert client.post(url(name, task)).status_code == 405


# ----- admin ---------------------------------------------------------------------------------------


def test_admin_changelists_and_change_page_load(admin_client, alice):
    task = finished(alice, status=Status.FAILED, errors=[{"pk": 1, "field": "price", "messages": [SCRIPT]}])
    RowLock.objects.create(task=make_task(alice), model_label="testapp.book", object_pk="5")
    for name in ("powercrud_bulktask_changelist", "powercrud_rowlock_changelist"):
        response = admin_client.get(reverse(f"admin:{name}"))
        assert response.status_code == 200, name
    response = admin_client.get(reverse("admin:powercrud_bulktask_change", args=[task.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert SCRIPT not in html
    assert url("detail", task) in html  # the link to the dashboard
    assert admin_client.get(reverse("admin:powercrud_bulktask_add")).status_code == 403


def test_admin_never_shows_a_queued_runs_stored_selection(admin_client, alice):
    """The stored selection is a pickled query, which holds any object the view filtered by
    (a user, with their password hash); the admin shows that one is stored, not its bytes."""
    from powercrud.jobs.freeze import store_selection

    scoped = User.objects.filter(pk=alice.pk).filter(username=alice)  # an object inside the query
    entry = store_selection(scoped)
    task = make_task(alice)
    BulkTask.objects.filter(pk=task.pk).update(payload={**task.payload, "selection": entry})
    response = admin_client.get(reverse("admin:powercrud_bulktask_change", args=[task.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert entry["query"] not in html and entry["query"][:40] not in html
    assert "stored selection" in html
    assert "fields_to_update" in html  # the request itself is still shown


def test_admin_cancel_action(admin_client, alice):
    queued = make_task(alice)
    done = finished(alice)
    response = admin_client.post(
        reverse("admin:powercrud_bulktask_changelist"),
        {"action": "cancel_tasks", "_selected_action": [queued.pk, done.pk]},
        follow=True,
    )
    assert response.status_code == 200
    queued.refresh_from_db()
    done.refresh_from_db()
    assert queued.status == Status.CANCELLED
    assert done.status == Status.SUCCEEDED


def test_admin_deletes_only_finished_tasks(admin_client, alice):
    queued = make_task(alice)
    done = finished(alice)
    changelist = reverse("admin:powercrud_bulktask_changelist")
    assert admin_client.get(reverse("admin:powercrud_bulktask_delete", args=[queued.pk])).status_code == 403
    both = {"action": "delete_selected", "_selected_action": [queued.pk, done.pk], "post": "yes"}
    assert admin_client.post(changelist, both).status_code == 403  # a live task blocks the batch
    assert BulkTask.objects.filter(pk__in=[queued.pk, done.pk]).count() == 2
    admin_client.post(changelist, {**both, "_selected_action": [done.pk]})
    assert BulkTask.objects.filter(pk=queued.pk).exists()
    assert not BulkTask.objects.filter(pk=done.pk).exists()


def test_format_duration():
    assert format_duration(None) == ""
    assert format_duration(0.42) == "0.4 s"
    assert format_duration(12.9) == "12 s"
    assert format_duration(185) == "3 min 05 s"
    assert format_duration(7380) == "2 h 03 min"


def test_filtering_over_htmx_updates_the_clear_link_out_of_band(alice):
    client = client_for(alice, HtmxClient)
    filtered = client.get("/powercrud/tasks/", {"status": "failed"}).content.decode()
    assert '<span id="pc-clear-filters" hx-swap-oob="true"><a class="pc-btn pc-btn-ghost"' in filtered
    unfiltered = client.get("/powercrud/tasks/").content.decode()
    assert '<span id="pc-clear-filters" hx-swap-oob="true"></span>' in unfiltered
