"""The production guide's examples are meant to be copied: they must parse and agree with
what the guide says about them (retry above timeout, one queue name, the cleanup function
importable)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from django.utils.module_loading import import_string

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "guides" / "production.md"


def _blocks(language: str) -> list[str]:
    text = GUIDE.read_text(encoding="utf-8")
    return [body for lang, body in re.findall(r"```(\w*)\n(.*?)```", text, re.S) if lang == language]


def _settings_example() -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(_blocks("python")[0], str(GUIDE), "exec"), namespace)  # noqa: S102 - our own docs
    return namespace


def test_the_settings_example_keeps_retry_above_timeout_and_one_attempt() -> None:
    q_cluster = _settings_example()["Q_CLUSTER"]
    assert q_cluster["retry"] > q_cluster["timeout"]
    assert q_cluster["max_attempts"] == 1
    assert "orm" not in q_cluster and q_cluster["redis"].startswith("redis://")


def test_the_settings_example_uses_only_known_powercrud_settings() -> None:
    from powercrud.conf import DEFAULTS

    assert set(_settings_example()["POWERCRUD_SETTINGS"]) <= set(DEFAULTS)


def test_the_cleanup_schedule_names_a_function_that_exists() -> None:
    schedule = next(body for body in _blocks("python") if "Schedule.objects" in body)
    path = re.search(r'"func": "([\w.]+)"', schedule)
    assert path is not None
    assert callable(import_string(path.group(1)))


def test_the_compose_file_runs_web_and_workers_on_one_database_and_broker() -> None:
    compose = yaml.safe_load(_blocks("yaml")[0])
    services = compose["services"]
    assert {"db", "redis", "web", "worker", "migrate"} <= set(services)
    assert services["worker"]["command"].endswith("manage.py qcluster")
    assert services["web"]["environment"] == services["worker"]["environment"]
    assert services["worker"]["environment"]["REDIS_URL"].startswith("redis://redis:")


def test_the_procfile_runs_migrations_before_release_and_a_worker() -> None:
    procfile = next(body for body in _blocks("") if body.startswith("release:"))
    kinds = dict(line.split(": ", 1) for line in procfile.strip().splitlines())
    assert kinds["worker"] == "python manage.py qcluster"
    assert "migrate" in kinds["release"]
