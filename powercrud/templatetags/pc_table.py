"""``{% load pc_table %}``: ``{% pc_row row %}`` draws one list row (``<tr>``) in Python.

A page of 25 rows of 10 columns took some 250 ``{% include "powercrud/partials/cell.html" %}``
and as many template variables per row as a row has attributes: most of a list page's time.
This tag writes the same markup (``partials/table.html`` had it; ``tests/test_list_rows.py``
compares the two) in one pass of string joins, and keeps what a project may replace:

- a project's own ``powercrud/partials/cell.html`` or ``partials/inline_edit_button.html``
  is still rendered, as before, for every cell or row; only powercrud's own two are drawn
  here (``tests/test_list_rows.py`` checks that ``cell()`` and ``inline_button()`` give what
  those templates give, so a change to one of them fails a test until it is made here too).

Values are turned into text as ``{{ value }}`` would (``render_value_in_context``: local time,
localisation, escaping unless autoescape is off), so the markup is the template's.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from django import template
from django.template import Engine
from django.template.base import Template, render_value_in_context
from django.utils.safestring import SafeString

register = template.Library()

CELL_TEMPLATE = "powercrud/partials/cell.html"
INLINE_BUTTON_TEMPLATE = "powercrud/partials/inline_edit_button.html"
OWN_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

YES = (
    '<span class="pc-bool pc-bool-yes" title="Yes"><span aria-hidden="true">✓</span>'
    '<span class="pc-visually-hidden">Yes</span></span>'
)
NO = (
    '<span class="pc-bool pc-bool-no" title="No"><span aria-hidden="true">✕</span>'
    '<span class="pc-visually-hidden">No</span></span>'
)
EMPTY = '<span class="pc-muted" aria-label="empty">—</span>'
ICON = '<svg viewBox="0 0 24 24" aria-hidden="true"><use href="#pc-i-{}"/></svg>'
MODAL_LINK = (
    '<a class="{css}" href="{url}" hx-get="{url}" hx-target="#pc-modal-body" hx-swap="innerHTML" '
    'hx-push-url="false" aria-label="{verb} {name}" title="{verb} {name}">{icon}</a>'
)
_RENDERER = "powercrud.pc_table.RowRenderer"  # its key in a page's render context


class RowRenderer:
    """Draws the rows of one page render: looks its templates up once, then one row a call."""

    def __init__(self, context: template.Context) -> None:
        assert context.template is not None  # a tag renders inside a template
        engine = context.template.engine
        self.autoescape = bool(context.autoescape)
        # A project's own template wins; powercrud's own is drawn by cell() and inline_button().
        self.cell_template = replaced(engine, CELL_TEMPLATE)
        self.inline_template = replaced(engine, INLINE_BUTTON_TEMPLATE)

    def text(self, value: Any, context: template.Context) -> str:
        """``{{ value }}``."""
        if type(value) is str:
            return html.escape(value) if self.autoescape else value
        return str(render_value_in_context(value, context))

    def cell(self, value: Any, context: template.Context) -> str:
        """What ``partials/cell.html`` draws for ``value``."""
        if self.cell_template is not None:
            with context.push(value=value):
                return str(self.cell_template.render(context))
        if value is True:
            return YES
        if value is False:
            return NO
        if value is None or value == "":
            return EMPTY
        text = self.text(value, context)
        return f'<span class="pc-cell" title="{text}">{text}</span>'

    def inline_button(self, row: dict[str, Any], name: str, context: template.Context) -> str:
        """What ``partials/inline_edit_button.html`` draws for ``row`` (``name``: its text)."""
        if self.inline_template is not None:
            with context.push(row=row):
                return str(self.inline_template.render(context))
        text = self.text
        href = text(row.get("update_url") or row["inline_url"], context)
        hx_get = text(row["inline_url"], context)
        return (
            f'<a class="pc-icon-btn pc-inline-edit" href="{href}" hx-get="{hx_get}" '
            'hx-target="closest tr" hx-swap="outerHTML" hx-push-url="false" '
            f'data-pc-inline-edit="{text(row["pk"], context)}" aria-label="Edit {name} in the row" '
            f'title="Edit in the row">{ICON.format("inline")}</a>'
        )

    def row(self, row: dict[str, Any], context: template.Context) -> str:
        text = self.text
        selected = row.get("selected")
        name = text(row["object"], context)
        parts = ['<tr class="pc-row-selected">' if selected else "<tr>"]
        if context.get("bulk_enabled"):
            parts.append(
                f'<td class="pc-check-col"><input type="checkbox" class="pc-select-row" '
                f'value="{text(row["pk"], context)}" aria-label="Select {name}"'
                f"{' checked' if selected else ''}></td>"
            )
        for cell in row["cells"]:
            inline_url = cell.get("inline_url")
            inline = f' data-pc-inline-cell="{text(inline_url, context)}"' if inline_url else ""
            parts.append(
                f'<td class="pc-align-{text(cell["column"].align, context)}"{inline}>'
                f"{self.cell(cell['value'], context)}</td>"
            )
        parts.append('<td class="pc-actions"><span class="pc-row-actions">')
        if row.get("inline_url"):
            parts.append(self.inline_button(row, name, context))
        for key, css, verb, icon in ACTIONS:
            url = row.get(key)
            if url:
                parts.append(
                    MODAL_LINK.format(
                        css=css, url=text(url, context), verb=verb, name=name, icon=ICON.format(icon)
                    )
                )
        parts.append("</span></td></tr>")
        return "".join(parts)


def replaced(engine: Engine, name: str) -> Template | None:
    """The template ``name`` when a project replaces powercrud's own, else None."""
    found = engine.get_template(name)
    origin = Path(str(getattr(found.origin, "name", "")))
    return None if origin == OWN_TEMPLATES / name else found


ACTIONS = (
    ("detail_url", "pc-icon-btn", "View", "view"),
    ("update_url", "pc-icon-btn", "Edit", "edit"),
    ("delete_url", "pc-icon-btn pc-icon-btn-danger", "Delete", "delete"),
)


@register.simple_tag(takes_context=True)
def pc_row(context: template.Context, row: dict[str, Any]) -> SafeString:
    """One list row as ``partials/table.html`` draws it: checkbox, cells, action links."""
    renderer = context.render_context.get(_RENDERER)
    if renderer is None:
        renderer = context.render_context[_RENDERER] = RowRenderer(context)
    return SafeString(renderer.row(row, context))


_PAGE_QUERY = "powercrud.pc_table.page_query"  # its key in a page's render context
_PAGE_MARKER = "918273645546372819"  # a page number no list has: encoded once, then replaced


@register.simple_tag(takes_context=True)
def pc_page_query(context: template.Context, number: Any) -> str:
    """``{% querystring page=number %}``: the page links' query string, the rest of which is
    encoded once a page instead of once a link (a pager has up to 14 of them)."""
    parts = context.render_context.get(_PAGE_QUERY)
    if parts is None:
        params = context.request.GET.copy()  # type: ignore[attr-defined]
        params["page"] = _PAGE_MARKER
        parts = context.render_context[_PAGE_QUERY] = f"?{params.urlencode()}".split(_PAGE_MARKER)
    if len(parts) != 2:  # the marker is in the query string already: encode this link on its own
        params = context.request.GET.copy()  # type: ignore[attr-defined]
        params["page"] = number
        return f"?{params.urlencode()}"
    return f"{parts[0]}{number}{parts[1]}"
