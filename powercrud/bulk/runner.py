"""Selection freezing, batching and the two transaction modes, shared by update and delete.

A service hands the runner a ``process(batch_pks, isolation)`` function; the runner decides
which transaction each batch runs in and what happens when the database rejects a batch.

* **all-or-nothing** (``context.atomic``): one transaction. Batches run with no savepoints,
  so the fast path costs one statement per batch. After the first failing row the remaining
  batches are still checked (and written, each behind a savepoint) so that every failing
  row is listed; then everything is rolled back. If the database rejects a batch outright,
  the whole run is rolled back and replayed with savepoints to name the exact rows, and the
  replay is rolled back too.
* **per-row** (``not context.atomic``): each batch is its own atomic block. If the database
  rejects a batch, the batch is rolled back and replayed row by row, each row behind a
  savepoint, so exactly the bad rows are reported and the rest commit.
* **dry run**: the same, inside one more transaction that is always rolled back.
"""

from __future__ import annotations

import contextlib
import enum
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.core.exceptions import EmptyResultSet
from django.db import connections, models, router, transaction
from django.db.models import F, QuerySet

from powercrud.bulk import ledger
from powercrud.bulk.codec import json_pk
from powercrud.bulk.db_errors import is_run_error
from powercrud.bulk.keys import integer_keys
from powercrud.bulk.types import MAX_EXAMPLES, BulkContext, RowChange, RowError

ProgressCallback = Callable[[int, int], None]
T = TypeVar("T")


class Isolation(enum.Enum):
    """How a batch protects its writes from one another."""

    NONE = "none"  # no savepoint: a database error escapes to the caller
    BATCH = "batch"  # one savepoint for the batch; on error, retry row by row
    ROW = "row"  # one savepoint per row


def freeze_pks(queryset: QuerySet[Any], using: str) -> list[Any]:
    """The selection's primary keys, read once, sorted, without duplicates.

    Later batches are taken from this list, so an edit of the very field the queryset
    filtered on cannot make rows drop out of (or into) the selection part-way.
    """
    sliced = queryset.query.is_sliced
    keys = queryset.using(using) if sliced else queryset.using(using).order_by("pk")
    pks = _integer_pks(keys, using) if integer_keys(queryset.model) else None
    if pks is None:
        pks = list(keys.values_list("pk", flat=True))
        if sliced:
            pks.sort()
    return list(dict.fromkeys(pks))  # sorted, so each duplicate follows its first


# One row holding every key: a driver builds a Python row per row fetched, which cost more than
# the query itself at 10,000 keys (SQLite: 4.4 ms for the rows, 1.5 ms for one JSON array).
_ALL_KEYS = {
    "sqlite": "SELECT json_group_array(pc_keys.pc_key) FROM ({}) pc_keys",
    "postgresql": "SELECT array_agg(pc_keys.pc_key) FROM ({}) pc_keys",
}


def _integer_pks(queryset: QuerySet[Any], using: str) -> list[Any] | None:
    """``queryset``'s integer primary keys, sorted, read as one array (SQLite, PostgreSQL) or
    straight from the cursor; None when the database sends something else than ``int``."""
    connection = connections[using]
    form = _ALL_KEYS.get(connection.vendor)
    keys = queryset if form is None or queryset.query.is_sliced else queryset.order_by()
    query = keys.values(pc_key=F("pk")).query
    try:
        sql, params = query.get_compiler(using=using).as_sql()
    except EmptyResultSet:
        return []
    with connection.cursor() as cursor:
        if form is None:
            cursor.execute(sql, params)
            pks = [row[0] for row in cursor.fetchall()]
        else:
            cursor.execute(form.format(sql), params)
            found = cursor.fetchone()[0]
            pks = json.loads(found) if isinstance(found, str) else list(found or ())
    if not set(map(type, pks)) <= {int}:
        return None
    pks.sort()
    return pks


