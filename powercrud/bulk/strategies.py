"""How a bulk update is written, and which per-row checks it needs.

Two write strategies:

``SET_BASED``
    One ``UPDATE ... WHERE pk IN (batch)`` per batch, with no per-row fetch. Chosen when no
    per-row Python code can observe the change: the model does not override ``save()`` and
    has no ``pre_save``/``post_save`` receivers. Rows whose values already match are left
    alone, so ``changed`` comes from the UPDATE's row count.

``PER_OBJECT``
    Each changed row is loaded (all concrete fields, once per batch) and saved with
    ``save(update_fields=[...])`` so the model's ``save()`` and its signals run. Chosen when the
    model overrides ``save()`` or has ``pre_save``/``post_save`` receivers for that model.
    A receiver connected without a sender listens to every model and so also forces this path.

Per-row validation (independent of the strategy) runs only where a row can fail on its own:
the model overrides ``clean()``, or a changed field is unique (alone or in
``unique_together``), or a model constraint refers to a changed field. Field-level
validation (``to_python``, ``validate``, validators) depends only on the value, which is the
same for every row, so it runs once per run instead of once per row.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import models
from django.db.models.constraints import BaseConstraint
from django.db.models.signals import post_save, pre_save
from django.utils import timezone


class WriteStrategy(enum.Enum):
    """How the plain (non many-to-many) fields of a batch are written."""

    SET_BASED = "set_based"
    PER_OBJECT = "per_object"


def overrides_save(model: type[models.Model]) -> bool:
    """True when ``model`` (or a base class of it) overrides ``Model.save``."""
    return model.save is not models.Model.save


def has_save_receivers(model: type[models.Model]) -> bool:
    """True when ``pre_save`` or ``post_save`` has a receiver that ``model`` would trigger."""
    return pre_save.has_listeners(model) or post_save.has_listeners(model)


def choose_strategy(model: type[models.Model], fields: Iterable[str]) -> WriteStrategy:
    """``PER_OBJECT`` when saving a row can run Python code, else ``SET_BASED``.

    ``fields`` are the names being written; many-to-many names never need ``save()``, so an
    update of many-to-many fields alone is always ``SET_BASED``.
    """
    concrete = [name for name in fields if not _is_m2m(model, name)]
    if concrete and (overrides_save(model) or has_save_receivers(model)):
        return WriteStrategy.PER_OBJECT
    return WriteStrategy.SET_BASED


def _is_m2m(model: type[models.Model], name: str) -> bool:
    return bool(model._meta.get_field(name).many_to_many)


def all_constraints(
    model: type[models.Model],
) -> list[tuple[type[models.Model], BaseConstraint]]:
    """The model's constraints and its concrete parents', each with the model declaring it."""
    found = [(model, c) for c in model._meta.constraints]
    for parent in model._meta.get_parent_list():
        found += [(parent, c) for c in parent._meta.constraints]
    return found


def constraint_fields(constraint: BaseConstraint) -> frozenset[str] | None:
    """The field names a constraint refers to, or None when they cannot be worked out."""
    if isinstance(constraint, models.CheckConstraint):
        condition = getattr(constraint, "condition", None) or getattr(constraint, "check", None)
        return frozenset(models.Q(condition).referenced_base_fields)
    if isinstance(constraint, models.UniqueConstraint):
        names = set(constraint.fields)
        if constraint.expressions:
            names |= models.Q(*constraint.expressions).referenced_base_fields
        if constraint.condition is not None:
            names |= models.Q(constraint.condition).referenced_base_fields
        return frozenset(names)
    return None  # e.g. PostgreSQL's ExclusionConstraint: treated as touching every field


@dataclass(frozen=True)
class RowChecks:
    """Which per-row validation an update needs, and which fields it must load."""

    clean: bool = False
    unique: bool = False
    constraints: tuple[tuple[type[models.Model], BaseConstraint], ...] = ()
    fields: frozenset[str] = field(default_factory=frozenset)

    @property
    def needed(self) -> bool:
        """True when any per-row check applies."""
        return self.clean or self.unique or bool(self.constraints)


def row_checks(model: type[models.Model], names: Sequence[str]) -> RowChecks:
    """The per-row checks an update of the concrete fields ``names`` needs on ``model``."""
    changed = set(names)
    every = {f.name for f in model._meta.concrete_fields}
    load = set(changed)
    unique = False
    for name in changed:
        model_field = model._meta.get_field(name)
        if getattr(model_field, "unique", False) and not getattr(model_field, "primary_key", False):
            unique = True
    for klass in [model, *model._meta.get_parent_list()]:
        for group in klass._meta.unique_together:
            if changed.intersection(group):
                unique = True
                load.update(group)
    constraints = []
    for klass, constraint in all_constraints(model):
        referenced = constraint_fields(constraint)
        if referenced is None:
            referenced = frozenset(every)
        pk_name = model._meta.pk.name
        referenced = frozenset(pk_name if n == "pk" else n for n in referenced)
        if changed.intersection(referenced):
            constraints.append((klass, constraint))
            load.update(n for n in referenced if n in every)
    return RowChecks(
        clean=model.clean is not models.Model.clean,
        unique=unique,
        constraints=tuple(constraints),
        fields=frozenset(load),
    )


def auto_now_fields(model: type[models.Model], names: Iterable[str]) -> tuple[models.Field[Any, Any], ...]:
    """Fields with ``auto_now=True`` that are not among ``names``: a write refreshes them."""
    skip = set(names)
    return tuple(
        f for f in model._meta.concrete_fields if getattr(f, "auto_now", False) and f.name not in skip
    )


def auto_now_values(fields: Iterable[models.Field[Any, Any]]) -> Mapping[str, Any]:
    """The value each ``auto_now`` field would get from ``save()`` now."""
    values: dict[str, Any] = {}
    for f in fields:
        if isinstance(f, models.DateTimeField):
            values[f.name] = timezone.now()
        elif isinstance(f, models.DateField):
            values[f.name] = datetime.date.today()
        elif isinstance(f, models.TimeField):
            values[f.name] = datetime.datetime.now().time()
    return values
