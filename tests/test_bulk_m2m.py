"""``powercrud.bulk.m2m``: many-to-many edits (add, remove, replace) written set-based on the
through table, through the service and function by function."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, models
from django.db.models import QuerySet
from django.db.models.signals import m2m_changed
from django.test.utils import CaptureQueriesContext, isolate_apps

from powercrud.bulk import BulkInputError, M2MChange
from powercrud.bulk.m2m import M2MEdit, m2m_changes, read_links, resolve_edit, write_links
from tests.service_helpers import book_tags, update
from tests.testapp.models import Author, Book, Tag

THROUGH = Book.tags.through


def edit(op: str, *tags: Tag) -> M2MEdit:
    """The resolved edit of ``Book.tags`` for ``op`` with ``tags``."""
    return resolve_edit(Book, "tags", M2MChange(op=op, ids=tuple(t.pk for t in tags)), "default")  # type: ignore[arg-type]


# ----- through the service --------------------------------------------------------------------------


@pytest.mark.django_db
def test_m2m_add_keeps_existing_links_and_never_duplicates(shop: dict[str, Any]) -> None:
    books, tags = shop["books"], shop["tags"]
    result = update(
        Book.objects.filter(pk__in=[b.pk for b in books[:3]]),
        {"tags": {"op": "add", "ids": [tags[0].pk, tags[1].pk]}},
    )
    assert result.success
    assert result.changed == 2  # books[1] already had both tags
    assert book_tags() == {
        (books[0].pk, tags[0].pk),
        (books[0].pk, tags[1].pk),
        (books[1].pk, tags[0].pk),
        (books[1].pk, tags[1].pk),
        (books[2].pk, tags[0].pk),
        (books[2].pk, tags[1].pk),
    }
    assert Book.tags.through.objects.count() == 6


@pytest.mark.django_db
def test_m2m_remove(shop: dict[str, Any]) -> None:
    books, tags = shop["books"], shop["tags"]
    result = update(Book.objects.all(), {"tags": {"op": "remove", "ids": [tags[0].pk]}})
    assert (result.success, result.changed) == (True, 2)
    assert book_tags() == {(books[1].pk, tags[1].pk)}


@pytest.mark.django_db
def test_m2m_replace(shop: dict[str, Any]) -> None:
    books, tags = shop["books"], shop["tags"]
    selected = Book.objects.filter(pk__in=[books[0].pk, books[1].pk, books[2].pk])
    result = update(selected, {"tags": {"op": "replace", "ids": [tags[1].pk, tags[2].pk]}})
    assert (result.success, result.changed) == (True, 3)
    assert book_tags() == {(b.pk, t.pk) for b in books[:3] for t in tags[1:]}
    result = update(selected, {"tags": {"op": "replace", "ids": []}})
    assert (result.success, result.changed) == (True, 3)
    assert book_tags() == set()


@pytest.mark.django_db
def test_m2m_ids_must_exist(shop: dict[str, Any]) -> None:
    with pytest.raises(BulkInputError) as info:
        update(Book.objects.all(), {"tags": {"op": "add", "ids": [shop["tags"][0].pk, 424242]}})
    assert str(info.value) == (
        "'tags': no tag with id 424242 can be linked (it does not exist or is not an allowed choice)."
    )


@pytest.mark.django_db
def test_m2m_query_count_does_not_grow_with_rows(shop: dict[str, Any]) -> None:
    author = shop["authors"][0]
    Book.objects.bulk_create(Book(title=f"More {i}", author=author, price=Decimal("1.00")) for i in range(60))
    tag_ids = [t.pk for t in shop["tags"]]

    def count(queryset: QuerySet[Any], op: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            result = update(queryset, {"tags": {"op": op, "ids": tag_ids[:2]}, "status": "archived"})
        assert result.success
        return len(queries)

    few = Book.objects.filter(title__in=[f"More {i}" for i in range(5)])
    many = Book.objects.filter(title__startswith="More ").exclude(pk__in=few)
    for op in ("add", "replace", "remove"):
        assert count(few, op) == count(many, op)


# ----- M2MEdit and resolve_edit ---------------------------------------------------------------------


def test_apply_adds_removes_or_replaces_the_related_keys() -> None:
    def made(op: str) -> M2MEdit:
        return M2MEdit(name="tags", op=op, ids=frozenset({2, 3}), through=THROUGH, source="x", target="y")  # type: ignore[arg-type]

    current = frozenset({1, 2})
    assert made("add").apply(current) == {1, 2, 3}
    assert made("remove").apply(current) == {1}
    assert made("replace").apply(current) == {2, 3}
    assert made("add").apply(frozenset()) == {2, 3}
    assert made("remove").apply(frozenset()) == frozenset()


@pytest.mark.django_db
def test_resolve_edit_names_the_through_table_and_its_columns() -> None:
    tag = Tag.objects.create(name="t")
    found = edit("add", tag)
    assert (found.name, found.op, found.ids) == ("tags", "add", frozenset({tag.pk}))
    assert found.through is THROUGH
    assert (found.source, found.target) == ("book_id", "tag_id")
    assert not found.has_m2m_changed_receivers


@pytest.mark.django_db
def test_resolve_edit_checks_in_one_query_that_the_ids_to_link_exist() -> None:
    tags = [Tag.objects.create(name=f"t{i}") for i in range(3)]
    with CaptureQueriesContext(connection) as queries:
        edit("replace", *tags)
    assert len(queries) == 1
    with pytest.raises(BulkInputError) as info:
        resolve_edit(Book, "tags", M2MChange(op="add", ids=(tags[0].pk, 998, 999)), "default")
    assert info.value.field == "tags"
    assert str(info.value) == (
        "'tags': no tag with id 998, 999 can be linked (it does not exist or is not an allowed choice)."
    )


@pytest.mark.django_db
def test_removing_ids_that_do_not_exist_is_not_an_error() -> None:
    with CaptureQueriesContext(connection) as queries:
        found = resolve_edit(Book, "tags", M2MChange(op="remove", ids=(998,)), "default")
    assert found.ids == {998}
    assert len(queries) == 0  # nothing to check: removing a missing link changes nothing


@pytest.mark.django_db
def test_limit_choices_to_is_applied_to_the_ids_to_link() -> None:
    allowed, other = Tag.objects.create(name="ok-1"), Tag.objects.create(name="nope")
    with isolate_apps("tests.testapp"):

        class Poster(models.Model):  # noqa: DJ008
            tags = models.ManyToManyField(Tag, limit_choices_to={"name__startswith": "ok-"})

            class Meta:
                app_label = "testapp"

        # Only the tag outside the limit is named (Tag is not in this isolated registry, so the
        # relation is never fully set up: the refusal is all this model can show).
        with pytest.raises(BulkInputError) as info:
            resolve_edit(Poster, "tags", M2MChange(op="add", ids=(allowed.pk, other.pk)), "default")
        assert str(info.value).startswith(f"'tags': no tag with id {other.pk} can be linked")


def test_a_custom_through_model_or_a_symmetrical_self_relation_is_refused() -> None:
    with isolate_apps("tests.testapp"):

        class Person(models.Model):  # noqa: DJ008
            friends = models.ManyToManyField("self")
            tags = models.ManyToManyField(Tag, through="Labelled")

            class Meta:
                app_label = "testapp"

        class Labelled(models.Model):  # noqa: DJ008
            person = models.ForeignKey(Person, on_delete=models.CASCADE)
            tag = models.ForeignKey(Tag, on_delete=models.CASCADE)

            class Meta:
                app_label = "testapp"

        with pytest.raises(BulkInputError) as info:
            resolve_edit(Person, "tags", M2MChange(op="add", ids=()), "default")
        assert str(info.value) == (
            "'tags' uses the custom through model testapp.Labelled; bulk edit only writes automatic "
            "many-to-many tables. Write a service for it instead."
        )
        with pytest.raises(BulkInputError) as info:
            resolve_edit(Person, "friends", M2MChange(op="add", ids=()), "default")
        assert (
            str(info.value)
            == "'friends' is a symmetrical relation to itself, which bulk edit does not write."
        )


@pytest.mark.django_db
def test_m2m_changed_receivers_are_detected_and_not_run(shop: dict[str, Any]) -> None:
    calls: list[Any] = []

    def record(sender: Any, **kwargs: Any) -> None:
        calls.append(kwargs["action"])

    m2m_changed.connect(record, sender=THROUGH, weak=False, dispatch_uid="test-m2m")
    try:
        assert edit("add").has_m2m_changed_receivers
        result = update(Book.objects.all(), {"tags": {"op": "add", "ids": [shop["tags"][2].pk]}})
    finally:
        m2m_changed.disconnect(sender=THROUGH, dispatch_uid="test-m2m")
    assert (result.success, result.changed) == (True, 10)
    assert calls == []  # the links are written on the through table directly


# ----- reading and writing links ------------------------------------------------------------------


@pytest.fixture
def linked(db: None) -> dict[str, Any]:
    """Three books and three tags: book 0 has t0, book 1 has t0 and t1, book 2 has none."""
    author = Author.objects.create(name="A")
    books = [Book.objects.create(title=f"B{i}", author=author, price=Decimal("1.00")) for i in range(3)]
    tags = [Tag.objects.create(name=f"t{i}") for i in range(3)]
    books[0].tags.set([tags[0]])
    books[1].tags.set([tags[0], tags[1]])
    return {"books": books, "tags": tags}


def test_read_links_gives_every_asked_row_its_keys_in_one_query(linked: dict[str, Any]) -> None:
    books, tags = linked["books"], linked["tags"]
    with CaptureQueriesContext(connection) as queries:
        found = read_links(edit("add"), "default", [b.pk for b in books[1:]])
    assert len(queries) == 1
    assert found == {books[1].pk: {tags[0].pk, tags[1].pk}, books[2].pk: frozenset()}


@pytest.mark.parametrize(
    ("op", "ids", "expected"),
    [
        # (book index, tag index) links after the edit of books 0 and 1 only; book 2 untouched.
        ("add", [1, 2], {(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)}),
        ("remove", [0], {(1, 1)}),
        ("replace", [1, 2], {(0, 1), (0, 2), (1, 1), (1, 2)}),
        ("replace", [], set()),
    ],
)
def test_write_links_moves_rows_from_their_old_links_to_their_new_ones(
    linked: dict[str, Any], op: str, ids: list[int], expected: set[tuple[int, int]]
) -> None:
    books, tags = linked["books"], linked["tags"]
    books[2].tags.set([tags[2]])  # not in the batch: must keep its link whatever the edit
    found = edit(op, *[tags[i] for i in ids])
    pks = [books[0].pk, books[1].pk]
    current = read_links(found, "default", pks)
    write_links(found, "default", [(pk, current[pk], found.apply(current[pk])) for pk in pks])
    index = {b.pk: i for i, b in enumerate(books)} | {t.pk: i for i, t in enumerate(tags)}
    links = {(index[b], index[t]) for b, t in book_tags()}
    assert links == expected | {(2, 2)}


def test_write_links_is_set_based_whatever_the_number_of_rows(db: None) -> None:
    author = Author.objects.create(name="A")
    books = Book.objects.bulk_create(
        Book(title=f"B{i}", author=author, price=Decimal("1")) for i in range(40)
    )
    tags = [Tag.objects.create(name=f"t{i}") for i in range(3)]
    THROUGH.objects.bulk_create(THROUGH(book_id=b.pk, tag_id=tags[0].pk) for b in books)
    found = edit("replace", tags[1], tags[2])
    rows = [(b.pk, frozenset({tags[0].pk}), frozenset({tags[1].pk, tags[2].pk})) for b in books]
    with CaptureQueriesContext(connection) as queries:
        write_links(found, "default", rows)
    statements = [q["sql"].split()[0] for q in queries.captured_queries]
    assert statements.count("DELETE") == 1 and statements.count("INSERT") == 1, statements
    assert THROUGH.objects.count() == 80
    assert not THROUGH.objects.filter(tag_id=tags[0].pk).exists()


def test_write_links_ignores_a_link_that_already_exists(linked: dict[str, Any]) -> None:
    books, tags = linked["books"], linked["tags"]
    found = edit("add", tags[0])
    # A stale read: book 0 already links t0, but the row claims it did not.
    write_links(found, "default", [(books[0].pk, frozenset(), frozenset({tags[0].pk}))])
    assert THROUGH.objects.filter(book_id=books[0].pk, tag_id=tags[0].pk).count() == 1


def test_m2m_changes_picks_the_many_to_many_entries() -> None:
    change = M2MChange(op="add", ids=(1,))
    assert m2m_changes({"status": "draft", "tags": change, "price": Decimal("1")}) == {"tags": change}
    assert m2m_changes({"status": "draft"}) == {}
