"""Telling a user that a background run they started has ended.

The next full powercrud page the owner loads shows one toast per run that ended since they
last saw it (``take_notices()``, called by ``CRUDView``), with a link to the run; a run whose
end they watched in the progress modal is marked seen there (``mark_seen()``), so it is not
announced twice. Each ended run is announced once.
"""

from __future__ import annotations

from typing import Any

from django.db import router
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
    unseen = BulkTask.objects.using(using).filter(
        owner=user,
        mode=BulkTask.Mode.ASYNC,
        status__in=BulkTask.FINISHED,
        notified_at__isnull=True,
    )
    runs = list(unseen.order_by("finished_at", "pk")[:MAX_NOTICES])
    if runs:
        BulkTask.objects.using(using).filter(pk__in=[run.pk for run in runs]).update(
            notified_at=timezone.now()
        )
    return [(run, _sentence(run)) for run in runs]


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
