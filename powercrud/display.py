"""A user's display settings (row density, theme) for one request: read at most once, shared
by the view and every template of the page.

Signed-in users keep them in one ``ViewPreference`` row of kind ``display`` (saved through a
list's ``preferences/`` URL, ``action=display``), so they follow the user to every browser.
A list page reads that row in the same query as the user's columns and saved views and keeps
it on the request; any other page (a form, a detail page, the task dashboard) reads it once,
when its template asks (``{% pc_display %}``, ``{% pc_theme_attribute %}``). Anonymous users,
and views that do not store them (a bare ``CRUDView``, ``remember_display = False``), keep
them in the browser's ``pc_density`` and ``pc_theme`` cookies, as before; a signed-in user
who has not chosen a setting yet also gets that cookie's value.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from powercrud.models import ViewPreference
from powercrud.preferences import Display, resolve_display

REQUEST_ATTRIBUTE = "_powercrud_display"
"""Where a request keeps its ``Display`` once read."""

DISPLAY = ViewPreference.Kind.DISPLAY


def stores_display(view: Any) -> bool:
    """Whether the page's settings come from the database: always, but on the pages of a
    ``CRUDView`` without ``remember_display`` (a bare one) or with it off."""
    from powercrud.views import CRUDView

    if not isinstance(view, CRUDView):
        return True
    return bool(getattr(view, "remember_display", False))


def keep_display(request: HttpRequest, stored: Any) -> Display:
    """The request's settings from ``stored`` (a ``ViewPreference.display``, or None) and its
    cookies, kept on the request so nothing reads them again."""
    display = resolve_display(stored, request.COOKIES)
    setattr(request, REQUEST_ATTRIBUTE, display)
    return display


def display_for(request: HttpRequest, view: Any = None) -> Display:
    """The settings to show on this request: kept ones at no cost, else one query for a
    signed-in user (the cookies alone for anyone else, or when ``view`` does not store them)."""
    kept = getattr(request, REQUEST_ATTRIBUTE, None)
    if isinstance(kept, Display):
        return kept
    user = getattr(request, "user", None)
    stored = None
    if user is not None and user.is_authenticated and stores_display(view):
        stored = (
            ViewPreference.objects.filter(user_id=user.pk, kind=DISPLAY, view_key=ViewPreference.DISPLAY_KEY)
            .values_list("display", flat=True)
            .first()
        )
    return keep_display(request, stored)


def save_display(user_id: Any, changes: dict[str, str]) -> dict[str, str]:
    """Store ``changes`` (already checked by ``preferences.parse_display_form()``) over the
    user's stored settings; the settings now stored."""
    row, created = ViewPreference.objects.get_or_create(
        user_id=user_id, kind=DISPLAY, view_key=ViewPreference.DISPLAY_KEY, defaults={"display": changes}
    )
    if not created:
        current = row.display if isinstance(row.display, dict) else {}
        row.display = {**current, **changes}
        row.save(update_fields=["display", "updated_at"])
    return dict(row.display)


__all__ = ["REQUEST_ATTRIBUTE", "display_for", "keep_display", "save_display", "stores_display"]
