"""The runner behind background jobs (``BULK_RUNNER``): launch and cleanup go through it, so
another runner is one small class; django-q2's is the default."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from powercrud.checks import check_installation
from powercrud.jobs import runners
from powercrud.jobs.launch import JOB_FUNCTION, LaunchError
from powercrud.jobs.monitor import fail_stale_tasks
from powercrud.models import BulkTask, RowLock
from tests.async_helpers import RecordingRunner, launch_books, make_books
from tests.testapp.models import Book

pytestmark = pytest.mark.django_db

HERE = "tests.test_runners"


class DownRunner(RecordingRunner):
    def enqueue(self, job: str, *args: Any, name: str) -> str:
        raise ConnectionRefusedError("broker down")


def using(runner: str) -> Any:
    return override_settings(
        POWERCRUD_SETTINGS={**getattr(settings, "POWERCRUD_SETTINGS", {}), "BULK_RUNNER": f"{HERE}.{runner}"}
    )


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    RecordingRunner.jobs = []
    RecordingRunner.still_waiting = None
    yield
    RecordingRunner.still_waiting = None  # the class is shared with other test modules


def test_a_launch_queues_its_job_through_the_runner_after_commit(
    django_capture_on_commit_callbacks: Any, admin_user: Any
) -> None:
    make_books(3)
    with using("RecordingRunner"), django_capture_on_commit_callbacks(execute=True):
        task = launch_books(Book.objects.all(), user=admin_user)
        assert RecordingRunner.jobs == []  # not before the commit
    assert RecordingRunner.jobs == [(JOB_FUNCTION, (task.pk,), task.task_name)]
    task.refresh_from_db()
    assert (task.status, task.q_task_id) == (BulkTask.Status.QUEUED, "job-1")


def test_a_runner_that_cannot_queue_fails_the_task_and_frees_its_rows(
    django_capture_on_commit_callbacks: Any, admin_user: Any
) -> None:
    make_books(3)
    with (
        using("DownRunner"),
        pytest.raises(LaunchError),
        django_capture_on_commit_callbacks(execute=True),
    ):
        launch_books(Book.objects.all(), user=admin_user)
    task = BulkTask.objects.get()
    assert task.status == BulkTask.Status.FAILED
    assert not RowLock.objects.exists()


@pytest.mark.parametrize(("waiting", "ends"), [(set(), True), (None, True), ("self", False)])
def test_cleanup_asks_the_runner_which_queued_jobs_still_wait(
    django_capture_on_commit_callbacks: Any, admin_user: Any, waiting: Any, ends: bool
) -> None:
    """A queued run older than BULK_TASK_QUEUED_TIMEOUT ends when its job no longer waits; a
    runner that cannot tell (None) leaves the judgement to the run's age alone."""
    make_books(2)
    with using("RecordingRunner"), django_capture_on_commit_callbacks(execute=True):
        task = launch_books(Book.objects.all(), user=admin_user)
    BulkTask.objects.filter(pk=task.pk).update(created_at=timezone.now() - datetime.timedelta(hours=2))
    RecordingRunner.still_waiting = {task.task_name} if waiting == "self" else waiting
    with using("RecordingRunner"):
        ended = fail_stale_tasks(queued_older_than_seconds=3600)
    assert (task.pk in ended) is ends
    task.refresh_from_db()
    assert (task.status == BulkTask.Status.FAILED) is ends


def test_the_default_runner_is_django_q2() -> None:
    assert isinstance(runners.runner(), runners.DjangoQRunner)
    assert [e for e in check_installation() if e.id == "powercrud.E020"] == []


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("nowhere.Runner", "does not import"),
        ("powercrud.jobs.runners.Primitive", "is not a class with an enqueue() method"),
    ],
)
def test_a_runner_path_that_cannot_work_is_check_e020(path: str, says: str) -> None:
    with override_settings(
        POWERCRUD_SETTINGS={**getattr(settings, "POWERCRUD_SETTINGS", {}), "BULK_RUNNER": path}
    ):
        errors = [e for e in check_installation() if e.id == "powercrud.E020"]
    assert len(errors) == 1 and says in errors[0].msg
