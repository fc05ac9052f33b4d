"""What the bulk core tells the run ledger about each row, and how it finds the ledger.

The core knows nothing of where a run is recorded (the record lives outside it, in
``powercrud.jobs.ledger``). A caller that records a run makes a ``RowRecorder`` active
with ``recording()`` around ``run_request()``; the services then report every row they
read to ``active()``:

* ``snapshot()`` on the set-based path: the batch's old values, read by the database in the
  same transaction, just before the ``UPDATE`` or ``DELETE`` (one ``INSERT ... SELECT``);
* ``record()`` on paths that read the rows anyway (per-object saves, checks, hooks);
* ``fail()`` for a row refused and ``skip()`` for one left out of scope, kept aside so a
  rollback cannot lose them;
* ``earlier()`` for an undo: what the run being undone did to each row.

Entries are written inside the batch's transaction, so a rollback takes them away with the
writes they describe. A view's own hook or a backend that does not call the shared services
records nothing per row; its run is still recorded, and its rows are settled afterwards.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import models
from django.db.models import Q, QuerySet

from powercrud.bulk.types import RowError

CHANGED = "changed"
UNCHANGED = "unchanged"
FAILED = "failed"
SKIPPED = "skipped"
NOT_REACHED = "not_reached"
CONFLICT = "conflict"
CREATED = "created"
OUTCOMES = (CHANGED, UNCHANGED, FAILED, SKIPPED, NOT_REACHED, CONFLICT, CREATED)


class LineKey(str):
    """The ledger key of an imported row that has no key of its own (it failed, or a check
    created it): ``"line 12"``, the line of the file it came from."""

    __slots__ = ()

    def __new__(cls, line: int) -> LineKey:
        return super().__new__(cls, f"line {line}")


@dataclass(frozen=True)
class Entry:
    """One row's outcome in a run: old and new values by field name (JSON-able), errors."""

    pk: Any
    outcome: str
    old: Mapping[str, Any] | None = None
    new: Mapping[str, Any] | None = None
    errors: tuple[RowError, ...] = field(default=())


class RowRecorder:
    """Receives what a run did to each row. The base class records nothing."""

    def snapshot(
        self,
        rows: QuerySet[Any],
        *,
        old: Sequence[str],
        new: Mapping[str, Any] | None,
        unchanged: Q | None = None,
        pks: Sequence[Any] | None = None,
    ) -> None:
        """Record ``rows`` before they are written: the current values of the fields ``old``,
        ``new`` (the same for every row; None for a delete), ``UNCHANGED`` for rows matching
        ``unchanged``, else ``CHANGED``. Called in the transaction of the write that follows.

        ``pks``: the batch's keys, passed only when ``rows`` is the same query for every batch
        of the run but for ``keys.in_batch(pks)``; a recorder may then reuse the statement it
        built for an earlier batch with this batch's keys."""

    def record(self, entries: Sequence[Entry]) -> None:
        """Record ``entries``, rows the service read and decided about."""

    def fail(self, pk: Any, errors: Sequence[RowError]) -> None:
        """Row ``pk`` was refused with ``errors`` (kept outside the transaction)."""

    def skip(self, pk: Any, errors: Sequence[RowError]) -> None:
        """Row ``pk`` was left out of the run (outside the backend's scope), with ``errors``."""

    def earlier(self, pks: Sequence[Any]) -> Mapping[Any, Entry]:
        """For an undo: the entries of the run being undone for ``pks``, by primary key."""
        return {}

    def source_pks(self) -> list[Any]:
        """For an undo of a delete: the primary keys of the rows it deleted, sorted."""
        return []

    def note_cascade(self, count: int) -> None:
        """A delete also removed ``count`` other rows (not its own many-to-many links)."""

    def undo_in_place(
        self,
        model: type[models.Model],
        using: str,
        batch: Sequence[Any],
        names: Sequence[str],
        stamps: Mapping[str, Any],
    ) -> tuple[int, int] | None:
        """For an undo with no per-row code: write the batch's old values back in the database
        alone (with ``stamps``, the ``auto_now`` values) and record them; returns (rows, changed).
        None when it cannot (a row changed since the run, a field or database it does not
        handle): the caller then undoes the batch row by row."""
        return None

    def later_changes(self, pks: Sequence[Any]) -> Mapping[Any, int]:
        """For an undo: the latest later run that changed each of ``pks``, when one did."""
        return {}


_ACTIVE: contextvars.ContextVar[RowRecorder | None] = contextvars.ContextVar(
    "powercrud_recorder", default=None
)
_NOTHING = RowRecorder()


def active() -> RowRecorder:
    """The recorder of the run in progress; one that records nothing outside ``recording()``."""
    return _ACTIVE.get() or _NOTHING


def is_recording() -> bool:
    """True inside ``recording()``."""
    return _ACTIVE.get() is not None


@contextlib.contextmanager
def recording(recorder: RowRecorder) -> Iterator[RowRecorder]:
    """Make ``recorder`` the one the services report to, for the duration of the block."""
    token = _ACTIVE.set(recorder)
    try:
        yield recorder
    finally:
        _ACTIVE.reset(token)


def stored_value(model: type[models.Model], name: str, value: Any) -> Any:
    """A value as the ledger stores it for field ``name`` of ``model``, back as Python."""
    model_field = model._meta.get_field(name)
    if model_field.many_to_many:
        return tuple(value or ())
    assert isinstance(model_field, models.Field)
    target = model_field.target_field if model_field.is_relation else model_field  # type: ignore[attr-defined]
    if value is None:
        return None
    if isinstance(target, models.DurationField) and isinstance(value, int):
        return datetime.timedelta(microseconds=value)  # SQLite stores durations as microseconds
    return target.to_python(value)
