# ruff: noqa: E501 - the reference row template keeps its lines as table.html had them
"""The list's rows drawn in Python (``{% pc_row %}``, ``templatetags/pc_table.py``) and the filter
form's selects (``FilterSelect``, ``mixins/listing.py``): the same markup as the templates that
drew them before, and a project's own templates still win."""

from __future__ import annotations

import datetime
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django import forms
from django.forms.renderers import DjangoTemplates
from django.template import Context, RequestContext, engines
from django.test import override_settings
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy

from powercrud.columns import Column
from powercrud.formfields import RelationSearchInput
from powercrud.mixins.listing import FilterSelect, prepare_filter_form
from powercrud.templatetags.pc_table import RowRenderer
from tests.testapp.models import Author, Genre

# The row as partials/table.html drew it before {% pc_row %}.
REFERENCE_ROW = """<tr{% if row.selected %} class="pc-row-selected"{% endif %}>
{% if bulk_enabled %}<td class="pc-check-col"><input type="checkbox" class="pc-select-row" value="{{ row.pk }}" aria-label="Select {{ row.object }}"{% if row.selected %} checked{% endif %}></td>{% endif %}
{% for cell in row.cells %}
<td class="pc-align-{{ cell.column.align }}"{% if cell.inline_url %} data-pc-inline-cell="{{ cell.inline_url }}"{% endif %}>{% include "powercrud/partials/cell.html" with value=cell.value %}</td>
{% endfor %}
<td class="pc-actions">
<span class="pc-row-actions">
{% if row.inline_url %}{% include "powercrud/partials/inline_edit_button.html" %}{% endif %}
{% if row.detail_url %}<a class="pc-icon-btn" href="{{ row.detail_url }}" hx-get="{{ row.detail_url }}" hx-target="#pc-modal-body" hx-swap="innerHTML" hx-push-url="false" aria-label="View {{ row.object }}" title="View {{ row.object }}"><svg viewBox="0 0 24 24" aria-hidden="true"><use href="#pc-i-view"/></svg></a>{% endif %}
{% if row.update_url %}<a class="pc-icon-btn" href="{{ row.update_url }}" hx-get="{{ row.update_url }}" hx-target="#pc-modal-body" hx-swap="innerHTML" hx-push-url="false" aria-label="Edit {{ row.object }}" title="Edit {{ row.object }}"><svg viewBox="0 0 24 24" aria-hidden="true"><use href="#pc-i-edit"/></svg></a>{% endif %}
{% if row.delete_url %}<a class="pc-icon-btn pc-icon-btn-danger" href="{{ row.delete_url }}" hx-get="{{ row.delete_url }}" hx-target="#pc-modal-body" hx-swap="innerHTML" hx-push-url="false" aria-label="Delete {{ row.object }}" title="Delete {{ row.object }}"><svg viewBox="0 0 24 24" aria-hidden="true"><use href="#pc-i-delete"/></svg></a>{% endif %}
</span>
</td>
</tr>"""

VALUES: list[Any] = [
    True,
    False,
    None,
    "",
    "plain text",
    '<b>Tom & "Jerry"</b> it\'s',
    mark_safe("<em>safe</em>"),
    gettext_lazy("Published"),
    0,
    1234567,
    Decimal("12.50"),
    3.25,
    datetime.date(2024, 2, 29),
    "Oct. 27, 1960",
]


class Named:
    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def squeeze(html: str) -> str:
    """Markup without the whitespace between tags (the templates' line breaks)."""
    return re.sub(r">\s+<", "><", html.strip())


def render_reference(source: str, context: dict[str, Any], *, autoescape: bool = True) -> str:
    engine = engines["django"].engine
    template = engine.from_string(source)
    return squeeze(template.render(Context(context, autoescape=autoescape)))


def render_tag(context: dict[str, Any], *, autoescape: bool = True) -> str:
    engine = engines["django"].engine
    template = engine.from_string("{% load pc_table %}{% pc_row row %}")
    return squeeze(template.render(Context(context, autoescape=autoescape)))


def make_row(values: list[Any], **extra: Any) -> dict[str, Any]:
    aligns = ["start", "end", "center"]
    cells = [
        {"column": Column(f"c{i}", f"C{i}", "field", None, aligns[i % 3]), "value": value}
        for i, value in enumerate(values)
    ]
    row = {
        "object": Named('Book <1> & "co"'),
        "pk": 15810,
        "cells": cells,
        "detail_url": "/book/15810/",
        "update_url": "/book/15810/edit/",
        "delete_url": "/book/15810/delete/",
    }
    row.update(extra)
    return row


ROWS = {
    "every value, all links": make_row(VALUES),
    "selected": make_row(VALUES[:3], selected=True),
    "not selected": make_row(VALUES[:3], selected=False),
    "no links": make_row(VALUES[:3], detail_url=None, update_url=None, delete_url=None),
    "only delete": make_row(VALUES[:2], detail_url=None, update_url=None),
    "inline": make_row(VALUES[:4], inline_url="/book/15810/inline/?sort=-price&q=a%20b"),
    "inline without the update link": make_row(VALUES[:2], inline_url="/book/15810/inline/", update_url=None),
    "no cells": make_row([]),
}
ROWS["inline"]["cells"][0]["inline_url"] = "/book/15810/inline/?field=c0&sort=-price"


