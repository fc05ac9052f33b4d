"""Column choices, saved views and display settings, as plain data: what a stored or linked
choice means.

Nothing here touches the database or a request. The list screen (``mixins/preferences.py``)
reads one user's ``ViewPreference`` rows for a view in one query and asks these functions
which columns to show, what the list's state is as a query string, and how a choice changes.
A stored or linked name that the view does not have (a column removed since, a typo in a
link) is dropped, never an error. The display settings (row density, theme) are the user's
on every screen; ``powercrud.display`` reads them for a request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.http import QueryDict

SAVED_VIEW_PARAM = "view"
"""The query-string key naming the user's own saved view being shown (``?view=12``)."""

COLUMNS_PARAM = "columns"
"""The query-string key of a shared link's columns, comma separated (``?columns=title,price``)."""

# Keys that are not part of a list's state worth saving or sharing.
NOT_STATE = ("page", SAVED_VIEW_PARAM, COLUMNS_PARAM, "csrfmiddlewaretoken")

MAX_QUERY_LENGTH = 2000
MAX_NAME_LENGTH = 100
MAX_SAVED_VIEWS = 50
MAX_COLUMNS = 200


def choose_columns(available: Sequence[str], wanted: Iterable[Any] | None) -> list[str]:
    """The names of ``wanted`` that are ``available``, in ``wanted``'s order, each once.

    Anything else (unknown names, non-strings, a stored value that is not a list) is dropped;
    an empty result means "the view's own columns".
    """
    if not isinstance(wanted, (list, tuple)):
        return []
    known = set(available)
    chosen: list[str] = []
    for name in list(wanted)[:MAX_COLUMNS]:
        if isinstance(name, str) and name in known and name not in chosen:
            chosen.append(name)
    return chosen


def parse_columns_param(raw: str) -> list[str]:
    """``"title, price"`` -> ``["title", "price"]`` (not yet checked against the view)."""
    return [part.strip() for part in raw.split(",")[:MAX_COLUMNS] if part.strip()]


def list_state(params: QueryDict | str) -> str:
    """The list's state as a query string: filters, search, sort and page size, without the
    page number, the saved view id, the linked columns and any empty value."""
    source = QueryDict(params) if isinstance(params, str) else params
    state = QueryDict(mutable=True)
    for key in sorted(source):
        if key in NOT_STATE:
            continue
        values = [v for v in source.getlist(key) if v != ""]
        if values:
            state.setlist(key, values)
    return state.urlencode()


def chooser_rows(available: Sequence[str], shown: Sequence[str]) -> list[tuple[str, bool]]:
    """Every column once, in the chooser's order: the shown ones as shown, then the hidden
    ones in the view's own order; each with whether it is shown."""
    rows = [(name, True) for name in shown]
    rows += [(name, False) for name in available if name not in shown]
    return rows


def apply_column_form(
    available: Sequence[str], order: Iterable[str], shown: Iterable[str], move: str = ""
) -> list[str]:
    """The columns to store from a chooser form: ``order`` (every column as listed),
    ``shown`` (the ticked ones) and an optional ``move`` (``"<name>:up"`` or ``"<name>:down"``).

    Unknown names are dropped; columns missing from ``order`` follow in the view's order.
    """
    ordered = choose_columns(available, list(order))
    ordered += [name for name in available if name not in ordered]
    ticked = set(choose_columns(available, list(shown)))
    name, _, direction = move.partition(":")
    if name in ordered and direction in ("up", "down"):
        index = ordered.index(name)
        # Move among the shown columns (the hidden ones have no visible place to swap with).
        visible = [i for i, n in enumerate(ordered) if n in ticked]
        if index in visible:
            position = visible.index(index)
            other = position - 1 if direction == "up" else position + 1
            if 0 <= other < len(visible):
                j = visible[other]
                ordered[index], ordered[j] = ordered[j], ordered[index]
    return [name for name in ordered if name in ticked]


def clean_name(raw: str) -> str:
    """A saved view's name: whitespace collapsed, at most ``MAX_NAME_LENGTH`` characters."""
    return " ".join(raw.split())[:MAX_NAME_LENGTH]


# ----- display settings --------------------------------------------------------------------
DISPLAY_CHOICES: dict[str, tuple[str, ...]] = {
    "density": ("compact", "comfortable"),
    "theme": ("auto", "light", "dark"),
}
"""Each display setting and its values; the first is the default."""

DISPLAY_COOKIE_PREFIX = "pc_"
"""Anonymous users (and views that do not store them) keep each setting in a cookie: ``pc_density``."""


class BadDisplayChoice(ValueError):
    """A display setting sent with a value it does not take; ``field`` names the setting."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class Display:
    """A user's row density and theme, as shown; ``stored`` when they come from the database."""

    density: str = DISPLAY_CHOICES["density"][0]
    theme: str = DISPLAY_CHOICES["theme"][0]
    stored: bool = False

    @property
    def theme_attribute(self) -> str:
        """``data-pc-theme``'s value on ``<html>``: "light" or "dark"; empty to follow the system."""
        return "" if self.theme == "auto" else self.theme


def resolve_display(stored: Any, cookies: Mapping[str, str]) -> Display:
    """The settings to show: each from the stored ones (``ViewPreference.display``), else from
    its cookie, else its default. Values that are not known choices are ignored."""
    stored = stored if isinstance(stored, dict) else {}
    values: dict[str, str] = {}
    for name, choices in DISPLAY_CHOICES.items():
        for candidate in (stored.get(name), cookies.get(DISPLAY_COOKIE_PREFIX + name)):
            if isinstance(candidate, str) and candidate in choices:
                values[name] = candidate
                break
    return Display(stored=bool(stored), **values)


def parse_display_form(data: Mapping[str, str]) -> dict[str, str]:
    """The settings a form changes, ``{"density": "comfortable"}``, from its one value each
    (already read with ``params.single()``; absent ones are left out).

    ``BadDisplayChoice`` names the first setting whose value is not one of its choices, and
    is raised too when the form changes none.
    """
    changes: dict[str, str] = {}
    for name, choices in DISPLAY_CHOICES.items():
        if name not in data:
            continue
        value = data[name]
        if value not in choices:
            raise BadDisplayChoice(
                name, f"“{name}” must be one of: {', '.join(choices)}; nothing was changed."
            )
        changes[name] = value
    if not changes:
        raise BadDisplayChoice("", "Choose a row density or a theme; nothing was changed.")
    return changes


__all__ = [
    "COLUMNS_PARAM",
    "DISPLAY_CHOICES",
    "DISPLAY_COOKIE_PREFIX",
    "BadDisplayChoice",
    "Display",
    "MAX_QUERY_LENGTH",
    "MAX_SAVED_VIEWS",
    "SAVED_VIEW_PARAM",
    "apply_column_form",
    "choose_columns",
    "chooser_rows",
    "clean_name",
    "list_state",
    "parse_columns_param",
    "parse_display_form",
    "resolve_display",
]
