"""Settings for ``python -m bench.bulk_edit``: the demo project on a throw-away database.

``POWERCRUD_BENCH_BULK_ENGINE`` is ``sqlite`` (``POWERCRUD_BENCH_BULK_DB`` names the file) or
``postgres`` (``POWERCRUD_BENCH_BULK_DB`` names the database on ``PGHOST``:``PGPORT``).
"""

from __future__ import annotations

import os

from sample.settings import *  # noqa: F403
from sample.settings import sqlite_database

DEBUG = False
SECRET_KEY = "bench-only"
ROOT_URLCONF = "bench.bulk_urls"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {"staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
LOGGING = {"version": 1, "disable_existing_loggers": False}

if os.environ.get("POWERCRUD_BENCH_BULK_ENGINE") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ["POWERCRUD_BENCH_BULK_DB"],
            "USER": os.environ.get("PGUSER", "postgres"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
        }
    }
else:
    DATABASES = {"default": sqlite_database(os.environ["POWERCRUD_BENCH_BULK_DB"])}
