"""Prepare the demo: users, permissions and (once) sample data."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from sample.models import Book

DEMO_USERS = {
    "admin": "superuser: every screen and action",
    "viewer": "read only: lists and details, no buttons that change data",
}


class Command(BaseCommand):
    help = "Create the demo users (admin/admin, viewer/viewer) and seed books if there are none."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--books", type=int, default=2000)

    def handle(self, *args: Any, books: int, **options: Any) -> None:
        user_model = get_user_model()
        admin, _ = user_model.objects.get_or_create(
            username="admin", defaults={"is_staff": True, "is_superuser": True}
        )
        admin.set_password("admin")
        admin.save()
        viewer, _ = user_model.objects.get_or_create(username="viewer")
        viewer.set_password("viewer")
        viewer.save()
        viewer.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
        if not Book.objects.exists():
            call_command("seed_books", books=books, stdout=self.stdout)
        for name, role in DEMO_USERS.items():
            self.stdout.write(f"  login: {name} / {name}  ({role})")
