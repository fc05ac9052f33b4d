"""An import as a recorded run: the task record, its ledger (created, changed with old values,
unchanged, skipped, failed with the file line), counts from the ledger, checks; undo of an
import (created rows deleted, updated rows restored, conflicts), and what the dashboard shows."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.contrib.auth.models import User

from powercrud.bulk.importing import ImportSpec
from powercrud.bulk.request import BulkRequest
from powercrud.jobs.reruns import changed_rows, undo_problem
from powercrud.mixins.importing import run_import, undo_import_run
from powercrud.models import BulkTask, RunRow
from tests.testapp.models import Edition, Shelf, ShelfEvent

pytestmark = pytest.mark.django_db

FIELDS = ["code", "language", "title", "copies"]


def import_request(rows: list[list[Any]], *, mode: str = "upsert", **options: Any) -> BulkRequest:
    spec = ImportSpec(fields=tuple(FIELDS), mode=mode, key=("code", "language") if mode != "create" else ())  # type: ignore[arg-type]
    return BulkRequest(
        operation="import",
        model_label="testapp.edition",
        import_data={
            "spec": spec.to_data(),
            "file": "editions.csv",
            "rows": [[i + 2, row] for i, row in enumerate(rows)],
        },
        **options,
    )


def ledger(run: BulkTask) -> dict[str, tuple[str, Any, Any, Any]]:
    return {r.object_pk: (r.outcome, r.old, r.new, r.errors) for r in RunRow.objects.filter(run=run)}


@pytest.fixture
def owner() -> User:
    return User.objects.create_user("owner", password="pw")


@pytest.fixture
def editions() -> dict[str, Edition]:
    return {
        "en": Edition.objects.create(code="B1", language="en", title="Old", copies=1),
        "fr": Edition.objects.create(code="B1", language="fr", title="Vieux", copies=2),
        "de": Edition.objects.create(code="B1", language="de", title="Alt", copies=3),
    }


ROWS = [
    ["B1", "en", "New", "5"],  # updated
    ["B1", "fr", "Vieux", "2"],  # unchanged
    ["B2", "en", "Fresh", "1"],  # created
    ["B3", "en", "", "1"],  # failed: no title
]


def test_an_import_is_a_recorded_run_with_every_row_in_its_ledger(
    owner: User, editions: dict[str, Edition]
) -> None:
    run, result = run_import(import_request(ROWS, atomic=False), scope=Edition.objects.all(), user=owner)
    run.refresh_from_db()
    assert (run.kind, run.mode, run.status, run.owner) == ("import", "sync", "failed", owner)
    assert run.row_counts == {"created": 1, "changed": 1, "unchanged": 1, "failed": 1}
    assert (run.total, run.success_count, run.failure_count) == (4, 3, 1)
    created = Edition.objects.get(code="B2")
    rows = ledger(run)
    assert rows[str(editions["en"].pk)][:3] == (
        "changed",
        {"code": "B1", "language": "en", "title": "Old", "copies": 1},
        {"code": "B1", "language": "en", "title": "New", "copies": 5},
    )
    assert rows[str(editions["fr"].pk)][0] == "unchanged"
    assert rows[str(created.pk)][0] == "created"
    outcome, _, _, errors = rows["line 5"]
    assert outcome == "failed"
    assert errors == [{"field": "title", "messages": ["Line 5: This field is required."]}]
    # the run keeps the spec and the file's name, not the rows
    stored = run.read_request()
    assert stored.import_data["file"] == "editions.csv" and "rows" not in stored.import_data
    assert stored.import_spec.key == ("code", "language")


def test_a_failed_all_or_nothing_import_keeps_only_its_failed_rows(
    owner: User, editions: dict[str, Edition]
) -> None:
    run, result = run_import(import_request(ROWS), scope=Edition.objects.all(), user=owner)
    assert not result.success
    assert run.row_counts == {"failed": 1}
    assert not Edition.objects.filter(code="B2").exists()
    assert Edition.objects.get(pk=editions["en"].pk).title == "Old"


def test_a_check_records_what_the_apply_would_do_and_writes_nothing(
    owner: User, editions: dict[str, Edition]
) -> None:
    run, result = run_import(import_request(ROWS[:3], dry_run=True), scope=Edition.objects.all(), user=owner)
    assert run.dry_run and result.success
    assert run.row_counts == {"created": 1, "changed": 1, "unchanged": 1}
    assert "line 4" in ledger(run)  # a row the check would create, by its line
    assert not Edition.objects.filter(code="B2").exists()
    assert Edition.objects.get(pk=editions["en"].pk).title == "Old"


def test_skipped_rows_are_in_the_ledger(owner: User, editions: dict[str, Edition]) -> None:
    run, _ = run_import(import_request(ROWS[:3], mode="skip"), scope=Edition.objects.all(), user=owner)
    assert run.row_counts == {"created": 1, "skipped": 2}
    outcome, _, _, errors = ledger(run)[str(editions["en"].pk)]
    assert outcome == "skipped" and "Line 2" in errors[0]["messages"][0]


# --- undo -------------------------------------------------------------------------------------


def undo(run: BulkTask, owner: User) -> tuple[BulkTask, Any]:
    request = BulkRequest(
        operation="import", model_label="testapp.edition", source_run=run.pk, source_action="undo"
    )
    rows = Edition.objects.filter(pk__in=changed_rows(run, Edition))
    return undo_import_run(request, rows=rows, user=owner)


def test_undo_deletes_the_created_rows_and_restores_the_updated(
    owner: User, editions: dict[str, Edition]
) -> None:
    run, _ = run_import(import_request(ROWS[:3]), scope=Edition.objects.all(), user=owner)
    assert undo_problem(run) is None
    undone, result = undo(run, owner)
    assert result.success, result.errors
    assert not Edition.objects.filter(code="B2").exists()
    assert Edition.objects.get(pk=editions["en"].pk).title == "Old"
    assert Edition.objects.get(pk=editions["en"].pk).copies == 1
    assert undone.kind == "import" and undone.row_counts == {"changed": 2}
    assert "1 created rows deleted, 1 updated rows restored" in result.message
    assert "undid an import" in (undo_problem(undone) or "")
    assert "already undone" in (undo_problem(run) or "")


def test_undo_leaves_rows_changed_since_as_conflicts(owner: User, editions: dict[str, Edition]) -> None:
    run, _ = run_import(import_request(ROWS[:3]), scope=Edition.objects.all(), user=owner)
    Edition.objects.filter(code="B2").update(copies=9)
    Edition.objects.filter(pk=editions["en"].pk).update(title="Edited")
    undone, result = undo(run, owner)
    assert undone.row_counts == {"conflict": 2}
    assert Edition.objects.filter(code="B2").exists()
    assert Edition.objects.get(pk=editions["en"].pk).title == "Edited"
    messages = [r.errors[0]["messages"][0] for r in RunRow.objects.filter(run=undone)]
    assert all(f"Changed since import #{run.pk}" in m for m in messages)


def test_an_import_with_nothing_written_cannot_be_undone(owner: User, editions: dict[str, Edition]) -> None:
    run, _ = run_import(import_request([ROWS[1]]), scope=Edition.objects.all(), user=owner)
    assert "changed no rows" in (undo_problem(run) or "")


def test_undo_on_the_per_object_path_fires_the_signals(owner: User) -> None:
    spec = ImportSpec(fields=("name", "capacity"))
    request = BulkRequest(
        operation="import",
        model_label="testapp.shelf",
        import_data={"spec": spec.to_data(), "rows": [[2, ["A", "5"]], [3, ["B", "6"]]]},
    )
    run, result = run_import(request, scope=Shelf.objects.all(), user=owner)
    assert result.success and ShelfEvent.objects.count() == 2
    undo_request = BulkRequest(
        operation="import", model_label="testapp.shelf", source_run=run.pk, source_action="undo"
    )
    rows = Shelf.objects.filter(pk__in=changed_rows(run, Shelf))
    _, undone = undo_import_run(undo_request, rows=rows, user=owner)
    assert undone.success and Shelf.objects.count() == 0


# --- the dashboard ----------------------------------------------------------------------------


def test_the_dashboard_shows_the_import_and_its_outcomes(
    owner: User, editions: dict[str, Edition], client: Any
) -> None:
    run, _ = run_import(import_request(ROWS, atomic=False), scope=Edition.objects.all(), user=owner)
    client.force_login(owner)
    page = client.get(f"/powercrud/tasks/{run.pk}/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Import" in text and "editions.csv" in text
    outcomes = client.get(f"/powercrud/tasks/{run.pk}/outcomes.csv")
    assert outcomes.status_code == 200
    body = b"".join(outcomes.streaming_content) if outcomes.streaming else outcomes.content
    found = {row[0]: row[1] for row in csv.reader(io.StringIO(body.decode("utf-8-sig")))}
    assert found["line 5"] == "failed"
    assert found[str(editions["en"].pk)] == "changed"
    assert "created" in found.values()


def test_the_run_as_json_names_the_imported_fields_and_pages_its_rows(
    owner: User, editions: dict[str, Edition], client: Any
) -> None:
    run, _ = run_import(import_request(ROWS, atomic=False), scope=Edition.objects.all(), user=owner)
    client.force_login(owner)
    found = client.get(f"/powercrud/tasks/{run.pk}/run.json?outcome=failed").json()
    assert (found["kind"], found["fields"]) == ("import", FIELDS)
    assert found["counts"] == {"changed": 1, "created": 1, "unchanged": 1, "failed": 1}
    (row,) = found["rows"]["results"]
    assert row["pk"] == "line 5" and row["errors"][0]["messages"] == ["Line 5: This field is required."]
