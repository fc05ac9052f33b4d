"""Settings for the async browser test (test_async_bulk.py): a real ``runserver`` and ``qcluster``.

Both processes, and the commands that prepare the data, use this module with the same
``POWERCRUD_LIVE_DIR``, so they share one file-based SQLite database in WAL mode (a file, not
``:memory:``: live progress of a running task lives in a sidecar file next to it,
``<database>-powercrud-live``, which the web process reads while the worker's transaction is
open). The broker is django-q2's ORM broker on that database. ``POWERCRUD_LIVE_CLUSTER``
names the cluster so parallel runs never share a queue.
"""

from __future__ import annotations

import os
from pathlib import Path

from sample.settings import *  # noqa: F403
from sample.settings import sqlite_database

SECRET_KEY = "tests-live"
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LIVE_DIR = Path(os.environ.get("POWERCRUD_LIVE_DIR", "/tmp/powercrud-live"))

DATABASES = {"default": sqlite_database(LIVE_DIR / "live.sqlite3")}

Q_CLUSTER = {
    "name": os.environ.get("POWERCRUD_LIVE_CLUSTER", "powercrud-live"),
    "orm": "default",
    "workers": 1,
    "timeout": 60,
    "retry": 90,
    "max_attempts": 1,
    "catch_up": False,
    "poll": 0.1,
    "ack_failures": True,
}

# Small batches, so a bulk edit of the seeded books takes long enough to watch it move.
POWERCRUD_SETTINGS = {
    "TASK_DASHBOARD_BASE_TEMPLATE": "sample/base.html",
    "BULK_BATCH_SIZE": int(os.environ.get("POWERCRUD_LIVE_BATCH_SIZE", "100")),
}

STORAGES = {"staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "powercrud": {"handlers": ["console"], "level": "INFO"},
        "django-q": {"handlers": ["console"], "level": "INFO"},
    },
}
