"""Lifecycle hooks in an import (``bulk.importhooks``): new rows are creates, rows matched on
the key are updates with their old values paired, unchanged rows are not passed; a refusal is
the row's failure with its file line; a check calls only the before hooks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from powercrud.bulk import lifecycle
from powercrud.bulk.lifecycle import Event, Pair, changed
from powercrud.bulk.types import RowError
from tests.test_import_core import run_import
from tests.testapp.models import Edition

pytestmark = pytest.mark.django_db

FIELDS = ["code", "language", "title", "copies"]
KEY = ["code", "language"]


class Calls:
    def __init__(self) -> None:
        self.seen: list[tuple[str, list[tuple[Any, Any]]]] = []
        self.refuse: set[str] = set()

    def hook(self, event: Event) -> Any:
        def call(pairs: list[Pair]) -> list[RowError]:
            def row(obj: Any) -> Any:
                return None if obj is None else (obj.pk, obj.language, obj.title)

            self.seen.append((event.value, [(row(p.new), row(p.old)) for p in pairs]))
            return [
                lifecycle.refuse(p.new, "title", f"“{p.new.title}” is refused.")
                for p in pairs
                if event.is_before and p.new is not None and p.new.title in self.refuse
            ]

        return call


@pytest.fixture
def calls() -> Iterator[Calls]:
    recorder = Calls()
    hooks = [recorder.hook(event) for event in (*lifecycle.CREATE, *lifecycle.UPDATE)]
    for event, hook in zip((*lifecycle.CREATE, *lifecycle.UPDATE), hooks, strict=True):
        lifecycle.register(event, Edition, hook)
    try:
        yield recorder
    finally:
        for hook in hooks:
            lifecycle.unregister(hook)


def test_an_upsert_calls_create_and_update_hooks_with_the_rows_paired(calls: Calls) -> None:
    old = Edition.objects.create(code="B1", language="en", title="Old", copies=1)
    Edition.objects.create(code="B1", language="fr", title="Vieux", copies=2)
    rows = [["B1", "en", "New", "5"], ["B1", "fr", "Vieux", "2"], ["B1", "de", "Neu", "3"]]
    result = run_import(Edition, FIELDS, rows, mode="upsert", key=KEY)
    assert result.success and result.changed == 2, result.errors
    created = Edition.objects.get(language="de")
    assert calls.seen == [
        ("before_create", [((None, "de", "Neu"), None)]),
        ("before_update", [((old.pk, "en", "New"), (old.pk, "en", "Old"))]),
        ("after_create", [((created.pk, "de", "Neu"), None)]),
        ("after_update", [((old.pk, "en", "New"), (old.pk, "en", "Old"))]),
    ]  # the unchanged row (fr) is in no call


def test_a_refused_row_fails_with_its_line_per_row_and_all_or_nothing(calls: Calls) -> None:
    calls.refuse = {"Neu"}
    rows = [["B1", "en", "New", "5"], ["B1", "de", "Neu", "3"]]
    result = run_import(Edition, FIELDS, rows, mode="create", atomic=False)
    assert (result.failed, result.changed) == (1, 1)
    [error] = result.errors
    assert error.field == "title" and "3" in error.messages[0] and "“Neu” is refused." in error.messages[0]
    assert list(Edition.objects.values_list("title", flat=True)) == ["New"]
    Edition.objects.all().delete()
    result = run_import(Edition, FIELDS, rows, mode="create")
    assert result.failed == 1 and not result.success and not Edition.objects.exists()


def test_a_check_calls_the_before_hooks_only(calls: Calls) -> None:
    result = run_import(Edition, FIELDS, [["B1", "en", "New", "5"]], mode="create", dry_run=True)
    assert result.success and not Edition.objects.exists()
    assert [event for event, _ in calls.seen] == ["before_create"]


def test_a_condition_applies_in_an_import(calls: Calls) -> None:
    seen: list[Any] = []
    lifecycle.register(Event.AFTER_UPDATE, Edition, seen.append, when=changed("copies"))
    try:
        Edition.objects.create(code="B1", language="en", title="Old", copies=1)
        run_import(Edition, FIELDS, [["B1", "en", "New", "1"]], mode="upsert", key=KEY)
        assert seen == []  # the title changed, the copies did not
        run_import(Edition, FIELDS, [["B1", "en", "New", "4"]], mode="upsert", key=KEY)
        assert [[p.new.copies for p in pairs] for pairs in seen] == [[4]]
    finally:
        lifecycle.unregister(seen.append)


# --- the undo of an import ----------------------------------------------------------------------------


def test_the_undo_of_an_import_calls_delete_and_update_hooks(calls: Calls) -> None:
    from django.contrib.auth.models import User

    from powercrud.mixins.importing import run_import as run_recorded_import
    from tests.test_import_runs import import_request, undo

    owner = User.objects.create_user("owner", password="pw")
    kept = Edition.objects.create(code="B1", language="en", title="Old", copies=1)
    rows = [["B1", "en", "New", "5"], ["B2", "en", "Fresh", "1"]]
    run, result = run_recorded_import(import_request(rows), scope=Edition.objects.all(), user=owner)
    assert result.success, result.errors
    fresh = Edition.objects.get(code="B2")
    deleted: list[Any] = []

    def after_delete(pairs: list[Pair]) -> None:
        deleted.extend((p.new, p.old.pk, p.old.title) for p in pairs if p.old is not None)

    lifecycle.register(Event.AFTER_DELETE, Edition, after_delete)
    calls.seen.clear()
    try:
        undone, result = undo(run, owner)
    finally:
        lifecycle.unregister(after_delete)
    assert result.success, result.errors
    assert deleted == [(None, fresh.pk, "Fresh")]
    assert calls.seen == [
        ("before_update", [((kept.pk, "en", "Old"), (kept.pk, "en", "New"))]),
        ("after_update", [((kept.pk, "en", "Old"), (kept.pk, "en", "New"))]),
    ]


def test_a_refusal_in_the_undo_of_an_import_is_that_rows_failure(calls: Calls) -> None:
    from django.contrib.auth.models import User

    from powercrud.mixins.importing import run_import as run_recorded_import
    from tests.test_import_runs import import_request, undo

    owner = User.objects.create_user("owner", password="pw")
    Edition.objects.create(code="B1", language="en", title="Old", copies=1)
    run, _ = run_recorded_import(
        import_request([["B1", "en", "New", "5"], ["B2", "en", "Fresh", "1"]]),
        scope=Edition.objects.all(),
        user=owner,
    )
    calls.refuse = {"Old"}  # the restore of the updated row back to "Old"
    undone, result = undo(run, owner)
    assert result.failed == 1 and [e.field for e in result.errors] == ["title"]
    assert "“Old” is refused." in result.errors[0].messages
    assert Edition.objects.get(language="en", code="B1").title == "New"
