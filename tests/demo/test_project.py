"""The demo project itself: its views pass powercrud's checks, ``manage.py check`` and
``migrate`` work with its settings on a fresh clone, and its base template links the
favicon and the task dashboard."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from powercrud.checks import check_view
from sample.settings import sqlite_database
from sample.views import ALL_VIEWS

pytestmark = [pytest.mark.demo, pytest.mark.urls("sample.urls")]

REPO = Path(__file__).resolve().parents[2]
FAVICON_LINK = '<link rel="icon" type="image/svg+xml" href="/static/powercrud/favicon.svg">'


def test_the_demo_views_pass_the_system_checks():
    for view in ALL_VIEWS:
        assert check_view(view) == [], view


def test_the_demo_project_passes_manage_py_check(tmp_path: Path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "sample.settings", "POWERCRUD_DATA_DIR": str(tmp_path)}
    env.pop("POWERCRUD_DB", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--fail-level", "WARNING"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


@pytest.mark.django_db
def test_the_demo_base_template_links_the_favicon(admin_client: Client):
    page = admin_client.get(reverse("sample:book-list")).content.decode()
    assert 'class="demo-nav"' in page  # the demo's own base template, not powercrud's
    assert FAVICON_LINK in page
    assert FAVICON_LINK in Client().get(reverse("login")).content.decode()


@pytest.mark.django_db
def test_the_demo_navigation_links_the_dashboard(admin_client: Client):
    html = admin_client.get(reverse("sample:book-list")).content.decode()
    assert f'<a href="{reverse("powercrud:tasks-list")}">Tasks</a>' in html


# ----- a fresh clone -------------------------------------------------------------------------


def test_sqlite_database_creates_its_folder(tmp_path: Path):
    path = tmp_path / "not" / "there" / "demo.sqlite3"
    assert sqlite_database(path)["NAME"] == path
    assert path.parent.is_dir()


def test_an_in_memory_database_creates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    sqlite_database(":memory:")
    assert list(tmp_path.iterdir()) == []


def test_migrate_works_on_a_fresh_clone(tmp_path: Path):
    """``manage.py migrate`` with the demo settings and a data folder that does not exist yet."""
    data_dir = tmp_path / "fresh" / "db"
    env = {k: v for k, v in os.environ.items() if k not in ("POWERCRUD_DB", "DJANGO_SETTINGS_MODULE")}
    env["POWERCRUD_DATA_DIR"] = str(data_dir)
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (data_dir / "demo.sqlite3").stat().st_size > 0
