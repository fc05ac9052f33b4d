"""Row locks for async bulk tasks: one ``RowLock`` per selected row, unique per row.

A launch takes every lock of its selection in one ``INSERT ... SELECT`` inside the launch's
transaction; the unique constraint on (model, primary key) makes a second task that wants
any of the same rows fail with ``LockConflict`` instead of waiting. The lock rows are also
the task's frozen selection: the worker writes exactly the rows its locks name.

Form edits and deletes of single rows call ``assert_unlocked`` (or wrap the write in
``guard_rows``) so a row held by a task gets a clear conflict message naming the task.

Bulk runs in the request take no ``RowLock`` (they end with the request, so their locks are
the database's own): ``hold_selection`` opens their transaction and, on PostgreSQL, takes
every selected row's lock without waiting, so a second run over any of the same rows gets
``LockConflict`` at once. A per-model advisory lock (shared by request runs, tried
exclusively by launches in ``fence_request_runs``) closes the gap between the two kinds:
whichever comes second conflicts. Nothing here blocks for long: PostgreSQL waits at most
``LOCK_WAIT`` for another transaction's locks, SQLite at most its connection ``timeout``.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.apps import apps
from django.core.exceptions import EmptyResultSet
from django.db import IntegrityError, OperationalError, connections, models, router, transaction
from django.db.models.functions import Cast
from django.utils import timezone

from powercrud.bulk.setwise import column_of
from powercrud.models import BulkTask, RowLock

__all__ = [
    "LOCK_WAIT",
    "LockConflict",
    "acquire_locks",
    "assert_queryset_unlocked",
    "assert_unlocked",
    "fence_request_runs",
    "guard_rows",
    "hold_selection",
    "lock_key",
    "locked_by",
    "release_locks",
]

LOCK_WAIT = "5s"
"""How long PostgreSQL waits for another transaction's row or lock-table locks."""

_KEY = KEY_COLUMN = "pc_lock_key"  # the column of key_values()
_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL SQLSTATE for lock_timeout and NOWAIT
_ADVISORY_SPACE = 0x70637264  # powercrud's first advisory-lock key ("pcrd"); the second is the model's


