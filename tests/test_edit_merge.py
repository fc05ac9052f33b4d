"""``powercrud.edit_merge``: a form saved after someone else changed the row keeps their changes,
and a field both changed is an ``EditConflict`` that saves nothing."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from django import forms

from powercrud.edit_merge import (
    LOADED_FIELD,
    EditConflict,
    loaded_values,
    merge_concurrent_changes,
    track_loaded_values,
)
from tests.testapp.models import Author, Book, Tag

pytestmark = pytest.mark.django_db


class BookForm(forms.ModelForm):
    class Meta:
        model = Book
        fields = ["title", "status", "price", "author", "tags"]


@pytest.fixture
def book() -> Book:
    author = Author.objects.create(name="Le Guin")
    book = Book.objects.create(title="Lathe", author=author, status="draft", price=Decimal("9.50"), pages=100)
    book.tags.set([Tag.objects.create(name="classic")])
    return book


def opened(book: Book) -> dict[str, Any]:
    """What the update form posts back unchanged: its fields, and the hidden loaded values."""
    form = BookForm(instance=Book.objects.get(pk=book.pk))
    data: dict[str, Any] = {name: form[name].value() for name in form.fields}
    data["tags"] = [str(pk) for pk in data["tags"]]
    data[LOADED_FIELD] = loaded_values(form)
    return data


def save(book: Book, data: dict[str, Any], meanwhile: Any = None) -> BookForm:
    """Post ``data`` the way the update view does: read the row, validate, (``meanwhile``: someone
    else writes now, after the read), merge under the lock, save."""
    form = BookForm(data, instance=Book.objects.get(pk=book.pk))
    track_loaded_values(form)
    assert form.is_valid(), form.errors
    if meanwhile is not None:
        meanwhile()
    merge_concurrent_changes(form)
    form.save()
    return form


def stored(book: Book) -> tuple[Any, ...]:
    book = Book.objects.get(pk=book.pk)
    return (book.title, book.status, book.price, book.pages, sorted(t.name for t in book.tags.all()))


# ----- what the form carries ------------------------------------------------------------------------


def test_a_fresh_form_carries_the_values_it_shows(book: Book) -> None:
    loaded = json.loads(loaded_values(BookForm(instance=book)))
    assert loaded == {
        "title": "Lathe",
        "status": "draft",
        "price": "9.50",
        "author": book.author_id,
        "tags": [str(book.tags.get().pk)],
    }


def test_a_posted_form_carries_what_it_was_posted_with(book: Book) -> None:
    data = opened(book)
    Book.objects.filter(pk=book.pk).update(status="published")
    assert loaded_values(BookForm(data, instance=book)) == data[LOADED_FIELD]
    assert loaded_values(BookForm({"title": "x"}, instance=book)) == ""


# ----- merging ----------------------------------------------------------------------------------


def test_nobody_else_changed_the_row_so_the_users_values_are_saved(book: Book) -> None:
    data = opened(book)
    save(book, {**data, "title": "The Lathe of Heaven", "price": "12.00"})
    assert stored(book) == ("The Lathe of Heaven", "draft", Decimal("12.00"), 100, ["classic"])


def test_a_field_changed_by_someone_else_only_keeps_their_value(book: Book) -> None:
    data = opened(book)
    Book.objects.filter(pk=book.pk).update(status="published", pages=250)  # a bulk edit, say
    save(book, {**data, "title": "Renamed"})
    assert stored(book) == ("Renamed", "published", Decimal("9.50"), 250, ["classic"])


def test_a_field_both_changed_differently_is_a_conflict_and_nothing_is_saved(book: Book) -> None:
    data = opened(book)
    Book.objects.filter(pk=book.pk).update(status="published")
    mine = {**data, "status": "archived", "title": "Renamed"}
    with pytest.raises(EditConflict) as info:
        save(book, mine)
    assert info.value.fields == ("status",)
    assert info.value.message == (
        "Status was changed by someone else after you opened this form, so nothing was saved. The "
        "form shows your values: save again to replace theirs, or close it to keep the book as it is now."
    )
    assert stored(book) == ("Lathe", "published", Decimal("9.50"), 100, ["classic"])


def test_after_a_conflict_saving_again_is_a_deliberate_overwrite(book: Book) -> None:
    data = opened(book)
    Book.objects.filter(pk=book.pk).update(status="published")
    form = BookForm({**data, "status": "archived"}, instance=Book.objects.get(pk=book.pk))
    track_loaded_values(form)
    assert form.is_valid()
    with pytest.raises(EditConflict):
        merge_concurrent_changes(form)
    again = dict(form.data)  # shown again: the user's values, the stored ones as the new baseline
    assert json.loads(again[LOADED_FIELD])["status"] == "published"
    assert loaded_values(form) == again[LOADED_FIELD]
    save(book, again)
    assert stored(book)[1] == "archived"


def test_both_changed_to_the_same_value_is_no_conflict(book: Book) -> None:
    data = opened(book)
    Book.objects.filter(pk=book.pk).update(status="published")
    save(book, {**data, "status": "published", "title": "Renamed"})
    assert stored(book)[:2] == ("Renamed", "published")


def test_several_conflicting_fields_are_named_together(book: Book) -> None:
    data = opened(book)
    Book.objects.filter(pk=book.pk).update(status="published", price=Decimal("20.00"), title="Theirs")
    with pytest.raises(EditConflict) as info:
        save(book, {**data, "status": "archived", "price": "30.00", "title": "Mine"})
    assert info.value.fields == ("title", "status", "price")
    assert info.value.message.startswith(
        "Title, Status and Price were changed by someone else after you opened this form"
    )


def test_the_same_amount_written_differently_is_not_a_change(book: Book) -> None:
    data = opened(book)
    Book.objects.filter(pk=book.pk).update(price=Decimal("12.00"))
    save(book, {**data, "price": "9.5"})  # 9.5 is the 9.50 the form showed: the user left it alone
    assert stored(book)[2] == Decimal("12.00")


def test_without_the_hidden_input_the_values_read_by_the_request_are_the_baseline(book: Book) -> None:
    data = {key: value for key, value in opened(book).items() if key != LOADED_FIELD}

    def bulk_edit() -> None:
        Book.objects.filter(pk=book.pk).update(status="published", pages=300)

    save(book, {**data, "title": "Renamed"}, meanwhile=bulk_edit)
    assert stored(book)[:4] == ("Renamed", "published", Decimal("9.50"), 300)


def test_a_field_the_form_does_not_show_is_saved_as_stored_now(book: Book) -> None:
    data = opened(book)

    def bulk_edit() -> None:
        Book.objects.filter(pk=book.pk).update(pages=999)

    save(book, data, meanwhile=bulk_edit)  # the instance read before the edit still had 100
    assert stored(book)[3] == 999


# ----- many-to-many ---------------------------------------------------------------------------------


def test_links_added_by_someone_else_are_kept(book: Book) -> None:
    data = opened(book)
    book.tags.add(Tag.objects.create(name="signed"))
    save(book, {**data, "title": "Renamed"})
    assert stored(book)[0] == "Renamed"
    assert stored(book)[4] == ["classic", "signed"]


def test_links_both_changed_differently_are_a_conflict(book: Book) -> None:
    data = opened(book)
    book.tags.add(Tag.objects.create(name="signed"))
    mine = Tag.objects.create(name="mine")
    with pytest.raises(EditConflict) as info:
        save(book, {**data, "tags": [str(mine.pk)]})
    assert info.value.fields == ("tags",)
    assert stored(book)[4] == ["classic", "signed"]


def test_links_only_the_user_changed_are_saved(book: Book) -> None:
    data = opened(book)
    mine = Tag.objects.create(name="mine")
    save(book, {**data, "tags": [str(mine.pk)]})
    assert stored(book)[4] == ["mine"]
