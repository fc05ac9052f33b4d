"""A form save of a row a task holds is refused at once, even while SQLite's writer is busy.

On SQLite (``transaction_mode=IMMEDIATE``) the save's transaction starts by taking the
database's write lock; while a worker's transaction holds it, that wait lasted up to the
connection ``timeout`` before the row locks were even looked at. The row locks are now
checked before the transaction (and again inside it), so the user gets the 409 naming the
task at once. The Save button is disabled while its request is in flight.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUSY_TIMEOUT = 4  # seconds SQLite waits for another writer in the child process


def child(out: str) -> None:
    """Run in a fresh process on a file SQLite database (tests.settings_worker): a queued task
    holds a book, another connection holds the write lock, and the book's form is saved."""
    import sqlite3
    import time

    import tests.settings_worker as config

    config.DATABASES["default"]["OPTIONS"]["timeout"] = BUSY_TIMEOUT  # type: ignore[index]
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test import Client
    from django.test.utils import setup_test_environment

    from powercrud.jobs.locks import acquire_locks
    from powercrud.models import BulkTask
    from tests.conftest import make_user
    from tests.testapp.models import Author, Book

    setup_test_environment()
    call_command("migrate", verbosity=0)
    author = Author.objects.create(name="Locked Author")
    book = Book.objects.create(title="Held", author=author, status="draft", price="1.00")
    with transaction.atomic():  # what a launch does: the task and its row locks, committed
        task = BulkTask.objects.create(kind=BulkTask.Kind.UPDATE, model_label="testapp.book")
        acquire_locks(task, Book.objects.filter(pk=book.pk))
    client = Client(HTTP_HX_REQUEST="true")
    client.force_login(make_user("editor", superuser=True))
    connection.close()

    holder = sqlite3.connect(config.DATABASES["default"]["NAME"], isolation_level=None)  # type: ignore[index]
    holder.execute("BEGIN IMMEDIATE")  # a worker's transaction holding SQLite's write lock
    try:
        data = {"title": "Renamed", "author": author.pk, "status": "draft", "price": "2.00"}
        start = time.monotonic()
        response = client.post(f"/book/{book.pk}/edit/", data)
        elapsed = time.monotonic() - start
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    Path(out).write_text(
        json.dumps(
            {
                "status": response.status_code,
                "elapsed": elapsed,
                "body": response.content.decode(),
                "task": task.pk,
                "title": Book.objects.get(pk=book.pk).title,
            }
        )
    )


def test_on_sqlite_a_form_save_of_a_row_a_task_holds_is_refused_at_once_while_the_writer_is_busy(
    tmp_path: Path,
) -> None:
    out = tmp_path / "outcome.json"
    env = {key: value for key, value in os.environ.items() if key != "POWERCRUD_TEST_DB"}
    env.update(DJANGO_SETTINGS_MODULE="tests.settings_worker", POWERCRUD_WORKER_DIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-c", f"from tests.test_form_save_locked import child; child({str(out)!r})"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(out.read_text())
    assert outcome["status"] == 409, outcome["body"][:500]
    assert f"This book is being changed by bulk task #{outcome['task']} (queued)." in outcome["body"]
    assert outcome["elapsed"] < BUSY_TIMEOUT / 4, outcome["elapsed"]  # no wait for the writer
    assert outcome["title"] == "Held"


@pytest.mark.django_db
def test_a_task_that_takes_the_row_between_the_first_check_and_the_transaction_is_still_refused(
    catalogue: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check before the transaction is for speed; the one inside it is the guarantee."""
    from powercrud.jobs import locks
    from powercrud.models import BulkTask
    from tests.testapp.models import Book

    book = catalogue["books"][0]
    real = locks.assert_unlocked
    calls: list[str] = []

    def launch_right_after_the_first_check(model: Any, pks: Any) -> None:
        calls.append("check")
        real(model, pks)
        if len(calls) == 1:
            task = BulkTask.objects.create(kind=BulkTask.Kind.UPDATE, model_label="testapp.book")
            locks.acquire_locks(task, Book.objects.filter(pk=book.pk))

    monkeypatch.setattr(locks, "assert_unlocked", launch_right_after_the_first_check)
    with pytest.raises(locks.LockConflict, match="bulk task"), locks.guard_rows(Book, [book.pk]):
        Book.objects.filter(pk=book.pk).update(title="Renamed")
    assert len(calls) == 2
    assert Book.objects.get(pk=book.pk).title == "Book 00"


# ----- the Save button while the request is in flight ------------------------------------------
FORM_BUSY = 'hx-disabled-elt="find button[type=submit]"'


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/book/new/", "/book/{pk}/edit/"])
@pytest.mark.parametrize("client_name", ["admin_client", "htmx_client"])
def test_the_forms_save_button_is_disabled_while_its_request_is_in_flight(
    request: pytest.FixtureRequest, catalogue: dict[str, Any], path: str, client_name: str
) -> None:
    client = request.getfixturevalue(client_name)
    response = client.get(path.format(pk=catalogue["books"][0].pk))
    assert response.status_code == 200
    html = response.content.decode()
    form = html[html.index('<form class="pc-form"') :]
    form = form[: form.index("</form>")]
    assert FORM_BUSY in form[: form.index(">")]
    assert form.count('type="submit"') == 1  # the Save button, and only it, is disabled


def test_a_busy_form_shows_it() -> None:
    css = (ROOT / "powercrud/static/powercrud/powercrud.css").read_text()
    assert ".pc-form.htmx-request [type=submit]" in css
