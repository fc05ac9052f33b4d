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
