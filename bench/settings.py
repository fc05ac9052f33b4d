"""Benchmark settings: the demo project on a throw-away SQLite file named by ``POWERCRUD_BENCH_DB``."""

from __future__ import annotations

import copy
import os
from pathlib import Path

from sample.settings import *  # noqa: F403
from sample.settings import TEMPLATES as SAMPLE_TEMPLATES
from sample.settings import sqlite_database

DEBUG = False
SECRET_KEY = "bench-only"
ROOT_URLCONF = "bench.urls"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DATABASES = {"default": sqlite_database(os.environ["POWERCRUD_BENCH_DB"])}
TEMPLATES = copy.deepcopy(SAMPLE_TEMPLATES)
TEMPLATES[0]["DIRS"] = [Path(__file__).resolve().parent / "templates"]
STORAGES = {"staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
LOGGING = {"version": 1, "disable_existing_loggers": False}
