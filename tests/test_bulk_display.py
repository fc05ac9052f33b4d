"""The dry run's examples read like the list: titles, choice labels and related names."""

from __future__ import annotations

import re

import pytest

from tests.testapp.models import Book

pytestmark = pytest.mark.django_db


def test_check_first_examples_use_titles_labels_and_names(
    htmx_client, catalogue, django_assert_max_num_queries
):
    books = catalogue["books"][:2]
    target = catalogue["authors"][2]
    tag = catalogue["tags"][1]
    htmx_client.post("/book/selection/", {"action": "set", "checked": "1", "pk": [b.pk for b in books]})
    response = htmx_client.post(
        "/book/bulk/edit/",
        {
            "dry_run": "1",
            "change_status": "on",
            "status": "out_of_print",
            "change_author": "on",
            "author": str(target.pk),
            "change_tags": "on",
            "tags__op": "add",
            "tags": [str(tag.pk)],
        },
    )
    html = response.content.decode()
    assert response.status_code == 200
    examples = re.search(r"<summary>Examples of the change</summary>(.*?)</details>", html, re.S).group(1)
    first = books[0]
    assert f"<strong>{first.title}</strong>" in examples
    old, new = first.get_status_display(), "Out of print"
    assert f'Status <span class="pc-old">{old}</span> → <span class="pc-new">{new}</span>' in examples
    assert (
        f'Author <span class="pc-old">{first.author.name}</span> → <span class="pc-new">{target.name}</span>'
        in examples
    )
    assert "signed" in examples  # the tag's name, not its id
    assert Book.objects.filter(status="out_of_print", pk__in=[b.pk for b in books]).count() == 0


def test_examples_leave_out_fields_a_row_would_keep(catalogue) -> None:
    """ "Available No -> No" says nothing: only the fields that would change are shown."""
    from powercrud.bulk.display import EMPTY, describe_examples
    from powercrud.bulk.types import RowChange

    book = catalogue["books"][0]
    change = RowChange(
        pk=book.pk,
        old={"is_available": False, "status": "draft", "genre": None},
        new={"is_available": False, "status": "published", "genre": None},
    )
    (row,) = describe_examples(Book, [change])
    assert row.title == str(book)
    assert [(c.label, c.old, c.new) for c in row.changes] == [("Status", "Draft", "Published")]
    cleared = RowChange(pk=book.pk, old={"genre": catalogue["genres"][0].pk}, new={"genre": None})
    (row,) = describe_examples(Book, [cleared])
    assert [(c.old, c.new) for c in row.changes] == [(str(catalogue["genres"][0]), EMPTY)]
