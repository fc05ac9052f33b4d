"""What runs powercrud's background jobs: one small interface, django-q2 behind it.

A ``Runner`` queues a job by the dotted path of its function, with primitive arguments (the
caller does so after its transaction commits; ``launch.py`` registers that). Nothing else: the
run record (``BulkTask``) stays the one source of truth for status, progress, cancel and the
heartbeat, whichever runner executes the job. The setting ``BULK_RUNNER`` names the class
(default ``DjangoQRunner``); a second runner, for example over Django's ``django.tasks``, is
one small class with the same two methods.
"""

from __future__ import annotations

import functools
from typing import Protocol

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from powercrud.conf import settings as pc_settings

__all__ = ["DjangoQRunner", "Runner", "check_runner_path", "runner"]

Primitive = int | str | float | bool | None


class Runner(Protocol):
    def enqueue(self, job: str, *args: Primitive, name: str) -> str:
        """Queue the function at dotted path ``job`` with ``args``; returns the runner's id for
        the job. Raises whatever the broker raises when it cannot take the job."""
        ...

    def waiting(self) -> set[str] | None:
        """The ``name`` of every job still waiting to start, or None when the runner cannot
        tell (cleanup then judges a queued run by its age alone)."""
        ...


class DjangoQRunner:
    """django-q2: ``async_task()`` on whatever broker ``Q_CLUSTER`` configures."""

    def enqueue(self, job: str, *args: Primitive, name: str) -> str:
        from django_q.tasks import async_task

        return str(async_task(job, *args, task_name=name) or "")

    def waiting(self) -> set[str] | None:
        """The ORM broker's queue; other brokers cannot be read without taking jobs off them."""
        from django_q.conf import Conf
        from django_q.models import OrmQ

        if not Conf.ORM:
            return None
        return {str(job.name()) for job in OrmQ.objects.using(Conf.ORM).all()}


@functools.cache
def _runner_class(path: str) -> type[Runner]:
    try:
        found = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"BULK_RUNNER {path!r} does not import: {exc}") from exc
    if not (isinstance(found, type) and callable(getattr(found, "enqueue", None))):
        raise ImproperlyConfigured(f"BULK_RUNNER {path!r} is not a class with an enqueue() method.")
    return found


def runner() -> Runner:
    """The runner ``BULK_RUNNER`` names."""
    return _runner_class(pc_settings.BULK_RUNNER)()


def check_runner_path(path: str) -> str | None:
    """Why ``path`` cannot be the runner, as text; None when it can."""
    try:
        _runner_class(path)
    except ImproperlyConfigured as exc:
        return str(exc)
    return None
