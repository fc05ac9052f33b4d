"""Serve one powercrud screen from an installed wheel: the last step of the release phase.

Run by ``python3 dev.py test`` as ``<clean venv>/bin/python smoke.py`` in a temporary copy of
this folder. It proves the wheel ships its templates, static files and migrations, and that
its declared dependencies are enough to run. Exits non-zero with a message on any failure.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ["DJANGO_SETTINGS_MODULE"] = "smoke_settings"

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.staticfiles import finders  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402

import powercrud  # noqa: E402

STATIC_FILES = [
    "powercrud/powercrud.css",
    "powercrud/powercrud.js",
    "powercrud/vendor/htmx.min.js",
    "powercrud/favicon.svg",
]
PAGE_MUST_CONTAIN = [
    'class="pc pc-tasks"',
    'href="/static/powercrud/powercrud.css"',
    'href="/static/powercrud/favicon.svg"',
]


def fail(message: str) -> None:
    sys.exit(f"release smoke: {message}")


def check_installed_copy() -> None:
    """powercrud must come from the virtual environment, not from a checkout on sys.path."""
    location = Path(powercrud.__file__).resolve()
    if Path(sys.prefix).resolve() not in location.parents:
        fail(f"powercrud was imported from {location}, not from the wheel installed in {sys.prefix}")
    print(f"  powercrud imported from {location.parent} (Django {django.get_version()})")


def check_static_files() -> None:
    for name in STATIC_FILES:
        if not finders.find(name):
            fail(f"the staticfiles finders do not find {name}")
    print(f"  static files found: {', '.join(STATIC_FILES)}")


def check_task_list() -> None:
    user = get_user_model().objects.create_superuser("smoke", "smoke@example.com", "smoke")
    client = Client()
    client.force_login(user)
    index = client.get("/powercrud/")
    if index.status_code != 302 or index["Location"] != reverse("powercrud:tasks-list"):
        fail(f"GET /powercrud/ gave {index.status_code} {index.get('Location')!r}")
    response = client.get(reverse("powercrud:tasks-list"))
    if response.status_code != 200:
        fail(f"GET the task list gave {response.status_code}")
    page = response.content.decode()
    missing = [snippet for snippet in PAGE_MUST_CONTAIN if snippet not in page]
    if missing:
        fail(f"the task list page lacks {missing}")
    print(f"  GET {reverse('powercrud:tasks-list')} as a superuser: 200, {len(page)} characters")


def main() -> None:
    check_installed_copy()
    call_command("migrate", verbosity=0)
    call_command("check", fail_level="WARNING")
    check_static_files()
    check_task_list()
    print("release smoke: ok")


if __name__ == "__main__":
    main()
