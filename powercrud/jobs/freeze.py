"""A background run's selection: stored by the submit, frozen into row locks by the worker.

The submit request reads no row: ``store_selection()`` keeps the scoped queryset's SQL query
(``queryset.query``, pickled as Django documents under "Pickling QuerySets", signed with
``SECRET_KEY`` so that only this code's own writes are ever unpickled, base64 text, with the
Django version that pickled it: another one refuses it) in the task's ``payload`` under
``models.SELECTION_KEY``. Explicit keys (the undo of a delete, whose
rows do not exist yet) are stored the same way.

``freeze_selection()`` is the worker's first step after the claim: it restores the query on
the model's base manager, counts it (the phase "Locking N rows…"), then in ONE transaction of
its own takes every ``RowLock`` set-based (``locks.acquire_locks``: one ``INSERT ... SELECT``)
and the fence against runs in the request (``locks.fence_request_runs``), and commits, so the
locks are committed before the run's own transaction writes a row (SQLite has one writer;
PostgreSQL sees them from every connection). A conflict rolls the freeze back, leaving no
lock, and ends the run with the launch's conflict message.

A query that cannot be pickled (a lookup value that is a local function, say) is not stored:
the launch then locks the rows in the request, as before this module existed, and the worker
finds the locks taken (``SELECTION_KEY`` absent), as it does for runs queued by earlier releases.
"""

from __future__ import annotations

import base64
import binascii
import pickle
from dataclasses import dataclass
from typing import Any

import django
from django.apps import apps
from django.core import signing
from django.core.exceptions import ImproperlyConfigured
from django.db import models, router, transaction

from powercrud.bulk import messages
from powercrud.jobs.locks import acquire_locks, fence_request_runs
from powercrud.jobs.progress import ProgressWriter, TaskCancelled, cancel_requested
from powercrud.models import SELECTION_KEY, BulkTask, RowLock

__all__ = [
    "NothingToLock",
    "SelectionNotStorable",
    "StoredSelection",
    "freeze_selection",
    "store_selection",
    "stored_selection",
]

_SALT = "powercrud.jobs.freeze"


class SelectionNotStorable(Exception):
    """The selection's query cannot be pickled; the launch locks the rows in the request instead."""


