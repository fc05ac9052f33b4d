"""Lifecycle hooks: code a project runs before and after powercrud creates, updates or deletes rows.

Hooks are registered per model, at import time (an app's ``AppConfig.ready()`` or its models
module), so a web process and a worker process hold the same hooks::

    from powercrud.bulk import lifecycle
    from powercrud.bulk.lifecycle import changed, changed_to

    @lifecycle.before_update(Book, when=changed_to("status", "archived"))
    def refuse_archiving_unpaid(pairs):
        return [lifecycle.refuse(new, "status", "Unpaid books cannot be archived.")
                for new, old in pairs if not new.paid]

Every hook is called once per batch with a list of ``Pair(new, old)`` model instances: ``old``
is None for a create, ``new`` is None for a delete; only the pairs whose ``when`` condition
holds are passed, and a hook with no such pair is not called. A ``before_*`` hook refuses
rows by returning ``RowError`` objects (``refuse()`` builds one) or raising ``BulkHookError``
or a ``ValidationError``; a refused row is that row's failure (all-or-nothing runs then write
nothing). An ``after_*`` hook runs inside the write's transaction; an exception there aborts
the whole write. ``powercrud.E027`` reports a hook registered for a model that is not
installed. See docs/guides/lifecycle-hooks.md for which writes call them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django.core.exceptions import ValidationError
from django.db import models

from powercrud.bulk.codec import json_pk
from powercrud.bulk.types import BulkHookError, RowError


class Event(enum.Enum):
    """When a hook runs."""

    BEFORE_CREATE = "before_create"
    AFTER_CREATE = "after_create"
    BEFORE_UPDATE = "before_update"
    AFTER_UPDATE = "after_update"
    BEFORE_DELETE = "before_delete"
    AFTER_DELETE = "after_delete"

    @property
    def is_before(self) -> bool:
        return self.value.startswith("before")


CREATE = (Event.BEFORE_CREATE, Event.AFTER_CREATE)
UPDATE = (Event.BEFORE_UPDATE, Event.AFTER_UPDATE)
DELETE = (Event.BEFORE_DELETE, Event.AFTER_DELETE)


class Pair(NamedTuple):
    """One row of a write: ``new`` as it is written (None for a delete), ``old`` as it was
    stored before (None for a create)."""

    new: models.Model | None
    old: models.Model | None

    @property
    def pk(self) -> Any:
        row = self.new if self.new is not None else self.old
        return None if row is None else row.pk


# --- conditions -----------------------------------------------------------------------------------


def _value(row: models.Model | None, name: str) -> Any:
    if row is None:
        return None
    model_field = row._meta.get_field(name)
    return getattr(row, getattr(model_field, "attname", name))


@dataclass(frozen=True)
class Condition:
    """A test of one pair; combine with ``&``, ``|`` and ``~``."""

    test: Callable[[Pair], bool]
    label: str

    def __call__(self, pair: Pair) -> bool:
        return bool(self.test(pair))

    def __and__(self, other: Condition) -> Condition:
        return Condition(lambda p: self(p) and other(p), f"({self.label} and {other.label})")

    def __or__(self, other: Condition) -> Condition:
        return Condition(lambda p: self(p) or other(p), f"({self.label} or {other.label})")

    def __invert__(self) -> Condition:
        return Condition(lambda p: not self(p), f"not {self.label}")


def changed(*names: str) -> Condition:
    """True when any of ``names`` differs between old and new. A create (no old) or a delete
    (no new) counts as a change of every field."""
    if not names:
        raise ValueError("changed() needs at least one field name.")

    def test(pair: Pair) -> bool:
        if pair.old is None or pair.new is None:
            return True
        return any(_value(pair.new, n) != _value(pair.old, n) for n in names)

    return Condition(test, f"changed({', '.join(names)})")


def changed_to(name: str, value: Any) -> Condition:
    """True when ``name`` holds ``value`` after the write and did not before (a create that
    sets it counts). For a foreign key, ``value`` is the related row's primary key."""

    def test(pair: Pair) -> bool:
        if pair.new is None:
            return False
        return bool(_value(pair.new, name) == value) and (pair.old is None or _value(pair.old, name) != value)

    return Condition(test, f"changed_to({name}, {value!r})")


