"""Settings for the real-worker fault tests: tests/settings_worker.py with short time limits.

A dead worker must be detected in seconds, not minutes, so the suite stays fast:
``BULK_TASK_HEARTBEAT_TIMEOUT`` is 3 s, and django-q2's ORM broker hands an unacknowledged
job out again after ``retry`` = 4 s (shorter than ``timeout`` on purpose: the tests want
redeliveries, including one while the first delivery still runs). Two workers, so a
redelivery can land on another process while the first one is busy.
"""

from __future__ import annotations

from tests.settings_worker import *  # noqa: F403
from tests.settings_worker import POWERCRUD_SETTINGS, Q_CLUSTER

POWERCRUD_SETTINGS = {
    **POWERCRUD_SETTINGS,
    "BULK_TASK_HEARTBEAT_TIMEOUT": 3,
    "BULK_TASK_QUEUED_TIMEOUT": 30,
}

Q_CLUSTER = {**Q_CLUSTER, "workers": 2, "timeout": 30, "retry": 4, "max_attempts": 3}
