"""The task page and the outcomes download read the run ledger (``RunRow``): counts by
outcome, a paged and filtered table of the run's rows, and every row in the CSV and JSON Lines
downloads, streamed."""

from __future__ import annotations

import csv
import datetime
import io
import json
import re
import time
import tracemalloc
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.http import StreamingHttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from powercrud.bulk.request import BulkRequest
from powercrud.jobs.ledger import pk_text, run_recorded, selection_keys, stored_value
from powercrud.jobs.monitor import close_request_run, open_request_run
from powercrud.models import BulkTask, RunRow
from tests.async_helpers import make_books
from tests.testapp.models import Author, Book, Tag

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.security.urls")]

Status = BulkTask.Status
VIEW = "tests.bulk_urls.PlainBookView"
REFUSE = "tests.async_helpers.RefuseTitlesBackend"


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice", password="pw")


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def text(html: str) -> str:
    """The words of ``html`` as a screen reader has them: tags and hidden marks dropped."""
    html = re.sub(r'<span aria-hidden="true">[^<]*</span>', "", html)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split()).replace(" :", ":")


def page(user: User, task: BulkTask, query: str = "") -> str:
    response = client_for(user).get(f"/powercrud/tasks/{task.pk}/{query}")
    assert response.status_code == 200, response.content
    return response.content.decode()


def run_sync(queryset: Any, data: dict[str, Any], owner: User | None = None, **fields: Any) -> BulkTask:
    """A bulk edit of ``data`` (or a delete, ``operation="delete"``) over ``queryset``, run and
    recorded the way a view runs it in the request."""
    operation = fields.pop("operation", "update")
    names = tuple(data)
    request = BulkRequest(
        operation=operation,
        model_label="testapp.book",
        fields_to_update=names,
        field_data=data,
        bulk_fields=names,
        view_name=VIEW,
        **fields,
    )
    with transaction.atomic():
        run = open_request_run(request, user=owner, total=queryset.count())
        context = request.context(mode="sync", user_id=None, selection_size=run.total)
        result, _ = run_recorded(
            run, request, queryset=queryset, keys=selection_keys(queryset), context=context
        )
        close_request_run(run, result)
    run.refresh_from_db()
    return run


def record(owner: User | None, *, kind: str = "update", dry_run: bool = False, **values: Any) -> BulkTask:
    """A finished run record with the given ``row_counts`` and no ledger rows of its own."""
    request = BulkRequest(
        operation=kind,  # type: ignore[arg-type]
        model_label="testapp.book",
        fields_to_update=("price",) if kind == "update" else (),
        field_data={"price": "12.50"} if kind == "update" else {},
        bulk_fields=("price",) if kind == "update" else (),
        dry_run=dry_run,
        view_name=VIEW,
    )
    now = timezone.now()
    values.setdefault("status", Status.SUCCEEDED)
    values.setdefault("total", sum((values.get("row_counts") or {}).values()) or 10)
    values.setdefault("done", values["total"])
    values.setdefault("started_at", now - datetime.timedelta(seconds=3))
    values.setdefault("finished_at", now)
    return BulkTask.objects.create(
        owner=owner,
        kind=kind,
        model_label="testapp.book",
        dry_run=dry_run,
        payload=request.to_dict(),
        **values,
    )


# ----- counts by outcome --------------------------------------------------------------------------


def test_an_applied_run_counts_its_rows_by_outcome_from_the_ledger(alice: User) -> None:
    task = record(
        alice,
        status=Status.FAILED,
        row_counts={"changed": 12_345, "unchanged": 2, "failed": 1, "not_reached": 1_200},
        success_count=12_345,
        failure_count=1,
    )
    words = text(page(alice, task))
    assert "Changed 12,345 Unchanged 2 Failed 1 Not reached (rolled back) 1,200" in words
    assert "Skipped" not in words and "Conflict" not in words  # no row had them
    assert "12,345 updated" not in words  # the record's counts give way to the ledger's


def test_a_cancelled_run_says_its_rows_were_not_reached_because_it_was_cancelled(alice: User) -> None:
    task = record(alice, status=Status.CANCELLED, row_counts={"not_reached": 6, "skipped": 1, "conflict": 2})
    words = text(page(alice, task))
    assert "Changed 0 Unchanged 0 Failed 0 Skipped 1 Not reached (cancelled) 6 Conflict 2" in words


def test_rows_a_delete_removed_by_cascade_are_counted_apart(alice: User) -> None:
    task = record(alice, kind="delete", row_counts={"changed": 4, "cascaded": 9})
    RunRow.objects.bulk_create(RunRow(run=task, object_pk=str(i), outcome="changed") for i in range(4))
    html = page(alice, task)
    assert "Changed 4 Unchanged 0 Failed 0 Also removed by cascade 9" in text(html)
    assert '<span class="pc-page pc-page-current" aria-current="true">All 4</span>' in html