@pytest.mark.parametrize("bulk_enabled", [True, False])
@pytest.mark.parametrize("name", ROWS)
def test_a_row_is_drawn_as_the_row_template_drew_it(name: str, bulk_enabled: bool) -> None:
    context = {"row": ROWS[name], "bulk_enabled": bulk_enabled}
    assert render_tag(context) == render_reference(REFERENCE_ROW, context)


def test_a_row_without_autoescape_is_drawn_as_the_template_drew_it() -> None:
    context = {"row": make_row(VALUES, inline_url="/i/?a=1&b=2"), "bulk_enabled": True}
    expected = render_reference(
        "{% autoescape off %}" + REFERENCE_ROW + "{% endautoescape %}", context, autoescape=True
    )
    assert render_tag(context, autoescape=False) == expected


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_a_cell_is_drawn_as_cell_html_draws_it(value: Any) -> None:
    engine = engines["django"].engine
    template = engine.get_template("powercrud/partials/cell.html")
    context = Context({"value": value})
    expected = template.render(context).strip()
    with context.bind_template(template):
        assert RowRenderer(context).cell(value, context) == expected


@pytest.mark.parametrize("update_url", ["/book/1/edit/", None])
def test_the_inline_button_is_drawn_as_its_template_draws_it(update_url: str | None) -> None:
    engine = engines["django"].engine
    template = engine.get_template("powercrud/partials/inline_edit_button.html")
    row = {
        "object": Named("A <b> & 'c'"),
        "pk": 7,
        "update_url": update_url,
        "inline_url": "/book/7/inline/?a=1&b=2",
    }
    context = Context({"row": row})
    expected = template.render(context).strip()
    with context.bind_template(template):
        assert RowRenderer(context).inline_button(row, "A &lt;b&gt; &amp; &#x27;c&#x27;", context) == expected


@pytest.fixture
def own_templates(tmp_path: Path) -> Any:
    """A project that replaces powercrud's cell and inline-edit button."""
    partials = tmp_path / "powercrud" / "partials"
    partials.mkdir(parents=True)
    (partials / "cell.html").write_text("<i>{{ value }}!</i>")
    (partials / "inline_edit_button.html").write_text('<b data-mine="{{ row.pk }}">edit</b>')
    templates = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "DIRS": [str(tmp_path)],
            "APP_DIRS": True,
            "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
        }
    ]
    with override_settings(TEMPLATES=templates):
        yield


def test_a_projects_own_cell_and_inline_button_templates_are_used(own_templates: None) -> None:
    row = make_row(["x", 5], inline_url="/book/15810/inline/")
    drawn = render_tag({"row": row, "bulk_enabled": False})
    assert "<i>x!</i>" in drawn and "<i>5!</i>" in drawn
    assert '<b data-mine="15810">edit</b>' in drawn
    assert drawn == render_reference(REFERENCE_ROW, {"row": row, "bulk_enabled": False})


@pytest.mark.django_db
def test_the_list_page_draws_rows_in_python_with_the_same_markup(admin_client: Any, catalogue: Any) -> None:
    """The whole table body of the book list: its rows as the reference template draws them."""
    response = admin_client.get("/book/?sort=-price")
    context = response.context_data
    page = squeeze(response.content.decode())
    body = page[page.index('<tbody id="pc-rows" tabindex="-1">') + 34 : page.index("</tbody>")]
    expected = "".join(
        render_reference(REFERENCE_ROW, {"row": row, "bulk_enabled": context.get("bulk_enabled")})
        for row in context["rows"]
    )
    assert len(context["rows"]) == 25
    assert body == expected


# ----- the filter form's selects ------------------------------------------------------------
CHOICES = [("", "Any"), ("draft", "Draft <1>"), ("pub", mark_safe("<b>Pub</b>")), (3, 3)]
GROUPED = [("", "Any"), ("Group & co", [("a", "A"), ("b", "B")]), ("c", "C")]


class ChoiceForm(forms.Form):
    plain = forms.ChoiceField(choices=CHOICES, required=False)
    grouped = forms.ChoiceField(choices=GROUPED, required=False)
    needed = forms.ChoiceField(
        choices=CHOICES, widget=forms.Select(attrs={"data-x": "1 & 2", "hidden": True})
    )
    flag = forms.NullBooleanField(required=False)


@pytest.mark.parametrize(
    "data", [None, {"plain": "draft", "grouped": "b", "needed": "3"}, {"plain": "nope", "needed": ""}]
)
def test_filter_selects_draw_what_djangos_select_template_draws(data: dict[str, str] | None) -> None:
    django_form, ours = ChoiceForm(data, auto_id="filter_%s"), ChoiceForm(data, auto_id="filter_%s")
    prepare_filter_form(ours)
    django_form.fields["flag"].widget = forms.Select(choices=[("", "Any"), ("true", "Yes"), ("false", "No")])
    for name in ("plain", "grouped", "needed", "flag"):
        assert type(ours.fields[name].widget) is FilterSelect
        assert squeeze(str(ours[name])) == squeeze(str(django_form[name]))


