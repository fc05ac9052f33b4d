"""Test settings: the demo project's settings on a throw-away database.

POWERCRUD_TEST_DB=postgres runs the suite on PostgreSQL (127.0.0.1:5432, database ``test``).
"""

from __future__ import annotations

import os

from sample.settings import *  # noqa: F403
from sample.settings import sqlite_database

SECRET_KEY = "tests"
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if os.environ.get("POWERCRUD_TEST_DB") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("PGDATABASE", "test"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "TEST": {"NAME": os.environ.get("POWERCRUD_TEST_DB_NAME", "test_powercrud")},
        }
    }
else:
    DATABASES = {"default": sqlite_database(":memory:")}

STORAGES = {
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
LOGGING = {"version": 1, "disable_existing_loggers": False}

# Tests run on powercrud's documented defaults, not the demo's choices.
POWERCRUD_SETTINGS = {}