class NothingToLock(Exception):
    """The selection held no row when the worker froze it; ``message`` is safe to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _alias() -> str:
    return router.db_for_write(RowLock)


def _pack(query: Any) -> str:
    try:
        data = pickle.dumps(query, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise SelectionNotStorable(str(exc)) from exc
    return signing.Signer(salt=_SALT).sign(base64.b64encode(data).decode("ascii"))


def _unpack(text: str) -> Any:
    try:
        data = base64.b64decode(signing.Signer(salt=_SALT).unsign(text))
    except (signing.BadSignature, binascii.Error, TypeError) as exc:
        raise ImproperlyConfigured(
            "The run's stored selection does not carry this site's signature (is SECRET_KEY the "
            "same on the web servers and the workers?)."
        ) from exc
    try:
        return pickle.loads(data)  # noqa: S301 - signed above: written by store_selection() only
    except Exception as exc:  # an unpickling error of any kind: a release or model changed since
        raise ImproperlyConfigured(
            f"The run's stored selection cannot be read by this release ({type(exc).__name__}); "
            "submit the run again."
        ) from exc


def _label(queryset: models.QuerySet[Any]) -> str:
    return queryset.model._meta.label_lower


def store_selection(
    queryset: models.QuerySet[Any], keys: models.QuerySet[Any] | None = None
) -> dict[str, str]:
    """The payload entry for ``queryset`` (already scoped) and optional ``keys`` (a one-column
    ``values()`` queryset of lock keys, ``locks.KEY_COLUMN``); reads nothing from the database.

    Raises ``SelectionNotStorable`` when a query cannot be pickled.
    """
    entry = {"model": _label(queryset), "query": _pack(queryset.query), "django": django.get_version()}
    if keys is not None:
        entry["keys_model"] = _label(keys)
        entry["keys"] = _pack(keys.query)
    return entry


@dataclass(frozen=True)
class StoredSelection:
    """A selection restored in the worker: the rows, and the keys to lock when they are given."""

    queryset: models.QuerySet[Any]
    keys: models.QuerySet[Any] | None = None


def _restore(label: str, text: str) -> models.QuerySet[Any]:
    model = apps.get_model(label)
    queryset = model._base_manager.using(_alias()).all()
    queryset.query = _unpack(text)
    if queryset.query.model is not model:
        raise ImproperlyConfigured(f"The run's stored selection is not a query of {label!r}.")
    return queryset


def stored_selection(task: BulkTask) -> StoredSelection | None:
    """``task``'s stored selection; None when its rows were locked at submit (no stored query).

    Raises ``ImproperlyConfigured`` when it cannot be read (signature, release, model).
    """
    payload = task.payload if isinstance(task.payload, dict) else {}
    entry = payload.get(SELECTION_KEY)
    if entry is None:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("query"), str):
        raise ImproperlyConfigured("The run's stored selection is not in a form this release reads.")
    stored_by = entry.get("django", django.get_version())
    if stored_by != django.get_version():  # a query pickled by another Django may not mean the same
        raise ImproperlyConfigured(
            f"The run's selection was stored by Django {stored_by} and this worker runs Django "
            f"{django.get_version()}; submit the run again once the web servers and workers match."
        )
    queryset = _restore(str(entry.get("model", task.model_label)), entry["query"])
    keys = None
    if isinstance(entry.get("keys"), str):
        keys = _restore(str(entry.get("keys_model", "")), entry["keys"])
    return StoredSelection(queryset, keys)


def freeze_selection(task: BulkTask, writer: ProgressWriter) -> bool:
    """The worker's first step: lock ``task``'s stored selection; returns whether it froze one
    (False: its rows were locked at submit).

    Sets ``task.total`` (and the record's) to the rows locked and drops the stored query from
    the payload once the locks are committed (a second freeze finds nothing to do). Raises
    ``LockConflict`` (another run holds some rows), ``NothingToLock`` (no row left),
    ``TaskCancelled`` (a cancel came before the locks were committed) or
    ``ImproperlyConfigured``; in each case no lock is left.
    """
    stored = stored_selection(task)
    if stored is None:
        return False
    rows = stored.keys if stored.keys is not None else stored.queryset
    writer.phase = messages.locking_rows()
    writer(0, 0)  # raises TaskCancelled when a cancel was already seen
    size = (rows if rows.query.is_sliced else rows.order_by()).count()
    writer.phase = messages.locking_rows(size)
    writer(0, size)
    using = _alias()
    with transaction.atomic(using=using):
        total = acquire_locks(task, stored.queryset, stored.keys) if size else 0
        if total == 0:
            meta = stored.queryset.model._meta
            raise NothingToLock(messages.nothing_to_lock(str(meta.verbose_name_plural), task.kind))
        if stored.keys is None:  # rows that do not exist yet cannot be held by a run in the request
            fence_request_runs(stored.queryset)
        if writer.cancelled.is_set() or cancel_requested(task):  # rolled back: no lock is left
            raise TaskCancelled(task.task_name)
    # Frozen: the stored query has done its job (the locks are the selection from now on). After
    # the commit: PostgreSQL checks the locks' foreign keys at commit, and the task row updated
    # inside would hold the progress writer's heartbeat back until then.
    payload = {key: value for key, value in task.payload.items() if key != SELECTION_KEY}
    BulkTask.objects.using(router.db_for_write(BulkTask)).filter(pk=task.pk).update(
        total=total, payload=payload
    )
    task.total, task.payload = total, payload
    writer.phase = ""
    writer(0, total)
    return True