def changed_from(name: str, value: Any) -> Condition:
    """True when ``name`` held ``value`` before the write and does not after (a delete counts)."""

    def test(pair: Pair) -> bool:
        if pair.old is None:
            return False
        return bool(_value(pair.old, name) == value) and (pair.new is None or _value(pair.new, name) != value)

    return Condition(test, f"changed_from({name}, {value!r})")


# --- the registry ---------------------------------------------------------------------------------

Hook = Callable[[list[Pair]], Any]


@dataclass(frozen=True)
class Registration:
    """One hook for one event of one model (``model`` is an ``"app_label.Model"`` label)."""

    model: str
    event: Event
    hook: Hook
    when: Condition | None


_registry: list[Registration] = []


def _label(model: type[models.Model] | str) -> str:
    return model.lower() if isinstance(model, str) else model._meta.label_lower


def register(
    event: Event, model: type[models.Model] | str, hook: Hook, *, when: Condition | None = None
) -> Hook:
    """Register ``hook`` for ``event`` on ``model`` (a class or ``"app_label.Model"``); returns it.

    Registering the same function twice for the same event and model keeps one."""
    entry = Registration(_label(model), Event(event), hook, when)
    if not any(r.model == entry.model and r.event is entry.event and r.hook == hook for r in _registry):
        _registry.append(entry)
    return hook


def unregister(hook: Hook) -> None:
    """Remove every registration of ``hook``."""
    _registry[:] = [r for r in _registry if r.hook != hook]


def registrations() -> tuple[Registration, ...]:
    """Every registration, in order (for the system checks and tests)."""
    return tuple(_registry)


def _decorator(event: Event) -> Callable[..., Callable[[Hook], Hook]]:
    def decorator(
        model: type[models.Model] | str, *, when: Condition | None = None
    ) -> Callable[[Hook], Hook]:
        return lambda hook: register(event, model, hook, when=when)

    decorator.__name__ = event.value
    decorator.__doc__ = f"``@{event.value}(Model, when=...)``: register the decorated function."
    return decorator


before_create = _decorator(Event.BEFORE_CREATE)
after_create = _decorator(Event.AFTER_CREATE)
before_update = _decorator(Event.BEFORE_UPDATE)
after_update = _decorator(Event.AFTER_UPDATE)
before_delete = _decorator(Event.BEFORE_DELETE)
after_delete = _decorator(Event.AFTER_DELETE)


def hooks_for(model: type[models.Model], event: Event) -> list[Registration]:
    """The registrations for ``event`` on ``model`` or one of its concrete parents."""
    labels = {model._meta.label_lower, *(p._meta.label_lower for p in model._meta.get_parent_list())}
    return [r for r in _registry if r.event is event and r.model in labels]


def has_hooks(model: type[models.Model], events: Iterable[Event]) -> bool:
    """True when a hook is registered for any of ``events`` on ``model``."""
    return any(hooks_for(model, event) for event in events)


# --- running them ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal(RowError):
    """A ``RowError`` that also holds the refused instance, so a row not yet created (no
    primary key) is still told apart from the others of its batch."""

    row: Any = field(default=None, compare=False, repr=False)


def refuse(row: models.Model | Any, field: str | None, message: str) -> RowError:
    """A ``RowError`` refusing ``row`` (an instance of the pairs, or a primary key) for
    ``field`` (None: the row as a whole)."""
    if isinstance(row, models.Model):
        return Refusal(pk=row.pk, field=field, messages=(message,), row=row)
    return RowError(pk=row, field=field, messages=(message,))