class LockConflict(Exception):
    """Rows are held by another bulk task. ``message`` is safe to show and names the task(s)."""

    def __init__(self, message: str, tasks: Sequence[BulkTask] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.tasks = tuple(tasks)


def _model(model: type[models.Model] | str) -> type[models.Model]:
    return apps.get_model(model) if isinstance(model, str) else model


def db_column(model: type[models.Model], name: str) -> str:
    """The database column of ``model``'s field ``name``."""
    return column_of(model._meta.get_field(name))


def _alias() -> str:
    return router.db_for_write(RowLock)


def lock_key(model: type[models.Model] | str, pk: Any, using: str | None = None) -> str:
    """The text a ``RowLock`` stores for ``pk``: what ``CAST(pk AS text)`` gives in the database."""
    pk_field = _model(model)._meta.pk
    assert pk_field is not None
    connection = connections[using or _alias()]
    return str(pk_field.get_db_prep_value(pk_field.to_python(pk), connection, prepared=False))


def key_values(queryset: models.QuerySet[Any]) -> models.QuerySet[Any]:
    """``queryset``'s primary keys in the database's text form, as a one-column subquery."""
    if not queryset.query.is_sliced:
        queryset = queryset.order_by()
    return queryset.values(**{_KEY: Cast("pk", output_field=models.TextField())})


def _describe(tasks: Sequence[BulkTask]) -> str:
    named = [f"#{task.pk} ({task.get_status_display().lower()})" for task in tasks]
    if len(named) == 1:
        return f"bulk task {named[0]}"
    return f"bulk tasks {', '.join(named[:-1])} and {named[-1]}"


def _conflict_message(model: type[models.Model], rows: int, tasks: Sequence[BulkTask], single: bool) -> str:
    meta = model._meta
    who = _describe(tasks)
    when = "it finishes" if len(tasks) == 1 else "they finish"
    if single:
        return f"This {meta.verbose_name} is being changed by {who}. Try again when {when}."
    noun = meta.verbose_name if rows == 1 else meta.verbose_name_plural
    verb = "is" if rows == 1 else "are"
    return f"{rows} of the selected {noun} {verb} being changed by {who}. Try again when {when}."


def _holders(locks: models.QuerySet[RowLock]) -> tuple[int, list[BulkTask]]:
    rows = locks.count()
    task_ids = locks.order_by("task_id").values_list("task_id", flat=True).distinct()[:5]
    return rows, list(BulkTask.objects.filter(pk__in=list(task_ids)).order_by("pk"))


@contextlib.contextmanager
def _short_lock_wait(using: str) -> Iterator[None]:
    """Inside a transaction on PostgreSQL: wait at most ``LOCK_WAIT`` for other transactions."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('lock_timeout')")
        previous = cursor.fetchone()[0]
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [LOCK_WAIT])
    try:
        yield
    finally:
        if not connection.needs_rollback and connection.is_usable():
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])


def _starting_message(model: type[models.Model]) -> str:
    """The conflict when another launch of ``model`` is still taking its row locks."""
    return (
        f"Some of the selected {model._meta.verbose_name_plural} are being locked by "
        "another bulk task that is starting right now. Try again in a moment."
    )


def _is_lock_timeout(exc: OperationalError) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) == _LOCK_NOT_AVAILABLE


def acquire_locks(
    task: BulkTask, queryset: models.QuerySet[Any], keys: models.QuerySet[Any] | None = None
) -> int:
    """Lock every row of ``queryset`` (already scoped) for ``task``; returns how many were locked.

    ``keys``: the rows' keys in text form as a one-column ``values()`` queryset (column
    ``KEY_COLUMN``) instead, for rows that do not exist yet (the undo of a delete).

    One ``INSERT ... SELECT`` in a savepoint of the caller's transaction. Raises
    ``LockConflict`` (leaving no lock of ``task`` behind) when another task holds any row.
    """
    model = queryset.model
    using = _alias()
    if queryset.db != using:
        raise ValueError(
            f"The selection is read from database {queryset.db!r} but row locks live in "
            f"{using!r}; bulk tasks need both in the same database."
        )
    connection = connections[using]
    qn = connection.ops.quote_name
    keys = key_values(queryset) if keys is None else keys
    try:
        select_sql, select_params = keys.query.get_compiler(using=using).as_sql()
    except EmptyResultSet:  # e.g. .none() or pk__in=[]
        return 0
    columns = ", ".join(
        qn(db_column(RowLock, name)) for name in ("task", "model_label", "object_pk", "created_at")
    )
    # A join (a filter across a to-many relation) can repeat a row; one table cannot.
    query = keys.query
    distinct = "DISTINCT " if len(query.alias_map) > 1 or query.combinator else ""
    sql = (
        f"INSERT INTO {qn(RowLock._meta.db_table)} ({columns}) "
        f"SELECT {distinct}%s, %s, pc_sel.{qn(_KEY)}, %s FROM ({select_sql}) pc_sel"
    )
    created = connection.ops.adapt_datetimefield_value(timezone.now())
    params = [task.pk, model._meta.label_lower, created, *select_params]
    with transaction.atomic(using=using):
        busy = conflict = False
        with _short_lock_wait(using):
            try:
                with transaction.atomic(using=using), connection.cursor() as cursor:
                    cursor.execute(sql, params)
                    count = cursor.rowcount
            except IntegrityError:
                conflict = True
            except OperationalError as exc:
                if not _is_lock_timeout(exc):
                    raise
                busy = True
        if busy:
            raise LockConflict(_starting_message(model))
        if conflict:
            locks = (
                RowLock.objects.using(using)
                .filter(model_label=model._meta.label_lower, object_pk__in=key_values(queryset))
                .exclude(task_id=task.pk)
            )
            rows, tasks = _holders(locks)
            raise LockConflict(_conflict_message(model, rows, tasks, single=False), tasks)
    return int(count)


def release_locks(task: BulkTask | int) -> int:
    """Delete every lock held by ``task``; returns how many. Runs in the caller's transaction."""
    task_id = task.pk if isinstance(task, BulkTask) else task
    deleted, _ = RowLock.objects.using(_alias()).filter(task_id=task_id).delete()
    return deleted


