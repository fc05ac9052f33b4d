"""Single-valued request parameters: a parameter sent twice is refused, never guessed.

``QueryDict.get()`` quietly takes the last of several values, so ``dry_run=1&dry_run=0``
would run a real delete. Handlers read a one-value parameter through ``single()`` and check
all of a form's with ``refuse_repeated()``; both raise ``RepeatedParameter``, which the views
answer with a 400 naming the parameter, before anything is written, queued or locked.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.http import QueryDict

__all__ = ["RepeatedParameter", "refuse_repeated", "single"]


class RepeatedParameter(ValueError):
    """A parameter that takes one value arrived with several; ``message`` says which."""

    def __init__(self, name: str, count: int) -> None:
        self.name = name
        self.message = (
            f"The parameter “{name}” was sent {count} times, but it takes one value; "
            "nothing was changed. Reload the page and try again."
        )
        super().__init__(self.message)


def single(data: QueryDict, name: str, default: str = "") -> str:
    """The one value of ``name`` in ``data`` (``default`` when absent)."""
    values = data.getlist(name)
    if len(values) > 1:
        raise RepeatedParameter(name, len(values))
    return values[0] if values else default


def refuse_repeated(data: QueryDict, names: Iterable[str]) -> None:
    """Raise ``RepeatedParameter`` for the first of ``names`` that ``data`` holds several times.

    Only the parameters a handler reads are checked; others are ignored, as they always are.
    """
    for name in names:
        single(data, name)