def test_a_check_reads_neutral_would_change_stay_and_fail(alice: User) -> None:
    task = record(alice, dry_run=True, row_counts={"changed": 98_599, "unchanged": 3, "failed": 7})
    html = page(alice, task)
    assert "would change 98,599 would stay the same 3 would fail 7" in text(html)
    assert "pc-count-ok" not in html and "Changed" not in text(html)
    progress = client_for(alice).get(f"/powercrud/tasks/{task.pk}/progress/").content.decode()
    assert "would change 98,599" in text(progress)


def test_a_run_recorded_without_the_ledger_keeps_its_record_counts(alice: User) -> None:
    task = record(alice, row_counts={}, total=5, success_count=5)
    words = text(page(alice, task))
    assert "5 updated" in words and "Changed" not in words
    assert "Rows All" not in words


# ----- the rows of a run ----------------------------------------------------------------------------


def test_the_rows_of_a_real_edit_say_before_and_after_in_words(alice: User) -> None:
    books = make_books(4)
    Book.objects.filter(pk=books[0].pk).update(price=Decimal("12.50"))
    run = run_sync(Book.objects.order_by("pk"), {"price": "12.50"}, owner=alice)
    assert run.row_counts == {"changed": 3, "unchanged": 1}
    html = page(alice, run)
    words = text(html)
    assert "Changed 3 Unchanged 1 Failed 0" in words
    # No failure: every row is shown, in ledger order, each linked to its page in a new tab.
    assert '<span class="pc-page pc-page-current" aria-current="true">All 4</span>' in html
    assert re.search(rf"#{books[1].pk} \(opens in a new tab\) Changed Price: 1[0-9](\.00)? to 12\.50", words)
    link = (
        f'<a class="pc-link" href="/plain-books/{books[1].pk}/" target="_blank" rel="noopener">#{books[1].pk}'
        '<span class="pc-visually-hidden"> (opens in a new tab)</span></a>'
    )
    assert link in html
    assert f"#{books[0].pk} (opens in a new tab) Unchanged Price: 12.50 (same)" in words


def test_related_and_many_to_many_values_are_named(alice: User) -> None:
    books = make_books(2)
    author = Author.objects.create(name="Octavia Butler")
    red, blue = Tag.objects.create(name="red"), Tag.objects.create(name="blue")
    books[0].tags.add(red)
    run = run_sync(
        Book.objects.order_by("pk"),
        {"author": author.pk, "tags": {"op": "add", "ids": [blue.pk]}},
        owner=alice,
    )
    words = text(page(alice, run))
    assert "Author: " in words and "to Octavia Butler" in words
    assert "Tags: red to blue, red" in words
    assert "Tags: (empty) to blue" in words


def test_failed_rows_are_shown_first_with_their_errors_uncapped(alice: User) -> None:
    books = make_books(12)
    refused = {books[3].title, books[10].title}
    run = run_sync(
        Book.objects.order_by("pk"),
        {"status": "archived"},
        owner=alice,
        backend_path=REFUSE,
        backend_config={"refuse": sorted(refused)},
        atomic=False,
    )
    assert run.row_counts == {"changed": 10, "failed": 2}
    html = page(alice, run)
    words = text(html)
    assert '<span class="pc-page pc-page-current" aria-current="true">Failed 2</span>' in html
    assert f"“{books[3].title}” may not change." in words
    shown = re.findall(r"#(\d+) \(opens in a new tab\)", words)
    assert sorted(shown) == sorted([str(books[3].pk), str(books[10].pk)])
    every = text(page(alice, run, "?outcome=all"))
    assert len(re.findall(r"\(opens in a new tab\)", every)) == 12 and "Status: Draft to Archived" in every
    changed = re.findall(r"#(\d+) \(opens in a new tab\)", text(page(alice, run, "?outcome=changed")))
    assert changed == [str(b.pk) for b in books if b.title not in refused]


def test_more_than_a_thousand_failed_rows_are_all_listed_page_by_page(alice: User) -> None:
    task = record(alice, status=Status.FAILED, row_counts={"failed": 1_030}, failure_count=1_030)
    RunRow.objects.bulk_create(
        RunRow(
            run=task,
            object_pk=str(i),
            outcome="failed",
            errors=[{"field": "price", "messages": [f"No {i}."]}],
        )
        for i in range(1, 1_031)
    )
    last = text(page(alice, task, "?page=21"))
    assert "Showing 1,001–1,030 of 1,030" in last
    assert "Price: No 1030." in last
    assert "Price: No 1000." not in last  # on page 20