def locked_by(model: type[models.Model] | str, pk: Any) -> BulkTask | None:
    """The task holding row ``pk`` of ``model``, or None."""
    model = _model(model)
    lock = (
        RowLock.objects.using(_alias())
        .select_related("task")
        .filter(model_label=model._meta.label_lower, object_pk=lock_key(model, pk))
        .first()
    )
    return lock.task if lock is not None else None


def assert_unlocked(model: type[models.Model] | str, pks: Iterable[Any]) -> None:
    """Raise ``LockConflict`` naming the task(s) when any of rows ``pks`` of ``model`` is locked."""
    model = _model(model)
    keys = list(dict.fromkeys(lock_key(model, pk) for pk in pks))
    if not keys:
        return
    locks = RowLock.objects.using(_alias()).filter(model_label=model._meta.label_lower)
    found = RowLock.objects.none()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        if locks.filter(object_pk__in=chunk).exists():
            found = locks.filter(object_pk__in=keys)
            break
    else:
        return
    rows, tasks = _holders(found)
    raise LockConflict(_conflict_message(model, rows, tasks, single=len(keys) == 1), tasks)


def assert_queryset_unlocked(queryset: models.QuerySet[Any]) -> None:
    """Raise ``LockConflict`` when any row of ``queryset`` is locked: one query (none of the
    model's rows is locked: the selection is not read) or two (some are: are any of these?)."""
    model = queryset.model
    locks = RowLock.objects.using(_alias()).filter(model_label=model._meta.label_lower)
    if not locks.exists():  # nearly always: then the selection's keys need not be read at all
        return
    locks = locks.filter(object_pk__in=key_values(queryset))
    if not locks.exists():
        return
    rows, tasks = _holders(locks)
    raise LockConflict(_conflict_message(model, rows, tasks, single=False), tasks)


@contextlib.contextmanager
def guard_rows(model: type[models.Model] | str, pks: Sequence[Any]) -> Iterator[None]:
    """A transaction for a form edit or delete of rows ``pks`` that no bulk task can interleave.

    First checks the row locks outside any transaction, so a row a task holds is refused at
    once (``LockConflict`` naming the task) instead of after waiting for the database: on
    SQLite the transaction's ``BEGIN IMMEDIATE`` waits up to the connection ``timeout`` while a
    worker's transaction writes. Then takes the rows' database locks (``SELECT ... FOR
    UPDATE``, waiting at most ``LOCK_WAIT`` on PostgreSQL) and checks the row locks again, for
    a task launched in between. A task launched after that waits for this transaction to end
    before its worker writes the rows, so neither write is lost.
    """
    model = _model(model)
    using = router.db_for_write(model)
    assert_unlocked(model, pks)  # before any wait for the database's locks
    with transaction.atomic(using=using), _short_lock_wait(using):
        rows = model._base_manager.using(using).select_for_update().filter(pk__in=list(pks))
        try:
            with transaction.atomic(using=using):
                list(rows.values_list("pk", flat=True))
        except OperationalError as exc:
            if not _is_lock_timeout(exc):
                raise
            holders = [t for t in (locked_by(model, pk) for pk in pks) if t is not None]
            if holders:
                raise LockConflict(
                    _conflict_message(model, len(pks), holders[:1], single=len(pks) == 1), holders[:1]
                ) from None
            raise LockConflict(
                f"This {model._meta.verbose_name} is being changed by another user right now. "
                "Try again in a moment."
            ) from None
        assert_unlocked(model, pks)
        yield


# ----- bulk runs in the request ----------------------------------------------------------------
def _advisory_key(model: type[models.Model]) -> int:
    """The model's advisory-lock key: a stable signed 32-bit hash of its label."""
    key = zlib.crc32(model._meta.label_lower.encode())
    return key - (1 << 32) if key >= 1 << 31 else key