@pytest.mark.django_db
def test_a_model_choice_filter_select_draws_what_djangos_draws(catalogue: Any) -> None:
    class GenreForm(forms.Form):
        genre = forms.ModelChoiceField(Genre.objects.order_by("name"), required=False)
        author = forms.ModelChoiceField(Author.objects.order_by("name"))

    chosen = str(Genre.objects.order_by("name").last().pk)  # type: ignore[union-attr]
    django_form, ours = GenreForm({"genre": chosen}, auto_id="filter_%s"), GenreForm({"genre": chosen})
    prepare_filter_form(ours)
    ours.fields["genre"].queryset = Genre.objects.order_by("-name")  # as scope_filter_choices() does
    django_form.fields["genre"].queryset = Genre.objects.order_by("-name")
    for name in ("genre", "author"):
        assert type(ours.fields[name].widget) is FilterSelect
        drawn = squeeze(str(ours[name]))
        # Django's own empty choice reads "---------" (Django 5.2) or "- Select an option -" (6.0).
        theirs = re.sub(r'(<option value=""[^>]*>)[^<]*</option>', r"\1Any</option>", str(django_form[name]))
        assert drawn == squeeze(theirs)
        assert f'value="{chosen}" selected' in drawn or name == "author"


def test_filter_selects_use_the_templates_a_project_replaces(tmp_path: Path) -> None:
    widgets = tmp_path / "django" / "forms" / "widgets"
    widgets.mkdir(parents=True)
    (widgets / "select_option.html").write_text("<option>{{ widget.label }} (mine)</option>")

    class Renderer(DjangoTemplates):
        @property
        def engine(self) -> Any:  # type: ignore[override]
            engine = super().engine
            engine.engine.dirs = [str(tmp_path), *engine.engine.dirs]
            return engine

    form = ChoiceForm(auto_id="filter_%s", renderer=Renderer())
    prepare_filter_form(form)
    assert "Draft &lt;1&gt; (mine)" in str(form["plain"])


# ----- the relation search control ---------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize("multiple", [False, True])
@pytest.mark.parametrize("value", [None, "", "1", ["2", 'x<y>&"z'], "999999999999999999999999"])
def test_the_relation_search_control_draws_what_its_template_draws(
    catalogue: Any, multiple: bool, value: Any
) -> None:
    authors = Author.objects.order_by("name")
    if value == "1" or isinstance(value, list):  # real ids, one of them labelled with markup
        first = authors.first()
        assert first is not None
        Author.objects.filter(pk=first.pk).update(name='Tom <b> & "Jerry"')
        value = str(first.pk) if value == "1" else [str(first.pk), *value[1:]]
    widget = RelationSearchInput(
        url="/book/relation/author/?for=filter&x=<1>",
        queryset=authors,
        key="id",
        multiple=multiple,
        attrs={"id": "filter_author", "data-x": 'a "b"', "hidden": True, "off": False},
    )
    ours = widget.render("author", value, {"aria-describedby": "h"})
    theirs = forms.Widget.render(widget, "author", value, {"aria-describedby": "h"})
    assert ours == theirs.strip()
    assert ("data-pc-multiple" in ours) is multiple


def test_the_relation_search_control_uses_the_template_a_project_replaces(tmp_path: Path) -> None:
    partials = tmp_path / "powercrud" / "partials"
    partials.mkdir(parents=True)
    (partials / "relation_input.html").write_text('<b data-mine="{{ widget.url }}"></b>')

    class Renderer(DjangoTemplates):
        @property
        def engine(self) -> Any:  # type: ignore[override]
            engine = super().engine
            engine.engine.dirs = [str(tmp_path), *engine.engine.dirs]
            return engine

    widget = RelationSearchInput(url="/r/?a=1", queryset=Author.objects.none(), key="id")
    assert widget.render("author", None, renderer=Renderer()) == '<b data-mine="/r/?a=1"></b>'


# ----- the pager's links --------------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "",
        "page=3",
        "sort=-price&page=2&q=a+b%26c",
        "tag=1&tag=2&page=9&page=4",
        "q=%C3%A9t%C3%A9",
        "q=918273645546372819",  # the tag's own marker in the query string
    ],
)
def test_page_links_are_what_querystring_gives(rf: Any, query: str) -> None:
    engine = engines["django"].engine
    request = rf.get(f"/book/?{query}")
    ours = engine.from_string("{% load pc_table %}{% for n in numbers %}{% pc_page_query n %}|{% endfor %}")
    django_own = engine.from_string("{% for n in numbers %}{% querystring page=n %}|{% endfor %}")
    context = {"numbers": [1, 2, 10, 1000]}
    expected = django_own.render(RequestContext(request, context))
    assert ours.render(RequestContext(request, context)) == expected
