"""Many-to-many edits as set-based operations on the through table.

Per batch and per field, at most one read of the existing links, one DELETE and one
``bulk_create(ignore_conflicts=True)``, whatever the number of rows.

``m2m_changed`` is not sent: the links are written directly on the through table, as
``QuerySet.update()`` skips ``save()``. If the through model has ``m2m_changed`` receivers
that must run, write a service that calls ``instance.<field>.add()`` per row instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import models
from django.db.models.signals import m2m_changed

from powercrud.bulk.types import BulkInputError
from powercrud.bulk.values import M2MChange, M2MOp


@dataclass(frozen=True)
class M2MEdit:
    """One many-to-many field's edit, resolved against its through table."""

    name: str
    op: M2MOp
    ids: frozenset[Any]
    through: type[models.Model]
    source: str  # attname on the through model pointing at the edited row
    target: str  # attname on the through model pointing at the related row

    @property
    def has_m2m_changed_receivers(self) -> bool:
        """True when ``m2m_changed`` receivers exist for the through model (they are not run)."""
        return m2m_changed.has_listeners(self.through)

    def apply(self, current: frozenset[Any]) -> frozenset[Any]:
        """The related primary keys a row will have, given those it has now."""
        if self.op == "add":
            return current | self.ids
        if self.op == "remove":
            return current - self.ids
        return self.ids


def resolve_edit(model: type[models.Model], name: str, change: M2MChange, using: str) -> M2MEdit:
    """An ``M2MEdit`` for ``change``; checks that the ids to link exist (one query)."""
    field = model._meta.get_field(name)
    assert isinstance(field, models.ManyToManyField)
    remote = field.remote_field
    through = remote.through
    assert through is not None  # set once the model class is prepared
    related: type[models.Model] = field.related_model
    if not through._meta.auto_created:
        raise BulkInputError(
            name,
            f"'{name}' uses the custom through model {through._meta.label}; bulk edit only "
            "writes automatic many-to-many tables. Write a service for it instead.",
        )
    if related is model and getattr(remote, "symmetrical", False):
        raise BulkInputError(
            name, f"'{name}' is a symmetrical relation to itself, which bulk edit does not write."
        )
    ids = frozenset(change.ids)
    if change.op != "remove" and ids:
        choices = related._base_manager.using(using).filter(pk__in=ids)
        limit = field.get_limit_choices_to()
        if limit:
            choices = choices.complex_filter(limit)
        missing = ids - set(choices.values_list("pk", flat=True))
        if missing:
            listed = ", ".join(str(pk) for pk in sorted(missing, key=str))
            raise BulkInputError(
                name,
                f"'{name}': no {related._meta.verbose_name} with id {listed} can be linked "
                "(it does not exist or is not an allowed choice).",
            )
    return link_edit(model, name, change.op, ids)


def link_edit(model: type[models.Model], name: str, op: M2MOp, ids: frozenset[Any]) -> M2MEdit:
    """An ``M2MEdit`` of field ``name`` (its through table and columns), unchecked."""
    field = model._meta.get_field(name)
    assert isinstance(field, models.ManyToManyField)
    through = field.remote_field.through
    assert through is not None
    source = through._meta.get_field(field.m2m_field_name()).attname  # type: ignore[union-attr]
    target = through._meta.get_field(field.m2m_reverse_field_name()).attname  # type: ignore[union-attr]
    return M2MEdit(name=name, op=op, ids=ids, through=through, source=source, target=target)


def read_links(edit: M2MEdit, using: str, pks: Sequence[Any]) -> dict[Any, frozenset[Any]]:
    """The related primary keys each of ``pks`` links to now (one query)."""
    found: dict[Any, set[Any]] = {pk: set() for pk in pks}
    rows = (
        edit.through._base_manager.using(using)
        .filter(**{f"{edit.source}__in": pks})
        .values_list(edit.source, edit.target)
    )
    for source, target in rows:
        found.setdefault(source, set()).add(target)
    return {pk: frozenset(targets) for pk, targets in found.items()}


def write_links(
    edit: M2MEdit, using: str, rows: Iterable[tuple[Any, frozenset[Any], frozenset[Any]]]
) -> None:
    """Move each ``(pk, old, new)`` row from its old links to its new ones, set-based."""
    to_add: list[tuple[Any, Any]] = []
    drop_from: list[Any] = []
    for pk, old, new in rows:
        to_add += [(pk, target) for target in new - old]
        if old - new:
            drop_from.append(pk)
    manager = edit.through._base_manager.using(using)
    if drop_from:
        if edit.op == "remove":
            manager.filter(**{f"{edit.source}__in": drop_from, f"{edit.target}__in": edit.ids}).delete()
        else:  # replace: every link outside the new set goes
            manager.filter(**{f"{edit.source}__in": drop_from}).exclude(
                **{f"{edit.target}__in": edit.ids}
            ).delete()
    if to_add:
        manager.bulk_create(
            [edit.through(**{edit.source: pk, edit.target: target}) for pk, target in to_add],
            ignore_conflicts=True,
        )


def m2m_changes(values: Mapping[str, Any]) -> dict[str, M2MChange]:
    """The many-to-many entries of ``from_field_data()`` output."""
    return {name: value for name, value in values.items() if isinstance(value, M2MChange)}
