"""Telling a user that a background run they started has ended.

The next full powercrud page the owner loads shows one toast per run that ended since they
last saw it (``take_notices()``, called by ``CRUDView``), with a link to the run; a run whose
end they watched in the progress modal is marked seen there (``mark_seen()``), so it is not
announced twice. Each ended run is announced once.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, router
from django.utils import timezone

from powercrud.bulk import messages
from powercrud.models import BulkTask

__all__ = ["MAX_NOTICES", "mark_seen", "take_notices"]

MAX_NOTICES = 5
"""At most this many runs are announced on one page; the rest on the next ones."""


def take_notices(user: Any) -> list[tuple[BulkTask, str]]:
    """``(run, sentence)`` for the owner's background runs that ended unseen; marks them seen."""
    if not getattr(user, "is_authenticated", False):
        return []
    using = router.db_for_write(BulkTask)
    pks = _unseen(using, user.pk)
    if not pks:  # nearly every page: one prepared statement, no model instances
        return []
    runs = list(BulkTask.objects.using(using).filter(pk__in=pks).order_by("finished_at", "pk"))
    BulkTask.objects.using(using).filter(pk__in=pks).update(notified_at=timezone.now())
    return [(run, _sentence(run)) for run in runs]


_OWNER = -7_000_000_001
"""A stand-in owner id, to find the owner's place among the unseen-runs query's parameters."""

_UNSEEN_SQL: dict[str, tuple[str, tuple[Any, ...], int]] = {}


def _unseen(using: str, owner_id: Any) -> list[Any]:
    """The keys of ``owner_id``'s first ``MAX_NOTICES`` unseen ended background runs.

    Every full page asks this, for most users with no answer: building and compiling the
    query through the ORM cost about 30 times what the database takes to answer it, so it is
    compiled once per database and only the owner's id changes.
    """
    if using not in _UNSEEN_SQL:
        query = (
            BulkTask.objects.using(using)
            .filter(
                owner_id=_OWNER,
                mode=BulkTask.Mode.ASYNC,
                status__in=BulkTask.FINISHED,
                notified_at__isnull=True,
            )
            .order_by("finished_at", "pk")
            .values_list("pk", flat=True)[:MAX_NOTICES]
        ).query
        sql, params = query.get_compiler(using).as_sql()
        _UNSEEN_SQL[using] = (sql, tuple(params), list(params).index(_OWNER))
    sql, params, owner_at = _UNSEEN_SQL[using]
    values = list(params)
    values[owner_at] = owner_id
    with connections[using].cursor() as cursor:
        cursor.execute(sql, values)
        return [row[0] for row in cursor.fetchall()]


def mark_seen(run: BulkTask, user: Any) -> None:
    """The owner watched ``run`` end (its progress poll): no toast for it later."""
    if run.is_finished and run.owner_id is not None and run.owner_id == getattr(user, "pk", None):
        BulkTask.objects.filter(pk=run.pk, notified_at__isnull=True).update(notified_at=timezone.now())


def _sentence(run: BulkTask) -> str:
    return messages.run_ended(
        run.pk,
        str(run.get_kind_display()),
        check=run.dry_run,
        status=str(run.get_status_display()).lower(),
        outcome=run.message,
    )
