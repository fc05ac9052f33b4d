"""Settings shared by a test and the real ``qcluster`` process it starts (test_worker_process.py).

Both processes use the same database: a file-based SQLite database in WAL mode in
``POWERCRUD_WORKER_DIR`` (default), or the PostgreSQL database ``POWERCRUD_WORKER_DB`` when
``POWERCRUD_TEST_DB=postgres``. The broker is django-q2's ORM broker, or Redis when
``POWERCRUD_TEST_REDIS`` holds a URL. ``POWERCRUD_WORKER_CLUSTER`` names the cluster so
parallel runs never share a queue.

Everything else comes from tests/settings.py (the test app, its URLconf), without the demo app:
the worker tests exercise the package, not the demo.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS, sqlite_database

SECRET_KEY = "tests-worker"
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "sample"]
WORK_DIR = Path(os.environ.get("POWERCRUD_WORKER_DIR", "/tmp/powercrud-worker"))

if os.environ.get("POWERCRUD_TEST_DB") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("POWERCRUD_WORKER_DB", "powercrud_worker"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
        }
    }
else:
    DATABASES = {"default": sqlite_database(WORK_DIR / "worker.sqlite3")}

Q_CLUSTER = {
    "name": os.environ.get("POWERCRUD_WORKER_CLUSTER", "powercrud-test-worker"),
    "workers": 1,
    "timeout": 60,
    "retry": 90,
    "max_attempts": 1,
    "catch_up": False,
    "poll": 0.1,
    "ack_failures": True,
}
if os.environ.get("POWERCRUD_TEST_REDIS"):
    Q_CLUSTER["redis"] = os.environ["POWERCRUD_TEST_REDIS"]
else:
    Q_CLUSTER["orm"] = "default"

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
