"""``{% load pc_menus %}``: ``{% pc_listbar %}`` draws the list's menu bar in Python, and
``{% pc_filter_fields %}`` its filter form's fields (``partials/filter_fields.html``).

The bar (``partials/saved_views_bar.html``: the saved-views menu, the column chooser and the
export menu, ``partials/saved_views_menu.html``, ``columns_chooser.html``, ``export_menu.html``)
is in every list response, the htmx partial too, and its templates resolved some 150 variables
a page. This tag writes the same markup (``tests/test_list_menus.py`` renders those templates
and compares, so a change to one of them fails a test until it is made here too) and keeps
what a project may replace: a project's own copy of any of the four templates is rendered, as
before, in place of the part it draws.

Values are turned into text as ``{{ value }}`` would (``render_value_in_context``: localisation,
escaping unless autoescape is off), and ``{% csrf_token %}`` as its tag does.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from django import template
from django.template.base import render_value_in_context
from django.template.defaultfilters import floatformat, join
from django.utils.html import format_html
from django.utils.safestring import SafeString

from powercrud.templatetags.pc_table import replaced

register = template.Library()

BAR_TEMPLATE = "powercrud/partials/saved_views_bar.html"
VIEWS_TEMPLATE = "powercrud/partials/saved_views_menu.html"
COLUMNS_TEMPLATE = "powercrud/partials/columns_chooser.html"
EXPORT_TEMPLATE = "powercrud/partials/export_menu.html"
FILTER_FIELDS_TEMPLATE = "powercrud/partials/filter_fields.html"
CLEAR_TEMPLATE = "powercrud/partials/clear_filters.html"

HX_FORM = 'hx-post="{url}" hx-swap="none" hx-push-url="false"'


def _get(obj: Any, key: str, default: Any = "") -> Any:
    """``{{ obj.key }}`` for the dicts the list context holds (``default`` when missing: an
    empty string, as a template draws a missing variable)."""
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


class MenuRenderer:
    """Draws the bar of one list render."""

    def __init__(self, context: template.Context) -> None:
        self.context = context
        self.autoescape = bool(context.autoescape)
        token = context.get("csrf_token")
        token = str(token) if token else ""
        self.csrf = (
            ""
            if not token or token == "NOTPROVIDED"
            else str(format_html('<input type="hidden" name="csrfmiddlewaretoken" value="{}">', token))
        )

    def text(self, value: Any) -> str:
        """``{{ value }}``."""
        if type(value) is str:
            return html.escape(value) if self.autoescape else value
        return str(render_value_in_context(value, self.context))

    def part(self, name: str, draw: Callable[[], str]) -> str:
        """A project's own copy of template ``name``, else ``draw()``."""
        assert self.context.template is not None  # a tag renders inside a template
        own = replaced(self.context.template.engine, name)
        return str(own.render(self.context)) if own is not None else draw()

    # ----- partials/saved_views_bar.html ---------------------------------------------------
    def bar(self) -> str:
        return self.part(BAR_TEMPLATE, self.draw_bar)

    def draw_bar(self) -> str:
        t = self.text
        prefs = self.context.get("preferences")
        parts = ['<div class="pc-listbar">\n']
        carry = _get(prefs, "carry") or {}
        for key, value in carry.items():
            parts.append(f'<input type="hidden" name="{t(key)}" value="{t(value)}" form="pc-filters">')
        parts.append("\n")
        if _get(prefs, "saved_views", None) is not None or _get(prefs, "shipped_views"):
            parts.append(self.part(VIEWS_TEMPLATE, self.draw_views))
        parts.append("\n")
        if _get(prefs, "chooser"):
            parts.append(self.part(COLUMNS_TEMPLATE, self.draw_columns))
        parts.append("\n")
        if self.context.get("export_links"):
            parts.append(self.part(EXPORT_TEMPLATE, self.draw_export))
        parts.append("\n</div>\n")
        return "".join(parts)

    def form_open(self, url: str, action: str, state: str, css: str = "") -> str:
        """A menu's ``<form>`` with its token, action and list state."""
        klass = f' class="{css}"' if css else ""
        return (
            f'<form method="post" action="{url}" {HX_FORM.format(url=url)}{klass}>\n{self.csrf}\n'
            f'<input type="hidden" name="action" value="{action}">\n'
            f'<input type="hidden" name="state" value="{state}">\n'
        )

    # ----- partials/saved_views_menu.html --------------------------------------------------
    def draw_views(self) -> str:
        t = self.text
        prefs = self.context.get("preferences")
        url, state = t(_get(prefs, "url")), t(_get(prefs, "state"))
        saved = _get(prefs, "saved_views", None)
        shipped = _get(prefs, "shipped_views")
        active_view = _get(prefs, "active_view")
        summary = "Views"
        if active_view:
            summary += f": {t(_get(active_view, 'name'))}"
            for v in saved or ():
                if _get(v, "active") and _get(v, "modified"):
                    summary += ' <span class="pc-muted">(changed)</span>'
        parts = [
            f'<details class="pc-menu pc-views" data-pc-menu="views">\n'
            f'<summary class="pc-btn pc-btn-sm">{summary}</summary>\n<div class="pc-menu-panel">\n'
        ]
        if shipped:
            parts.append('<p class="pc-menu-title">For everyone</p>\n<ul class="pc-saved-list">\n')
            for v in shipped:
                current = ' aria-current="true"' if _get(v, "active") else ""
                href, name = t(_get(v, "open_url")), t(_get(v, "name"))
                parts.append(f'<li><a class="pc-link" href="{href}"{current}>{name}</a></li>')
            parts.append("\n</ul>\n")
        if saved is not None:
            parts.append('\n<p class="pc-menu-title">Yours</p>\n')
            if saved:
                parts.append('<ul class="pc-saved-list">\n')
                for v in saved:
                    parts.append(self.saved_item(v, url, state))
                parts.append("</ul>\n")
            else:
                parts.append(
                    '<p class="pc-muted pc-menu-note">'
                    "None yet: name this list's filters, sort and columns below.</p>"
                )
            parts.append(
                f"\n{self.form_open(url, 'save_view', state, 'pc-saved-form')}"
                f'<input type="hidden" name="columns" value="{t(_get(prefs, "current_columns"))}">\n'
                '<label for="pc-view-name">Save this view as</label>\n'
                '<input id="pc-view-name" name="name" maxlength="100" required autocomplete="off">\n'
                '<button type="submit" class="pc-btn pc-btn-primary pc-btn-sm">Save view</button>\n</form>\n'
            )
        parts.append("\n</div>\n</details>\n")
        return "".join(parts)

    def saved_item(self, v: Any, url: str, state: str) -> str:
        t = self.text
        name, vid, share = t(_get(v, "name")), t(_get(v, "id")), t(_get(v, "share_url"))
        current = ' aria-current="true"' if _get(v, "active") else ""
        return (
            '<li class="pc-saved-item">\n'
            f'<a class="pc-link pc-saved-open" href="{t(_get(v, "open_url"))}"{current}>{name}</a>\n'
            f'<a class="pc-link pc-saved-share" href="{share}" data-pc-copy="{share}">'
            f'Link<span class="pc-visually-hidden"> to share {name}</span></a>\n'
            '<details class="pc-saved-manage">\n'
            f'<summary class="pc-link">Edit<span class="pc-visually-hidden"> {name}</span></summary>\n'
            f'<form method="post" action="{url}" {HX_FORM.format(url=url)} class="pc-saved-form">\n'
            f'{self.csrf}\n<input type="hidden" name="action" value="rename_view">\n'
            f'<input type="hidden" name="view_id" value="{vid}">\n'
            f'<input type="hidden" name="state" value="{state}">\n'
            f'<label for="pc-rename-{vid}">New name</label>\n'
            f'<input id="pc-rename-{vid}" name="name" value="{name}" maxlength="100" required>\n'
            '<button type="submit" class="pc-btn pc-btn-sm">Rename</button>\n</form>\n'
            f'<form method="post" action="{url}" {HX_FORM.format(url=url)}>\n'
            f'{self.csrf}\n<input type="hidden" name="action" value="delete_view">\n'
            f'<input type="hidden" name="view_id" value="{vid}">\n'
            f'<input type="hidden" name="state" value="{state}">\n'
            '<button type="submit" class="pc-btn pc-btn-ghost pc-btn-sm">'
            f'Delete<span class="pc-visually-hidden"> {name}</span></button>\n</form>\n</details>\n</li>\n'
        )

    # ----- partials/columns_chooser.html ---------------------------------------------------
    def draw_columns(self) -> str:
        t = self.text
        prefs = self.context.get("preferences")
        url, state = t(_get(prefs, "url")), t(_get(prefs, "state"))
        source = _get(prefs, "columns_source")
        note = ""
        if source == "link":
            note = ' <span class="pc-muted">(from the link)</span>'
        elif source == "saved":
            note = ' <span class="pc-muted">(from the view)</span>'
        parts = [
            '<details class="pc-menu pc-columns" data-pc-menu="columns">\n'
            f'<summary class="pc-btn pc-btn-sm">Columns{note}</summary>\n<div class="pc-menu-panel">\n'
            f"{self.form_open(url, 'columns', state)}"
            '<fieldset class="pc-columns-fields">\n<legend>Columns shown, in order</legend>\n'
            '<ul class="pc-columns-list">\n'
        ]
        for col in _get(prefs, "chooser") or ():
            name, label, shown = t(_get(col, "name")), t(_get(col, "label")), _get(col, "shown")
            parts.append(
                f'<li class="pc-columns-item{"" if shown else " pc-columns-hidden"}">\n'
                f'<input type="hidden" name="column" value="{name}">\n'
                f'<label><input type="checkbox" name="show" value="{name}"{" checked" if shown else ""}>'
                f" {label}</label>\n"
            )
            if shown:
                up = " disabled" if _get(col, "first") else ""
                down = " disabled" if _get(col, "last") else ""
                parts.append(
                    '<span class="pc-columns-move">\n'
                    f'<button type="submit" class="pc-icon-btn" name="move" value="{name}:up" '
                    f'data-pc-key="up-{name}" aria-label="Move {label} left"{up}>'
                    '<span aria-hidden="true">↑</span></button>\n'
                    f'<button type="submit" class="pc-icon-btn" name="move" value="{name}:down" '
                    f'data-pc-key="down-{name}" aria-label="Move {label} right"{down}>'
                    '<span aria-hidden="true">↓</span></button>\n</span>\n'
                )
            parts.append("</li>\n")
        parts.append(
            "</ul>\n</fieldset>\n"
            '<div class="pc-menu-foot">\n<button type="submit" class="pc-btn pc-btn-primary pc-btn-sm" '
            'data-pc-key="apply-columns">Apply</button>\n</div>\n</form>\n'
        )
        if _get(prefs, "customised"):
            parts.append(
                f"{self.form_open(url, 'reset', state, 'pc-menu-foot')}"
                '<button type="submit" class="pc-btn pc-btn-ghost pc-btn-sm">'
                "Reset to the list's columns</button>\n</form>\n"
            )
        parts.append("</div>\n</details>\n")
        return "".join(parts)

    # ----- partials/export_menu.html -------------------------------------------------------
    def draw_export(self) -> str:
        t = self.text
        context = self.context
        plural = t(context.get("verbose_name_plural", ""))
        page_obj = context.get("page_obj")
        count = f" ({floatformat(page_obj.paginator.count, 'g')})" if page_obj else ""
        parts = [
            '\n<details class="pc-menu pc-export" data-pc-menu="export">\n'
            '<summary class="pc-btn pc-btn-sm">Export</summary>\n<div class="pc-menu-panel">\n'
            f'<p class="pc-menu-title">All matching {plural}{count}</p>\n<ul class="pc-saved-list">\n'
        ]
        for link in context.get("export_links") or ():
            parts.append(
                f'<li><a class="pc-link" href="{t(_get(link, "all"))}">{t(_get(link, "label"))}'
                f'<span class="pc-visually-hidden"> of all matching {plural}</span></a></li>'
            )
        parts.append("\n</ul>\n")
        if context.get("bulk_enabled"):
            parts.append(
                '<p class="pc-muted pc-menu-note">To export some rows only, tick them: '
                "the selection bar offers their export.</p>"
            )
        parts.append(
            '\n<p class="pc-muted pc-menu-note">The columns shown, one row per '
            f"{t(context.get('verbose_name', ''))}, with stored values (keys of related rows).</p>\n"
            "</div>\n</details>\n"
        )
        return "".join(parts)

    # ----- partials/filter_fields.html -----------------------------------------------------
    def filter_fields(self) -> str:
        return self.part(FILTER_FIELDS_TEMPLATE, self.draw_filter_fields)

    def draw_filter_fields(self) -> str:
        t = self.text
        context = self.context
        parts = []
        filterset = context.get("filterset")
        if filterset:
            for field in filterset.form:
                parts.append(
                    f'<div class="pc-field">\n<label for="{t(field.id_for_label)}">{t(field.label)}</label>\n'
                    f"{t(field)}\n"
                )
                errors = field.errors
                if errors:
                    parts.append(
                        f'<span class="pc-field-error">{join(errors, " ", autoescape=self.autoescape)}</span>'
                    )
                parts.append("\n</div>\n")
        page_size = context.get("page_size", "")
        parts.append(
            '\n<div class="pc-field pc-field-narrow">\n<label for="pc-page-size">Per page</label>\n'
            f'<select id="pc-page-size" name="{t(context.get("page_size_param", ""))}">\n'
        )
        for option in context.get("page_size_options") or ():
            selected = " selected" if option == page_size else ""
            parts.append(f'<option value="{t(option)}"{selected}>{t(option)}</option>')
        parts.append(
            '\n</select>\n</div>\n<div class="pc-toolbar-actions">\n'
            '<noscript><button type="submit" class="pc-btn">Apply</button></noscript>\n'
        )
        parts.append(self.part(CLEAR_TEMPLATE, self.draw_clear))
        parts.append("\n</div>\n")
        return "".join(parts)

    def draw_clear(self) -> str:
        """``partials/clear_filters.html``, in the toolbar (not out of band)."""
        link = ""
        if self.context.get("is_filtered"):
            href = self.text(_get(self.context.get("urls"), "list"))
            link = f'<a class="pc-btn pc-btn-ghost" href="{href}">Clear</a>'
        oob = ' hx-swap-oob="true"' if self.context.get("oob") else ""
        return f'<span id="pc-clear-filters"{oob}>{link}</span>'


@register.simple_tag(takes_context=True)
def pc_filter_fields(context: template.Context) -> SafeString:
    """What ``{% include "powercrud/partials/filter_fields.html" %}`` draws: the filter form's
    fields (each drawn by its own widget), the page-size choice and the Apply/Clear buttons."""
    return SafeString(MenuRenderer(context).filter_fields())


@register.simple_tag(takes_context=True)
def pc_listbar(context: template.Context) -> SafeString:
    """What ``{% include "powercrud/partials/saved_views_bar.html" %}`` draws."""
    return SafeString(MenuRenderer(context).bar())