def test_a_deleted_row_shows_its_values_and_no_link(alice: User) -> None:
    books = make_books(2)
    run = run_sync(Book.objects.order_by("pk"), {}, owner=alice, operation="delete")
    html = page(alice, run)
    words = text(html)
    assert f"Title: {books[0].title}" in words and "Status: Draft" in words
    assert f'href="/plain-books/{books[0].pk}/"' not in html


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?outcome=failed&outcome=changed", "The parameter “outcome” was sent 2 times"),
        ("?outcome=bogus", "“bogus” is not a row outcome. Use one of: all, changed, unchanged"),
        ("?page=1&page=2", "The parameter “page” was sent 2 times"),
        ("?outcome=%3Cscript%3E", "“&lt;script&gt;” is not a row outcome"),
    ],
)
def test_a_repeated_or_unknown_filter_is_a_400(alice: User, query: str, message: str) -> None:
    task = record(alice, row_counts={"changed": 2})
    response = client_for(alice).get(f"/powercrud/tasks/{task.pk}/{query}")
    assert response.status_code == 400
    assert message in response.content.decode()
    assert "<script>" not in response.content.decode()


def make_rows(task: BulkTask, count: int, authors: list[Author], tags: list[Tag]) -> None:
    RunRow.objects.bulk_create(
        RunRow(
            run=task,
            object_pk=str(i),
            outcome="changed",
            old={"price": "1.00", "author": authors[i % len(authors)].pk, "tags": [tags[i % 2].pk]},
            new={"price": "2.00", "author": authors[0].pk, "tags": [t.pk for t in tags]},
        )
        for i in range(1, count + 1)
    )


def test_a_page_of_rows_costs_the_same_queries_whatever_its_length(alice: User) -> None:
    authors = [Author.objects.create(name=f"Author {i}") for i in range(5)]
    tags = [Tag.objects.create(name="a"), Tag.objects.create(name="b")]
    counts = []
    for rows in (3, 50, 120):
        task = record(alice, row_counts={"changed": rows})
        task.payload = {**task.payload, "fields_to_update": ["price", "author", "tags"]}
        task.save(update_fields=["payload"])
        make_rows(task, rows, authors, tags)
        client = client_for(alice)
        with CaptureQueriesContext(connection) as queries:
            html = client.get(f"/powercrud/tasks/{task.pk}/?page=2").content.decode()
        assert "Author 4" in html or rows < 50
        counts.append(len(queries))
    print(f"\nqueries per page of rows: {counts}")
    assert counts[0] == counts[1] == counts[2], counts
    # session, user, task, the run's fields (this payload does not parse, so from its first row),
    # the count, the page, authors named, tags named
    assert counts[0] <= 10, counts


# ----- pruned rows -------------------------------------------------------------------------------


def test_a_run_whose_rows_were_pruned_says_so_and_keeps_its_counts(alice: User) -> None:
    task = record(
        alice,
        status=Status.FAILED,
        row_counts={"changed": 8, "failed": 2},
        failure_count=2,
        errors=[{"pk": 3, "field": "price", "messages": ["Too low."]}],
    )
    words = text(page(alice, task))
    assert "Row details were removed after 30 days" in words
    assert "Changed 8 Unchanged 0 Failed 2" in words
    assert "Too low." in words  # the record's own stored errors are still listed


# ----- the downloads ------------------------------------------------------------------------------


def read_csv(response: Any) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_csv_lists_every_row_with_before_after_and_errors(alice: User) -> None:
    books = make_books(5)
    run = run_sync(
        Book.objects.order_by("pk"),
        {"price": "3.50", "status": "archived"},
        owner=alice,
        backend_path=REFUSE,
        backend_config={"refuse": [books[2].title]},
        atomic=False,
    )
    response = client_for(alice).get(f"/powercrud/tasks/{run.pk}/outcomes.csv")
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = read_csv(response)
    assert rows[0] == [
        "pk",
        "outcome",
        "price before",
        "price after",
        "status before",
        "status after",
        "error field",
        "error messages",
    ]
    by_pk = {row[0]: row for row in rows[1:]}
    assert len(by_pk) == 5
    first = by_pk[pk_text(Book, books[0].pk)]
    assert first == [str(books[0].pk), "changed", str(books[0].price), "3.50", "draft", "archived", "", ""]
    refused = by_pk[pk_text(Book, books[2].pk)]
    assert refused[1] == "failed" and refused[-2:] == ["status", f"“{books[2].title}” may not change."]


