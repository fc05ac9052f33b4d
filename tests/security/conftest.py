"""Helpers for the security suite: clients per user, planted selections, and the proofs that
nothing was written, queued or locked."""

from __future__ import annotations

from typing import Any

from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_q.models import OrmQ

from powercrud.models import BulkTask, RowLock
from tests.conftest import HtmxClient


def login(user: Any, *, htmx: bool = False, **kwargs: Any) -> Client:
    """A client signed in as ``user`` (``htmx``: every request carries ``HX-Request``)."""
    client = HtmxClient(**kwargs) if htmx else Client(**kwargs)
    client.force_login(user)
    return client


def selection_key(url_base: str, label: str = "testapp.book") -> str:
    return f"powercrud:selection:{label}:{url_base}"


def plant(client: Client, url_base: str, data: Any, label: str = "testapp.book") -> None:
    """Store ``data`` as the selection of the view at ``/<url_base>/``, as a tampered or stale
    session would hold it (bypassing every check of the SELECTION role)."""
    session = client.session
    session[selection_key(url_base, label)] = data
    session.save()


def plant_ids(client: Client, url_base: str, pks: Any, label: str = "testapp.book") -> None:
    plant(client, url_base, {"mode": "ids", "ids": [str(pk) for pk in pks]}, label)


def assert_nothing_queued() -> None:
    """No task record, no row lock and no django-q2 job exist."""
    assert list(BulkTask.objects.values_list("pk", "status")) == []
    assert RowLock.objects.count() == 0
    assert OrmQ.objects.count() == 0


def locked_pks(task: BulkTask) -> list[str]:
    """The primary keys (as stored text) a task locked: its frozen selection (frozen now, as
    its worker's first step does, when the submit only stored it)."""
    from tests.async_helpers import freeze_now

    freeze_now(task)
    return sorted(RowLock.objects.filter(task=task).values_list("object_pk", flat=True))


def app_queries(captured: CaptureQueriesContext) -> list[str]:
    """SQL that touched the test app's tables or powercrud's task and lock tables."""
    return [q["sql"] for q in captured.captured_queries if "testapp_" in q["sql"] or "powercrud_" in q["sql"]]
