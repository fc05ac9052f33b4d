"""Settings for powercrud's test suite: the package and its test app (``tests.testapp``).

SQLite in memory by default; ``POWERCRUD_TEST_DB=postgres`` runs the suite on PostgreSQL
(``PGHOST``/``PGPORT``/``PGUSER``, default 127.0.0.1:5432 as ``postgres``; the test database is
``POWERCRUD_TEST_DB_NAME``, default ``test_powercrud``). Bulk tasks queue on django-q2's ORM
broker; the tests that start a real worker use ``tests/settings_worker.py`` instead (where
``POWERCRUD_TEST_REDIS`` switches the broker to Redis).

The demo app (``sample``) is installed only because the demo's own tests (marked ``demo``) run
in the same session with their own URLconf; the package's tests never import it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import django

SECRET_KEY = "tests"
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", "testserver"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_filters",
    "django_q",
    "powercrud",
    "tests.testapp",
    "sample",  # for the demo's tests only
]
if django.VERSION < (6, 0):
    # Django 6 has template partials built in; before it, powercrud needs the package.
    INSTALLED_APPS.insert(INSTALLED_APPS.index("powercrud"), "template_partials")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "tests.testapp.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]


def sqlite_database(path: Path | str) -> dict[str, object]:
    """SQLite as powercrud expects it when a web process and a worker write the same file:
    WAL journal, ``BEGIN IMMEDIATE`` transactions (a writer waits for the lock up front
    instead of failing mid-transaction) and a 20 s busy timeout. A file database gets its
    folder created."""
    if str(path) != ":memory:" and not str(path).startswith("file:"):
        with contextlib.suppress(OSError):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


DATABASES: dict[str, dict[str, object]]
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

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS: list[dict[str, str]] = []
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STORAGES = {
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

Q_CLUSTER = {
    "name": "powercrud-tests",
    "orm": "default",
    "workers": 1,
    "timeout": 600,
    "retry": 900,
    "max_attempts": 1,
    "catch_up": False,
    "poll": 0.2,
}

# Tests run on powercrud's documented defaults.
POWERCRUD_SETTINGS: dict[str, object] = {}

LOGGING = {"version": 1, "disable_existing_loggers": False}
