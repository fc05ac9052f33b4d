"""Fill the catalogue with realistic data: ``manage.py seed_books --books 100000``."""

from __future__ import annotations

import datetime
import random
import sys
import time
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from sample.models import Asset, Author, Book, Genre, Shelf, Tag

GENRES = [
    "Biography",
    "Children",
    "Classics",
    "Crime",
    "Fantasy",
    "History",
    "Horror",
    "Poetry",
    "Romance",
    "Science",
    "Science fiction",
    "Travel",
]
TAGS = [
    "award-winner",
    "bestseller",
    "book-club",
    "debut",
    "illustrated",
    "large-print",
    "series",
    "signed",
    "staff-pick",
    "translated",
    "first-edition",
    "audiobook",
]
FIRST = [
    "Ada",
    "Ben",
    "Chloe",
    "Dmitri",
    "Elena",
    "Farah",
    "George",
    "Hana",
    "Ivan",
    "Julia",
    "Kofi",
    "Lena",
    "Marco",
    "Nadia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sami",
    "Tomas",
]
LAST = [
    "Adams",
    "Baker",
    "Chen",
    "Dubois",
    "Evans",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Rossi",
    "Silva",
]
COUNTRIES = [
    "Brazil",
    "Canada",
    "France",
    "Germany",
    "India",
    "Italy",
    "Japan",
    "Kenya",
    "Nigeria",
    "Poland",
    "Spain",
    "United Kingdom",
    "United States",
]
WORDS = [
    "Silent",
    "River",
    "Glass",
    "Winter",
    "Garden",
    "Empire",
    "Shadow",
    "Letters",
    "North",
    "Harbour",
    "Clockwork",
    "Orchard",
    "Salt",
    "Lantern",
    "Atlas",
    "Ember",
    "Quiet",
    "City",
    "Paper",
    "Storm",
    "Golden",
    "Island",
    "Last",
    "Night",
    "Road",
    "Stone",
    "Wild",
    "House",
]
STATUSES = [s for s, _ in Book.Status.choices]
STATUS_WEIGHTS = [15, 65, 12, 8]


class Command(BaseCommand):
    help = "Create sample authors, genres, tags and N books (fast enough for 1,000,000)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--books", type=int, default=500, help="How many books to add.")
        parser.add_argument("--seed", type=int, default=7, help="Random seed (same data each run).")
        parser.add_argument("--batch", type=int, default=5000, help="Rows per INSERT batch.")
        parser.add_argument("--quiet", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, books: int, seed: int, batch: int, quiet: bool, **options: Any) -> None:
        rng = random.Random(seed)
        started = time.perf_counter()
        genres = self._ensure(Genre, GENRES)
        tags = self._ensure(Tag, TAGS)
        authors = self._authors(rng, max(20, min(5000, books // 200)))
        self._extras(rng)
        tag_ids = [t.pk for t in tags]
        genre_ids = [g.pk for g in genres]
        author_ids = [a.pk for a in authors]
        through = Book.tags.through
        first_day = datetime.date(1950, 1, 1).toordinal()
        span = datetime.date(2026, 1, 1).toordinal() - first_day
        done = 0
        while done < books:
            size = min(batch, books - done)
            rows = []
            for i in range(done, done + size):
                title = " ".join(rng.sample(WORDS, rng.choice((2, 3, 3, 4))))
                rows.append(
                    Book(
                        title=f"The {title}" if i % 3 == 0 else title,
                        author_id=rng.choice(author_ids),
                        genre_id=rng.choice(genre_ids) if i % 17 else None,
                        status=rng.choices(STATUSES, STATUS_WEIGHTS)[0],
                        price=Decimal(rng.randrange(299, 8999)) / 100,
                        published_date=datetime.date.fromordinal(first_day + rng.randrange(span)),
                        pages=rng.randrange(48, 1200),
                        is_available=rng.random() > 0.2,
                    )
                )
            with transaction.atomic():
                created = Book.objects.bulk_create(rows, batch_size=batch)
                links = [
                    through(book_id=book.pk, tag_id=tag_id)
                    for book in created
                    for tag_id in rng.sample(tag_ids, rng.choice((0, 1, 1, 2, 3)))
                ]
                through.objects.bulk_create(links, batch_size=batch)
            done += size
            if not quiet:
                self._progress(done, books, started)
        if not quiet:
            sys.stderr.write("\n")
        elapsed = time.perf_counter() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"Added {books:,} books in {elapsed:.1f}s ({Book.objects.count():,} in total)."
            )
        )

    def _ensure(self, model: Any, names: list[str]) -> list[Any]:
        existing = {obj.name: obj for obj in model.objects.all()}
        model.objects.bulk_create([model(name=n) for n in names if n not in existing])
        return list(model.objects.all())

    def _authors(self, rng: random.Random, count: int) -> list[Author]:
        missing = count - Author.objects.count()
        if missing > 0:
            Author.objects.bulk_create(
                Author(
                    name=f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                    country=rng.choice(COUNTRIES),
                    birth_year=rng.randrange(1900, 2000),
                )
                for _ in range(missing)
            )
        return list(Author.objects.only("pk"))

    def _extras(self, rng: random.Random) -> None:
        if not Shelf.objects.exists():
            Shelf.objects.bulk_create(
                Shelf(name=f"Shelf {c}{n}", location=f"Aisle {c}", capacity=rng.randrange(20, 80))
                for c in "ABCD"
                for n in range(1, 6)
            )
        if not Asset.objects.exists():
            Asset.objects.bulk_create(
                Asset(code=f"SCN-{n:04d}", description=f"Barcode scanner #{n}", in_service=n % 5 != 0)
                for n in range(1, 41)
            )

    def _progress(self, done: int, total: int, started: float) -> None:
        width = 30
        filled = int(width * done / total)
        rate = done / max(time.perf_counter() - started, 1e-6)
        sys.stderr.write(
            f"\r  books [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,}  {rate:,.0f}/s"
        )
        sys.stderr.flush()