def _in_use_message(model: type[models.Model]) -> str:
    return (
        f"Some of the selected {model._meta.verbose_name_plural} are being changed by someone else "
        "right now (another bulk edit or delete, or a form being saved). Try again when it finishes."
    )


def _lock_selected_rows(queryset: models.QuerySet[Any], using: str, *, for_launch: bool) -> None:
    """Take the database lock of every row of ``queryset`` in primary-key order, without waiting.

    Raises ``LockConflict`` when another transaction holds any of them, leaving the caller's
    transaction to be rolled back (every caller is inside an atomic block that the exception
    leaves). ``for_launch``: ``FOR NO KEY UPDATE`` (a launch's check: it conflicts with a run's
    locks, not with rows merely referenced by foreign keys), else ``FOR UPDATE`` (a run in the
    request, deletes included). One statement; no row is sent back.
    """
    model = queryset.model
    selected = queryset if queryset.query.is_sliced else queryset.order_by()
    rows = model._base_manager.using(using).filter(pk__in=selected.values("pk")).order_by("pk")
    rows = rows.select_for_update(nowait=True, of=("self",), no_key=for_launch).values("pk")
    try:
        sql, params = rows.query.get_compiler(using=using).as_sql()
    except EmptyResultSet:
        return
    try:
        with connections[using].cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM ({sql}) pc_rows", params)
    except OperationalError as exc:
        if not _is_lock_timeout(exc):
            raise
        raise LockConflict(_in_use_message(model)) from None


def _share_advisory_lock(model: type[models.Model], using: str) -> None:
    """The model's advisory lock in shared mode: at once, or after at most ``LOCK_WAIT``."""
    key = [_ADVISORY_SPACE, _advisory_key(model)]
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock_shared(%s, %s)", key)
        if cursor.fetchone()[0]:
            return
    try:  # a launch of the same model is taking its row locks: wait for its commit
        with _short_lock_wait(using), transaction.atomic(using=using), connections[using].cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", key)
    except OperationalError as exc:
        if not _is_lock_timeout(exc):
            raise
        raise LockConflict(_starting_message(model)) from None


@contextlib.contextmanager
def hold_selection(queryset: models.QuerySet[Any]) -> Iterator[None]:
    """The transaction of a bulk run in the request over ``queryset`` (already scoped).

    On PostgreSQL it first takes the model's advisory lock in shared mode (waiting at most
    ``LOCK_WAIT`` for a launch that is locking rows), then every selected row's lock without
    waiting: a run or a launch that holds any of them makes this one raise ``LockConflict``.
    On every database it then refuses rows that a task holds (``LockConflict`` naming it).
    Everything is held until the transaction ends, with the run's writes.
    """
    model = queryset.model
    using = router.db_for_write(model)
    with transaction.atomic(using=using):
        if connections[using].vendor == "postgresql":
            _share_advisory_lock(model, using)
            _lock_selected_rows(queryset, using, for_launch=False)
        assert_queryset_unlocked(queryset)
        yield


def fence_request_runs(queryset: models.QuerySet[Any]) -> None:
    """In a launch's transaction, after its row locks: refuse rows a run in the request holds.

    On PostgreSQL: when the model's advisory lock can be had exclusively, no run in the
    request is under way on the model and any that starts waits for this transaction, then
    sees the new row locks. Otherwise the selected rows are locked without waiting (until this
    transaction ends), which raises ``LockConflict`` when a run in the request holds any of
    them. Elsewhere a no-op: SQLite runs one writer at a time.
    """
    using = router.db_for_write(queryset.model)
    if connections[using].vendor != "postgresql":
        return
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_xact_lock(%s, %s)", [_ADVISORY_SPACE, _advisory_key(queryset.model)]
        )
        (free,) = cursor.fetchone()
    if not free:
        _lock_selected_rows(queryset, using, for_launch=True)
