"""The test app's models: the field shapes powercrud's views, bulk services and checks handle."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=200)
    country = models.CharField(max_length=100, blank=True)
    birth_year = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def display_name(self) -> str:
        """A property (not a field), for the views' ``properties`` columns."""
        return f"{self.name} ({self.country})" if self.country else self.name


class Genre(models.Model):
    name = models.CharField(max_length=100, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Book(models.Model):
    """Every kind of bulk-editable field: a protected and a nullable foreign key, choices, a
    validated decimal, a date, a boolean with a verbose name, a many-to-many."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"
        OUT_OF_PRINT = "out_of_print", "Out of print"
        ARCHIVED = "archived", "Archived"

    title = models.CharField(max_length=200, db_index=True)
    author = models.ForeignKey(Author, on_delete=models.PROTECT, related_name="books")
    genre = models.ForeignKey(Genre, on_delete=models.SET_NULL, null=True, blank=True, related_name="books")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    price = models.DecimalField(max_digits=8, decimal_places=2, validators=[MinValueValidator(0)])
    published_date = models.DateField(null=True, blank=True)
    pages = models.PositiveIntegerField(null=True, blank=True)
    is_available = models.BooleanField("available", default=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="books")

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title

    @property
    def price_band(self) -> str:
        if self.price is None:
            return ""
        if self.price < 10:
            return "Budget"
        if self.price < 30:
            return "Standard"
        return "Premium"


class Shelf(models.Model):
    """A ``post_save`` receiver (signals.py) and a ``clean()`` rule: the per-object write path."""

    name = models.CharField(max_length=100)
    location = models.CharField(max_length=100, blank=True)
    capacity = models.PositiveIntegerField(default=50)
    is_full = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "shelves"

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.capacity == 0 and not self.is_full:
            raise ValidationError({"capacity": "A shelf with no capacity must be marked full."})


class ShelfEvent(models.Model):
    """One row per ``Shelf`` save, written by the receiver: proof that signals fired."""

    shelf = models.ForeignKey(Shelf, on_delete=models.CASCADE, related_name="events")
    message = models.CharField(max_length=200)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.message


class Asset(models.Model):
    """A UUID primary key."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.CharField(max_length=30, unique=True)
    description = models.CharField(max_length=200, blank=True)
    in_service = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class BulkAudit(models.Model):
    """One row per applied bulk edit, written by ``services.BookBulkUpdateService`` in sync
    and async runs alike: the tests count applied runs with it."""

    created = models.DateTimeField(auto_now_add=True)
    mode = models.CharField(max_length=10)
    task_name = models.CharField("task", max_length=100, blank=True)
    user_id = models.CharField("user id", max_length=64, blank=True)
    model_label = models.CharField("model", max_length=100)
    fields = models.CharField("fields changed", max_length=200)
    rows = models.PositiveIntegerField("rows written")
    failed = models.PositiveIntegerField("rows failed")

    class Meta:
        ordering = ["-created"]
        verbose_name = "bulk audit entry"
        verbose_name_plural = "bulk audit"

    def __str__(self) -> str:
        return f"{self.mode} bulk edit of {self.rows} {self.model_label} rows"


class Edition(models.Model):
    """A unique-together key (code + language): what an import upserts on."""

    code = models.CharField(max_length=30)
    language = models.CharField(max_length=10)
    title = models.CharField(max_length=200)
    copies = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["code", "language"]
        unique_together = [("code", "language")]

    def __str__(self) -> str:
        return f"{self.code} ({self.language})"
