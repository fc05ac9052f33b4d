"""The import screens: upload, match columns, check, apply, the run's page; permissions (add,
and change for an upsert), scope, bad files and parameters (never a 500), the list's Import
link, the system checks E023-E026, and the demo's books exported and imported back."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings

from powercrud.checks import _check_import
from powercrud.models import BulkTask, RowLock
from tests.async_helpers import RecordingRunner
from tests.conftest import make_user
from tests.testapp.models import Edition
from tests.testapp.views import BookCRUDView, EditionCRUDView

pytestmark = pytest.mark.django_db

URL = "/edition/import/"
CSV = b"Code,Language,Title,Copies\nB1,en,New,5\nB2,fr,Deux,2\n"


@pytest.fixture(autouse=True)
def upload_dir(tmp_path: Path) -> Any:
    with override_settings(POWERCRUD_SETTINGS={"IMPORT_UPLOAD_DIR": str(tmp_path)}):
        yield tmp_path


def upload(client: Client, data: bytes = CSV, name: str = "editions.csv", **fields: Any) -> Any:
    return client.post(URL, {"step": "upload", "file": SimpleUploadedFile(name, data), **fields})


def token_of(response: Any) -> str:
    found = re.search(r'name="token" value="([^"]+)"', response.content.decode())
    assert found, response.content.decode()
    return found.group(1)


def mapped(token: str, step: str, **extra: Any) -> dict[str, Any]:
    return {
        "step": step,
        "token": token,
        "column_0": "code",
        "column_1": "language",
        "column_2": "title",
        "column_3": "copies",
        **extra,
    }


@pytest.fixture
def importer(db: None) -> Client:
    client = Client()
    client.force_login(make_user("importer", "add_edition", "change_edition", "view_edition"))
    return client


def test_upload_then_the_columns_are_matched_with_their_first_values(importer: Client) -> None:
    page = importer.get(URL)
    assert page.status_code == 200 and 'name="file"' in page.content.decode()
    response = upload(importer)
    assert response.status_code == 200
    text = response.content.decode()
    assert "2 rows in the file" in text
    assert re.search(
        r'name="column_0">\s*<option value="">Leave out</option>.*?<option value="code" selected>', text, re.S
    )
    assert "New · Deux" in text  # the title column's first values


def test_check_counts_and_writes_nothing_then_apply_goes_to_the_run(
    importer: Client, upload_dir: Path
) -> None:
    Edition.objects.create(code="B1", language="en", title="Old", copies=1)
    token = token_of(upload(importer, mode="upsert", key="code,language"))
    check = importer.post(URL, mapped(token, "check", mode="upsert", key="code,language"))
    assert check.status_code == 200
    text = check.content.decode()
    assert re.search(r"New <strong>1</strong>", text) and re.search(r"Updated <strong>1</strong>", text)
    assert Edition.objects.get(code="B1").title == "Old" and not Edition.objects.filter(code="B2").exists()
    assert BulkTask.objects.get(dry_run=True).kind == "import"
    applied = importer.post(URL, mapped(token, "apply", mode="upsert", key="code,language"))
    run = BulkTask.objects.get(dry_run=False)
    assert applied.status_code == 302 and applied["Location"] == f"/powercrud/tasks/{run.pk}/"
    assert run.row_counts == {"created": 1, "changed": 1}
    assert Edition.objects.get(code="B1").title == "New"
    assert list(upload_dir.glob("*.json")) == []  # the applied file is gone
    again = importer.post(URL, mapped(token, "apply", mode="upsert", key="code,language"))
    assert again.status_code == 400 and "upload it again" in again.content.decode()


def test_a_failing_row_in_all_or_nothing_writes_nothing_and_names_its_line(importer: Client) -> None:
    token = token_of(upload(importer, b"code,language,title,copies\nB1,en,A,1\nB2,en,B,-3\n"))
    check = importer.post(URL, mapped(token, "check"))
    text = check.content.decode()
    assert "Line 3:" in text and "Failing <strong>1</strong>" in text
    applied = importer.post(URL, mapped(token, "apply"))
    assert applied.status_code == 302
    assert Edition.objects.count() == 0
    assert BulkTask.objects.get(dry_run=False).status == "failed"


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("e.csv", b"code,Code\nA,B\n", "the column “Code” twice"),
        ("e.csv", "code\nÉté\n".encode("latin-1"), "not UTF-8"),
        ("e.xlsx", b"code\nA\n", "not an Excel workbook"),
        ("e.pdf", b"%PDF", "use a .csv, .xlsx or .json file"),
    ],
)
def test_a_bad_file_is_a_400_naming_the_problem(
    importer: Client, name: str, data: bytes, message: str
) -> None:
    response = upload(importer, data, name)
    assert response.status_code == 400
    assert message in response.content.decode()


def test_a_file_over_the_limit_is_refused(importer: Client, upload_dir: Path) -> None:
    with override_settings(POWERCRUD_SETTINGS={"IMPORT_MAX_BYTES": 20, "IMPORT_UPLOAD_DIR": str(upload_dir)}):
        response = upload(importer)
    assert response.status_code == 400 and "at most 20 bytes" in response.content.decode()


def test_no_file_a_bad_step_or_a_repeated_parameter_is_a_400(importer: Client) -> None:
    assert importer.post(URL, {"step": "upload"}).status_code == 400
    assert importer.post(URL, {"step": "explode"}).status_code == 400
    response = importer.post(URL, {"step": ["check", "apply"]})
    assert response.status_code == 400 and "step" in response.content.decode()


def test_another_users_upload_cannot_be_used(importer: Client) -> None:
    token = token_of(upload(importer))
    other = Client()
    other.force_login(make_user("other", "add_edition", "view_edition"))
    response = other.post(URL, mapped(token, "apply"))
    assert response.status_code == 400 and "upload it again" in response.content.decode()
    assert Edition.objects.count() == 0


def test_two_columns_for_one_field_come_back_to_the_mapping(importer: Client) -> None:
    token = token_of(upload(importer))
    response = importer.post(URL, {**mapped(token, "check"), "column_2": "code"})
    assert response.status_code == 400
    assert "both fill" in response.content.decode() and 'name="column_0"' in response.content.decode()


def test_permissions_add_to_import_and_change_to_upsert(db: None) -> None:
    nobody = Client()
    nobody.force_login(make_user("viewer", "view_edition"))
    assert nobody.get(URL).status_code == 403
    adder = Client()
    adder.force_login(make_user("adder", "add_edition", "view_edition"))
    page = adder.get(URL).content.decode()
    assert 'value="create"' in page and 'value="upsert"' not in page
    response = upload(adder, mode="upsert", key="code,language")
    assert response.status_code == 403 and "may not" in response.content.decode()


def test_an_upsert_refuses_rows_outside_the_views_scope(importer: Client) -> None:
    Edition.objects.create(code="B1", language="zz", title="Hidden", copies=1)
    data = b"code,language,title,copies\nB1,zz,Changed,1\nB2,en,Fine,1\n"
    token = token_of(upload(importer, data, mode="upsert", key="code,language"))
    importer.post(URL, mapped(token, "apply", mode="upsert", key="code,language"))
    assert Edition.objects.get(language="zz").title == "Hidden"
    run = BulkTask.objects.get()
    assert run.row_counts == {"failed": 1}  # all-or-nothing: the refused row fails the run
    assert "no longer one you may change" in str(run.errors)


def test_the_list_offers_import_to_those_who_may(importer: Client, db: None) -> None:
    page = importer.get("/edition/").content.decode()
    assert f'href="{URL}"' in page and ">Import</a>" in page
    viewer = Client()
    viewer.force_login(make_user("viewer2", "view_edition"))
    assert f'href="{URL}"' not in viewer.get("/edition/").content.decode()


def test_the_modal_gets_the_partial(importer: Client) -> None:
    response = importer.get(URL, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "<html" not in response.content.decode()
    assert 'hx-encoding="multipart/form-data"' in response.content.decode()


def test_checks_e023_to_e026(monkeypatch: pytest.MonkeyPatch) -> None:
    class Bad(EditionCRUDView):
        import_fields = ["code", "nope", "id"]
        import_formats = ["csv", "ods"]

    ids = [e.id for e in _check_import(Bad)]
    assert ids == ["powercrud.E023", "powercrud.E024", "powercrud.E025"]
    assert _check_import(EditionCRUDView) == [] and _check_import(BookCRUDView) == []
    monkeypatch.setattr("powercrud.fileformats.xlsx_available", lambda: False)
    assert [e.id for e in _check_import(EditionCRUDView)] == ["powercrud.E026"]


@pytest.mark.demo
@pytest.mark.urls("sample.urls")
def test_the_demos_books_export_and_import_back(admin_client: Client, upload_dir: Path) -> None:
    from sample.models import Author, Book, Genre, Tag
    from tests.conftest import make_catalogue

    make_catalogue(Author, Genre, Tag, Book)
    Book.objects.filter(pk=Book.objects.order_by("pk").first().pk).update(title="=SUM(A1)")  # type: ignore[union-attr]

    def snapshot() -> list[tuple[Any, ...]]:
        return sorted(
            (
                b.title,
                b.author_id,
                b.genre_id,
                b.status,
                b.price,
                b.published_date,
                b.pages,
                b.is_available,
                tuple(sorted(t.pk for t in b.tags.all())),
            )
            for b in Book.objects.all()
        )

    before = snapshot()
    export = admin_client.get("/book/export/?export=csv")
    data = b"".join(export.streaming_content)
    assert b"'=SUM(A1)" in data  # made safe on export
    Book.objects.all().delete()
    response = admin_client.post(
        "/book/import/", {"step": "upload", "file": SimpleUploadedFile("books.csv", data)}
    )
    token = token_of(response)
    header = next(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    fields = {f"column_{i}": name for i, name in enumerate(header) if name != "id"}
    applied = admin_client.post("/book/import/", {"step": "apply", "token": token, **fields})
    assert applied.status_code == 302
    assert snapshot() == before
    assert Book.objects.filter(title="=SUM(A1)").exists()
    assert all(isinstance(row[4], Decimal) for row in before)


def test_a_large_import_is_queued_for_a_worker_holding_the_rows_it_updates(
    importer: Client,
    upload_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    monkeypatch.setattr(EditionCRUDView, "bulk_async", True, raising=False)
    monkeypatch.setattr(EditionCRUDView, "bulk_min_async_records", 2, raising=False)
    RecordingRunner.jobs = []
    Edition.objects.create(code="B1", language="en", title="Old", copies=1)
    settings = {
        "IMPORT_UPLOAD_DIR": str(upload_dir),
        "BULK_RUNNER": "tests.test_import_views.RecordingRunner",
    }
    with override_settings(POWERCRUD_SETTINGS=settings):
        token = token_of(upload(importer, mode="upsert", key="code,language"))
        check = importer.post(URL, mapped(token, "check", mode="upsert", key="code,language"))
        assert check.status_code == 200 and RecordingRunner.jobs == []  # a check runs here
        with django_capture_on_commit_callbacks(execute=True):
            applied = importer.post(URL, mapped(token, "apply", mode="upsert", key="code,language"))
    task = BulkTask.objects.get(mode="async")
    assert applied.status_code == 302 and applied["Location"] == f"/powercrud/tasks/{task.pk}/"
    assert RecordingRunner.jobs == [("powercrud.jobs.worker.run_bulk_task", (task.pk,), task.task_name)]
    assert (task.kind, task.status, task.total) == ("import", "queued", 2)
    assert [lock.object_pk for lock in RowLock.objects.filter(task=task)] == [
        str(Edition.objects.get(code="B1").pk)
    ]
    assert Edition.objects.get(code="B1").title == "Old"  # nothing written before the worker runs
    assert len(task.read_request().import_rows) == 2  # the rows travel in the task


def test_the_run_page_offers_undo_and_the_import_screen_undoes_it(importer: Client) -> None:
    Edition.objects.create(code="B1", language="en", title="Old", copies=1)
    token = token_of(upload(importer, mode="upsert", key="code,language"))
    importer.post(URL, mapped(token, "apply", mode="upsert", key="code,language"))
    run = BulkTask.objects.get()
    other = Client()
    other.force_login(make_user("other2", "add_edition", "view_edition"))
    assert other.post(URL, {"undo_run": str(run.pk)}).status_code == 404  # not theirs
    # The undo deletes B2, which the import created: it needs the delete permission too.
    run_page = f"/powercrud/tasks/{run.pk}/"
    assert f'name="undo_run" value="{run.pk}"' not in importer.get(run_page).content.decode()
    refused = importer.post(URL, {"undo_run": str(run.pk)})
    assert refused.status_code == 403 and "delete" in refused.content.decode()
    assert BulkTask.objects.count() == 1 and Edition.objects.count() == 2
    undoer = make_user("undoer", "add_edition", "change_edition", "delete_edition", "view_edition")
    importer.force_login(undoer)
    BulkTask.objects.filter(pk=run.pk).update(owner=undoer)
    page = importer.get(f"/powercrud/tasks/{run.pk}/").content.decode()
    assert f'action="{URL}"' in page and f'name="undo_run" value="{run.pk}"' in page
    undone = importer.post(URL, {"undo_run": str(run.pk)})
    undo = BulkTask.objects.exclude(pk=run.pk).get()
    assert undone.status_code == 302 and undone["Location"] == f"/powercrud/tasks/{undo.pk}/"
    assert list(Edition.objects.values_list("code", "title")) == [("B1", "Old")]
    assert undo.row_counts == {"changed": 2} and undo.reason == f"Undo of run #{run.pk}"
    again = importer.post(URL, {"undo_run": str(run.pk)})
    assert again.status_code == 409 and "already undone" in again.content.decode()
    page = importer.get(f"/powercrud/tasks/{undo.pk}/").content.decode()
    assert 'name="undo_run"' not in page  # an undo of an import is not undone again


def test_an_undo_whose_reason_holds_a_nul_character_is_a_400_naming_it(importer: Client) -> None:
    token = token_of(upload(importer))
    importer.post(URL, mapped(token, "apply"))
    run = BulkTask.objects.get()
    importer.force_login(make_user("undoer", "add_edition", "delete_edition", "view_edition"))
    BulkTask.objects.filter(pk=run.pk).update(owner=User.objects.get(username="undoer"))
    response = importer.post(URL, {"undo_run": str(run.pk), "reason": "tidy\x00up"})
    assert response.status_code == 400 and "NUL" in response.content.decode()
    assert BulkTask.objects.count() == 1 and Edition.objects.count() == 2