def test_the_csv_is_formula_safe(alice: User) -> None:
    task = record(alice, row_counts={"failed": 2, "changed": 1})
    task.payload = {**task.payload, "fields_to_update": ["title"]}
    task.save(update_fields=["payload"])
    RunRow.objects.bulk_create(
        [
            RunRow(
                run=task, object_pk="=1+1", outcome="changed", old={"title": "+SUM(A1)"}, new={"title": "@x"}
            ),
            RunRow(
                run=task,
                object_pk="2",
                outcome="failed",
                errors=[{"field": "=cmd", "messages": ['=HYPERLINK("http://x")', "-2+3"]}],
            ),
            RunRow(run=task, object_pk="3", outcome="failed", old={"title": "-5.00"}, new={"title": "\tTab"}),
        ]
    )
    rows = read_csv(client_for(alice).get(f"/powercrud/tasks/{task.pk}/outcomes.csv"))
    cells = [cell for row in rows[1:] for cell in row]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "@", "\t", "\r")]
    assert rows[1] == ["'=1+1", "changed", "'+SUM(A1)", "'@x", "", ""]
    assert rows[2] == ["2", "failed", "", "", "'=cmd", '\'=HYPERLINK("http://x") -2+3']
    assert rows[3][2:4] == ["-5.00", "'\tTab"]  # a plain negative number is no formula


def test_the_json_lines_download_has_the_same_rows(alice: User) -> None:
    books = make_books(3)
    run = run_sync(Book.objects.order_by("pk"), {"price": "7.00"}, owner=alice)
    response = client_for(alice).get(f"/powercrud/tasks/{run.pk}/outcomes.jsonl")
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "application/jsonl; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="task-{run.pk}-outcomes.jsonl"'
    lines = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert [line["pk"] for line in lines] == [pk_text(Book, b.pk) for b in books]
    first = RunRow.objects.get(run=run, object_pk=pk_text(Book, books[0].pk))
    assert stored_value(Book, "price", first.old["price"]) == books[0].price
    assert lines[0] == {
        "pk": pk_text(Book, books[0].pk),
        "outcome": "changed",
        "before": {"price": first.old["price"]},
        "after": {"price": "7.00"},
        "errors": [],
    }


def test_a_run_without_ledger_rows_keeps_the_summary_download(alice: User) -> None:
    task = record(alice, row_counts={}, total=5, success_count=5)
    rows = read_csv(client_for(alice).get(f"/powercrud/tasks/{task.pk}/outcomes.csv"))
    assert rows == [
        ["pk", "outcome", "field", "message"],
        ["", "updated", "", "5 rows updated; a task does not store the ids of rows that succeeded."],
    ]
    body = b"".join(client_for(alice).get(f"/powercrud/tasks/{task.pk}/outcomes.jsonl").streaming_content)
    assert [json.loads(line)["outcome"] for line in body.decode().splitlines()] == ["updated"]


def test_another_users_download_is_a_404(alice: User) -> None:
    task = record(alice, row_counts={"changed": 1})
    bob = User.objects.create_user("bob", password="pw")
    for name in ("outcomes.csv", "outcomes.jsonl"):
        assert client_for(bob).get(f"/powercrud/tasks/{task.pk}/{name}").status_code == 404


def test_a_run_of_100000_rows_downloads_every_row(alice: User) -> None:
    total = 100_000
    task = record(alice, row_counts={"changed": total - 10, "failed": 10})
    task.payload = {**task.payload, "fields_to_update": ["price", "status"]}
    task.save(update_fields=["payload"])
    RunRow.objects.bulk_create(
        (
            RunRow(
                run=task,
                object_pk=str(i),
                outcome="failed" if i % 10_000 == 0 else "changed",
                old={"price": f"{i}.00", "status": "draft"},
                new={"price": "1.00", "status": "archived"},
                errors=[{"field": "price", "messages": ["No."]}] if i % 10_000 == 0 else None,
            )
            for i in range(1, total + 1)
        ),
        batch_size=5000,
    )
    client = client_for(alice)
    tracemalloc.start()
    started = time.perf_counter()
    response = client.get(f"/powercrud/tasks/{task.pk}/outcomes.csv")
    assert isinstance(response, StreamingHttpResponse)
    seen: set[str] = set()
    failed = 0
    header = None
    for row in csv.reader(io.StringIO(b"".join(response.streaming_content).decode())):
        if header is None:
            header = row
            continue
        seen.add(row[0])
        failed += row[1] == "failed"
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"\n100k CSV: {elapsed:.2f} s, peak traced memory {peak / 1e6:.1f} MB (body included)")
    assert header is not None and header[:4] == ["pk", "outcome", "price before", "price after"]
    assert seen == {str(i) for i in range(1, total + 1)}
    assert failed == 10
    response = client.get(f"/powercrud/tasks/{task.pk}/outcomes.jsonl")
    assert isinstance(response, StreamingHttpResponse)
    count = sum(chunk.count(b"\n") for chunk in response.streaming_content)
    assert count == total