def batches(pks: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """``pks`` in consecutive slices of at most ``size``."""
    for start in range(0, len(pks), size):
        yield pks[start : start + size]


@dataclass
class BatchOutcome:
    """What one batch did."""

    succeeded: int = 0
    changed: int = 0
    errors: list[RowError] = field(default_factory=list)
    failed_pks: set[Any] = field(default_factory=set)
    examples: list[RowChange] = field(default_factory=list)
    extra: int = 0  # service specific (delete: related rows removed by cascades)

    def fail(self, pk: Any, errors: Sequence[RowError]) -> None:
        """Record that row ``pk`` failed with ``errors``."""
        self.failed_pks.add(pk)
        self.errors.extend(errors)

    def report_failures(self) -> None:
        """Tell the run ledger (if one records) which rows of this batch failed, and why."""
        if not self.failed_pks or not ledger.is_recording():
            return
        by_pk: dict[Any, list[RowError]] = {}
        for error in self.errors:
            by_pk.setdefault(json_pk(error.pk), []).append(error)
        recorder = ledger.active()
        for pk in self.failed_pks:
            recorder.fail(pk, by_pk.get(json_pk(pk), ()))


@dataclass
class RunOutcome:
    """What the whole run did, ready to become a ``BulkResult``."""

    total: int
    succeeded: int = 0
    changed: int = 0
    failed: int = 0
    errors: list[RowError] = field(default_factory=list)
    examples: list[RowChange] = field(default_factory=list)
    extra: int = 0
    rolled_back: bool = False

    def add(self, batch: BatchOutcome, max_errors: int) -> None:
        """Fold one batch's outcome into the run's (and report its failed rows to the ledger)."""
        batch.report_failures()
        self.succeeded += batch.succeeded
        self.changed += batch.changed
        self.failed += len(batch.failed_pks)
        self.extra += batch.extra
        room = max_errors - len(self.errors)
        if room > 0:
            self.errors.extend(batch.errors[:room])
        room = MAX_EXAMPLES - len(self.examples)
        if room > 0:
            self.examples.extend(batch.examples[:room])


def capped_errors_note(outcome: RunOutcome) -> str:
    """A sentence for the summary when ``max_errors`` left failed rows unlisted, else ""."""
    if len({error.pk for error in outcome.errors}) < outcome.failed:
        return f" Only the first {len(outcome.errors):,} errors are listed."
    return ""


ProcessBatch = Callable[[Sequence[Any], Isolation], BatchOutcome]


def _dry_run_block(using: str, dry_run: bool) -> contextlib.AbstractContextManager[Any]:
    return transaction.atomic(using=using) if dry_run else contextlib.nullcontext()


def run_batches(
    *,
    pks: Sequence[Any],
    context: BulkContext,
    using: str,
    process: ProcessBatch,
    retry_on: tuple[type[BaseException], ...],
    describe_error: Callable[[BaseException], str],
    progress_callback: ProgressCallback | None = None,
    max_errors: int = 10_000,
    first_batch_size: int | None = None,
) -> RunOutcome:
    """Run ``process`` over ``pks`` in batches under ``context``'s mode (see module docs).

    A batch that raises one of ``retry_on`` is replayed row by row, except for errors of the
    run itself (a lost connection and the like: ``db_errors.is_run_error``), which propagate.
    ``first_batch_size``: all-or-nothing only, the batch size of the first pass (a replay
    after a database error uses ``context.batch_size``, so one bad row costs a small batch
    replayed row by row); default ``context.batch_size``.
    """
    total = len(pks)
    report = progress_callback or (lambda done, total: None)
    report(0, total)
    if context.atomic:
        first = first_batch_size or context.batch_size
        return _run_all_or_nothing(
            pks, context, using, process, retry_on, describe_error, report, max_errors, first
        )
    outcome = RunOutcome(total=total)
    done = 0
    with _dry_run_block(using, context.dry_run):
        for batch in batches(pks, context.batch_size):
            try:
                with transaction.atomic(using=using):
                    result = process(batch, Isolation.NONE)
            except retry_on as exc:
                if is_run_error(exc):
                    raise
                with transaction.atomic(using=using):
                    result = process(batch, Isolation.ROW)
            outcome.add(result, max_errors)
            done += len(batch)
            report(done, total)
        if context.dry_run:
            transaction.set_rollback(True, using=using)
    return outcome


def _run_all_or_nothing(
    pks: Sequence[Any],
    context: BulkContext,
    using: str,
    process: ProcessBatch,
    retry_on: tuple[type[BaseException], ...],
    describe_error: Callable[[BaseException], str],
    report: ProgressCallback,
    max_errors: int,
    first_batch_size: int,
) -> RunOutcome:
    total = len(pks)
    try:
        with transaction.atomic(using=using):
            outcome = _loop(pks, first_batch_size, process, Isolation.NONE, report, max_errors)
            if outcome.failed or context.dry_run:
                transaction.set_rollback(True, using=using)
    except retry_on as exc:
        if is_run_error(exc):
            raise
        # The database rejected a batch without saying which row: replay with savepoints.
        with transaction.atomic(using=using):
            outcome = _loop(pks, context.batch_size, process, Isolation.BATCH, None, max_errors)
            transaction.set_rollback(True, using=using)
        if not outcome.failed:
            outcome.failed = 1
            outcome.errors.append(RowError(pk=None, field=None, messages=(describe_error(exc),)))
        report(total, total)
    if outcome.failed:
        outcome.rolled_back = True
        outcome.succeeded = outcome.changed = outcome.extra = 0
        outcome.examples = []
    return outcome


def _loop(
    pks: Sequence[Any],
    batch_size: int,
    process: ProcessBatch,
    isolation: Isolation,
    report: ProgressCallback | None,
    max_errors: int,
) -> RunOutcome:
    outcome = RunOutcome(total=len(pks))
    done = 0
    for batch in batches(pks, batch_size):
        outcome.add(process(batch, isolation), max_errors)
        if outcome.failed:
            isolation = Isolation.BATCH  # keep going to list every failing row
        done += len(batch)
        if report is not None:
            report(done, len(pks))
    return outcome


def write_isolated(
    items: Sequence[T],
    isolation: Isolation,
    using: str,
    write: Callable[[Sequence[T]], None],
    fail: Callable[[T, BaseException], None],
    retry_on: tuple[type[BaseException], ...],
) -> list[T]:
    """``write(items)`` as ``isolation`` says; returns the items written.

    ``NONE``: one call, errors escape. ``BATCH``: one call behind a savepoint; if it raises one
    of ``retry_on``, then as ``ROW``: each item behind its own savepoint, ``fail(item, exc)`` for
    each one refused. Errors of the run itself (``is_run_error``) always escape.
    """
    if not items:
        return []
    if isolation is Isolation.NONE:
        write(items)
        return list(items)
    if isolation is Isolation.BATCH:
        try:
            with transaction.atomic(using=using):
                write(items)
            return list(items)
        except retry_on as exc:
            if is_run_error(exc):
                raise
    written = []
    for item in items:
        try:
            with transaction.atomic(using=using):
                write([item])
            written.append(item)
        except retry_on as exc:
            if is_run_error(exc):
                raise
            fail(item, exc)
    return written


def check_context(model: type[models.Model], context: BulkContext, operation: str) -> None:
    """Raise ValueError unless ``context`` describes ``operation`` on ``model``."""
    if context.model_label != model._meta.label_lower:
        raise ValueError(
            f"context.model_label is {context.model_label!r} but the queryset is of "
            f"{model._meta.label_lower!r}; build the context for the model being written."
        )
    if context.operation != operation:
        raise ValueError(f"context.operation is {context.operation!r}; this service performs {operation!r}.")


def write_alias(queryset: QuerySet[Any]) -> str:
    """The database alias writes to ``queryset`` go to."""
    explicit: str | None = getattr(queryset, "_db", None)  # set by .using()
    return explicit or router.db_for_write(queryset.model)
