"""The ``Shelf`` receiver: its presence makes powercrud save shelves one by one."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from tests.testapp.models import Shelf, ShelfEvent


@receiver(post_save, sender=Shelf)
def record_shelf_change(sender: type[Shelf], instance: Shelf, created: bool, **kwargs: Any) -> None:
    verb = "created" if created else "saved"
    ShelfEvent.objects.create(shelf=instance, message=f"{instance.name} {verb}")