def _refusals(result: Any, exc: BaseException | None, pairs: Sequence[Pair]) -> dict[int, list[RowError]]:
    """The refusals of one before hook's call by the pair's index in ``pairs``; a ``RowError``
    with no row and no pk refuses every pair."""
    if isinstance(exc, BulkHookError):
        found: Iterable[Any] = exc.errors
    elif isinstance(exc, ValidationError):
        if hasattr(exc, "error_dict"):
            found = [RowError(None, n, tuple(ValidationError(e).messages)) for n, e in exc.error_dict.items()]
        else:
            found = [RowError(None, None, tuple(exc.messages))]
        found = [RowError(None, None if e.field == "__all__" else e.field, e.messages) for e in found]
    elif result is None:
        return {}
    elif isinstance(result, RowError):
        found = [result]
    else:
        found = list(result)
    by_pk = {json_pk(pair.pk): i for i, pair in enumerate(pairs) if pair.pk is not None}
    errors: dict[int, list[RowError]] = {}
    for error in found:
        if not isinstance(error, RowError):
            raise TypeError(f"A before hook returns RowError objects (lifecycle.refuse()), not {error!r}.")
        row = getattr(error, "row", None)
        if row is not None:
            targets = [i for i, p in enumerate(pairs) if p.new is row or p.old is row]
        elif error.pk is None:
            targets = list(range(len(pairs)))
        else:
            targets = [by_pk[error.pk]] if error.pk in by_pk else []
        for i in targets:
            plain = RowError(pairs[i].pk, error.field, error.messages)
            errors.setdefault(i, []).append(plain)
    return errors


def run(event: Event, model: type[models.Model], pairs: Sequence[Pair]) -> dict[int, list[RowError]]:
    """Call every hook of ``event`` on ``model`` with the pairs its condition keeps.

    Returns the refusals of before hooks by the pair's index in ``pairs`` (empty for after
    hooks; their exceptions propagate). A refused pair is not passed to later hooks of the
    same event."""
    refused: dict[int, list[RowError]] = {}
    for registration in hooks_for(model, event):
        chosen = [i for i in range(len(pairs)) if i not in refused]
        if registration.when is not None:
            chosen = [i for i in chosen if registration.when(pairs[i])]
        if not chosen:
            continue
        given = [pairs[i] for i in chosen]
        if not event.is_before:
            registration.hook(given)
            continue
        try:
            result, exc = registration.hook(given), None
        except (BulkHookError, ValidationError) as raised:
            result, exc = None, raised
        for index, errors in _refusals(result, exc, given).items():
            refused.setdefault(chosen[index], []).extend(errors)
    return refused


def snapshot(instance: models.Model) -> models.Model:
    """A shallow copy of ``instance`` as it is now (the ``old`` of a pair): its field values
    and its state, as ``copy.copy()`` would give but without pickling's detour (a third of a
    hooked bulk edit's time went there)."""
    cls = type(instance)
    clone = cls.__new__(cls)
    values = instance.__dict__.copy()
    old_state = instance._state
    state = type(old_state).__new__(type(old_state))
    state.__dict__.update(old_state.__dict__)
    state.fields_cache = dict(old_state.fields_cache)
    values["_state"] = state
    clone.__dict__.update(values)
    return clone


class LifecycleRefused(Exception):
    """A before hook refused the one row of a single-object write."""

    def __init__(self, errors: Sequence[RowError]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(" ".join(e.messages) for e in self.errors))


def write_one(
    model: type[models.Model],
    kind: str,
    new: models.Model | None,
    old: models.Model | None,
    write: Callable[[], Any],
) -> Any:
    """One form or inline write (``kind``: "create", "update" or "delete") with its hooks:
    before hooks with ``Pair(new, old)`` (skipped when ``new`` is None for a create or update:
    a form that is not a ModelForm), ``write()``, after hooks with the written object (what
    ``write()`` returned for a create or update). Raises ``LifecycleRefused``; returns what
    ``write()`` returned. Call it inside a transaction."""
    before, after = {"create": CREATE, "update": UPDATE, "delete": DELETE}[kind]
    if kind != "delete" and new is None:
        result = write()
        if isinstance(result, models.Model):
            run(after, model, [Pair(result, old)])
        return result
    pair = Pair(new, old)
    refused = run(before, model, [pair])
    if refused:
        raise LifecycleRefused([e for errors in refused.values() for e in errors])
    result = write()
    written = result if kind != "delete" and isinstance(result, models.Model) else new
    run(after, model, [Pair(written, old)])
    return result


def stored(instance: models.Model) -> models.Model | None:
    """``instance``'s row as the database holds it now (None when it is gone)."""
    manager = type(instance)._base_manager.using(instance._state.db or "default")
    return manager.filter(pk=instance.pk).first()
