"""``{% load pc_display %}``: the user's row density and theme in any template.

``{% pc_theme_attribute %}`` goes inside ``<html ...>`` and gives ``data-pc-theme="dark"`` (or
"light", or nothing to follow the system); ``{% pc_display as display %}`` gives the
``Display`` itself (``display.density``, ``display.theme``). Both read the settings at most
once a request (``powercrud.display``); on a list page, not at all (the list read them).
"""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from powercrud.display import display_for
from powercrud.preferences import Display

register = template.Library()


@register.simple_tag(takes_context=True)
def pc_display(context: template.Context) -> Display:
    request = context.get("request")
    if request is None:
        return Display()
    return display_for(request, context.get("view"))


@register.simple_tag(takes_context=True)
def pc_theme_attribute(context: Any) -> SafeString:
    value = pc_display(context).theme_attribute
    return format_html(' data-pc-theme="{}"', value) if value else SafeString("")
