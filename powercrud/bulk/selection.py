"""A user's selection of rows, as plain data: explicit ids, or a stored filter with exceptions.

"Select all N matching" stores the *filter* (a query string), never N ids, so selecting a
million rows costs one small request. Every use re-scopes the selection through the view's
``get_queryset()``; the bulk services then freeze it into exact primary keys before writing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.db import models

SelectionMode = Literal["ids", "all"]


class SelectionError(ValueError):
    """Bad selection input; the message is safe to show and says what to fix."""


@dataclass(frozen=True)
class Selection:
    """``mode="ids"``: exactly ``ids``. ``mode="all"``: rows matching ``query`` (a list query
    string), minus ``excluded``, plus ``included``. Ids are stored as strings."""

    mode: SelectionMode = "ids"
    ids: tuple[str, ...] = ()
    query: str = ""
    excluded: tuple[str, ...] = ()
    included: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return self.mode == "ids" and not self.ids

    def explicit_id_count(self) -> int:
        return len(self.ids) + len(self.excluded) + len(self.included)

    def with_ids(self, pks: Iterable[str], checked: bool) -> Selection:
        """The selection after ticking (``checked``) or unticking ``pks``."""
        pks = list(pks)
        if self.mode == "ids":
            return replace(self, ids=_merge(self.ids, pks, checked))
        excluded = _merge(self.excluded, pks, not checked)
        included = _merge(self.included, pks, checked)
        return replace(self, excluded=excluded, included=included)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "ids": list(self.ids),
            "query": self.query,
            "excluded": list(self.excluded),
            "included": list(self.included),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Selection:
        """Rebuild from session data; anything malformed gives an empty selection.

        Only the shape is checked here; ``clean_selection()`` checks the ids themselves.
        """
        if not isinstance(data, dict) or data.get("mode") not in ("ids", "all"):
            return cls()
        lists = [data.get(name, ()) for name in ("ids", "excluded", "included")]
        query = data.get("query", "")
        if not all(isinstance(ids, list | tuple) for ids in lists) or not isinstance(query, str):
            return cls()
        ids, excluded, included = (tuple(str(v) for v in values) for values in lists)
        return cls(mode=data["mode"], ids=ids, query=query, excluded=excluded, included=included)


def _merge(current: Sequence[str], pks: Sequence[str], add: bool) -> tuple[str, ...]:
    if add:
        seen = set(current)
        return tuple(current) + tuple(pk for pk in dict.fromkeys(pks) if pk not in seen)
    drop = set(pks)
    return tuple(pk for pk in current if pk not in drop)


def clean_pks(model: type[models.Model], raw: Sequence[str], *, cap: int) -> list[str]:
    """Validate posted primary keys for ``model``: at most ``cap``, each a valid key value.

    Returns them as canonical strings (duplicates removed). Raises SelectionError naming the
    first bad value. The cap is checked before anything else, so an oversized post costs no
    parsing and no query.
    """
    if len(raw) > cap:
        raise SelectionError(
            f"Too many ids: {len(raw):,} sent, at most {cap:,} allowed. "
            "Use “select all matching” for large selections."
        )
    pk_field = model._meta.pk
    assert pk_field is not None
    cleaned: list[str] = []
    for value in raw:
        text = str(value).strip()
        try:
            if not text or "\x00" in text:  # PostgreSQL refuses NUL in any text parameter
                raise ValidationError("empty or NUL")
            python = pk_field.to_python(text)
            # Range and length validators: an integer past the column's range is not an id,
            # and SQLite cannot even bind it (OverflowError) when the selection is used.
            pk_field.run_validators(python)
        except ValidationError:
            raise SelectionError(f"{text[:40]!r} is not a valid id for {model._meta.verbose_name}.") from None
        cleaned.append(str(python))
    return list(dict.fromkeys(cleaned))


def clean_selection(model: type[models.Model], selection: Selection, *, cap: int) -> Selection:
    """``selection`` with every stored id checked and canonical, before it reaches a query.

    Raises SelectionError when it holds more than ``cap`` explicit ids (counted before any
    parsing) or an id that is not a valid key of ``model`` (a stale or tampered session).
    """
    count = selection.explicit_id_count()
    if count > cap:
        raise SelectionError(f"The stored selection holds {count:,} ids, more than the {cap:,} allowed.")
    return replace(
        selection,
        ids=tuple(clean_pks(model, selection.ids, cap=cap)),
        excluded=tuple(clean_pks(model, selection.excluded, cap=cap)),
        included=tuple(clean_pks(model, selection.included, cap=cap)),
    )
