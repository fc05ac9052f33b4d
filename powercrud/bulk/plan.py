"""What one bulk update will do, worked out once, and the rows of a batch as it reads them.

``UpdatePlan`` is built once per run: the validated values, the many-to-many edits, the
write strategy, the per-row checks, and how much of each batch must be read (``Load``):
nothing on the fast path, the old values of the changed fields, or model instances.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models

from powercrud.bulk.codec import sorted_values
from powercrud.bulk.keys import in_batch
from powercrud.bulk.lifecycle import snapshot
from powercrud.bulk.m2m import M2MEdit, read_links
from powercrud.bulk.strategies import RowChecks, WriteStrategy
from powercrud.bulk.types import BulkContext, BulkInputError, RowChange
from powercrud.conf import settings as pc_settings


class Load(enum.Enum):
    """How much of a batch is read before writing."""

    NONE = "none"  # fast path: nothing, one UPDATE per batch
    VALUES = "values"  # the old values of the changed fields
    INSTANCES = "instances"  # model instances, for save(), clean() and validate_row


@dataclass(frozen=True)
class UpdatePlan:
    """Everything decided once per run."""

    model: type[models.Model]
    using: str
    context: BulkContext
    values: Mapping[str, Any]  # plain field name -> Python value (foreign keys: the pk)
    attnames: Mapping[str, str]
    m2m: tuple[M2MEdit, ...]
    strategy: WriteStrategy
    checks: RowChecks
    exclude: frozenset[str]  # fields left out of per-row checks
    auto_now: tuple[models.Field[Any, Any], ...]
    load: Load
    only: tuple[str, ...] | None  # fields loaded on instances; None: all concrete fields
    validate_row: bool
    before_batch: bool
    after_batch: bool
    lifecycle: bool = False  # update hooks registered (powercrud.bulk.lifecycle): rows read as instances


@dataclass
class Row:
    """One row of a batch: its old and new values (many-to-many as sorted pk tuples)."""

    pk: Any
    instance: models.Model | None
    old: dict[str, Any]
    new: dict[str, Any]
    links: dict[str, tuple[frozenset[Any], frozenset[Any]]] = field(default_factory=dict)
    plain_changed: bool = False
    before: models.Model | None = None  # the instance as read, for lifecycle hooks' old

    @property
    def changed(self) -> bool:
        """True when writing this row changes anything."""
        return self.plain_changed or any(old != new for old, new in self.links.values())

    def change(self) -> RowChange:
        """This row as a ``RowChange`` for hooks and examples."""
        return RowChange(pk=self.pk, old=self.old, new=self.new)


def set_batch_size(plan: UpdatePlan) -> int | None:
    """The first pass's batch size of a run on the fast path in the request, all-or-nothing:
    ``BULK_SET_BATCH_SIZE`` rows a statement (the keys are one parameter, so a batch's size
    costs no placeholders); None (``BULK_BATCH_SIZE``) for every other run. A run on a worker
    keeps ``BULK_BATCH_SIZE``: its progress and cancel are checked between batches."""
    context = plan.context
    if plan.load is not Load.NONE or context.mode != "sync" or not context.atomic:
        return None
    return max(context.batch_size, int(pc_settings.BULK_SET_BATCH_SIZE))


def validation_messages(exc: ValidationError) -> dict[str | None, list[str]]:
    """The messages of ``exc`` by field name (None: not about one field)."""
    if hasattr(exc, "error_dict"):
        return {
            (None if name == NON_FIELD_ERRORS else name): list(ValidationError(errors).messages)
            for name, errors in exc.error_dict.items()
        }
    return {None: list(exc.messages)}


def clean_value(model: type[models.Model], using: str, name: str, value: Any) -> Any:
    """Validate a value once for every row: ``validate()``, validators, related row exists.

    The value is the same for every row, so this is what ``clean_fields()`` would find on
    each of them. Raises ``BulkInputError`` naming the field.
    """
    model_field = model._meta.get_field(name)
    assert isinstance(model_field, models.Field)
    if model_field.blank and value in model_field.empty_values:
        return value
    try:
        models.Field.validate(model_field, value, None)
        model_field.run_validators(value)
    except ValidationError as exc:
        raise BulkInputError(name, f"Invalid value for '{name}': {' '.join(exc.messages)}") from None
    if model_field.is_relation and value is not None:
        related: type[models.Model] = model_field.related_model  # type: ignore[assignment]
        target = model_field.target_field.name  # type: ignore[attr-defined]
        choices = related._base_manager.using(using).filter(**{target: value})
        limit = model_field.get_limit_choices_to()  # type: ignore[attr-defined]
        if limit:
            choices = choices.complex_filter(limit)
        if not choices.exists():
            raise BulkInputError(
                name,
                f"Invalid value for '{name}': no {related._meta.verbose_name} with "
                f"{target} {value!r} can be chosen (it does not exist or is not allowed).",
            )
    return value


def load_rows(plan: UpdatePlan, batch: Sequence[Any]) -> list[Row]:
    """The rows of ``batch`` that still exist, in pk order, with old and new values.

    One query for the rows, plus one per many-to-many field for the current links.
    """
    rows = (
        plan.model._base_manager.using(plan.using)
        .filter(in_batch(plan.model, plan.using, batch))
        .order_by("pk")
    )
    names = list(plan.values)
    found: list[tuple[Any, models.Model | None, dict[str, Any]]] = []
    if plan.load is Load.INSTANCES:
        instances = rows if plan.only is None else rows.only(*plan.only)
        for obj in instances:
            found.append((obj.pk, obj, {n: getattr(obj, plan.attnames[n]) for n in names}))
    else:
        attnames = [plan.attnames[n] for n in names]
        for pk, *old in rows.values_list("pk", *attnames):
            found.append((pk, None, dict(zip(names, old, strict=True))))
    pks = [pk for pk, _, _ in found]
    links = {edit.name: read_links(edit, plan.using, pks) for edit in plan.m2m if pks}
    result = []
    for pk, instance, old in found:
        row = Row(pk=pk, instance=instance, old=old, new=dict(plan.values))
        if plan.lifecycle and instance is not None:
            row.before = snapshot(instance)
        row.plain_changed = any(old[n] != plan.values[n] for n in names)
        for edit in plan.m2m:
            current = links[edit.name].get(pk, frozenset())
            after = edit.apply(current)
            row.links[edit.name] = (current, after)
            row.old[edit.name] = tuple(sorted_values(current))
            row.new[edit.name] = tuple(sorted_values(after))
        result.append(row)
    return result


def model_check_errors(plan: UpdatePlan, instance: models.Model) -> dict[str | None, list[str]]:
    """Apply the new values to ``instance`` and run the model's per-row checks on it."""
    errors: dict[str | None, list[str]] = {}

    def collect(exc: ValidationError) -> None:
        for name, messages in validation_messages(exc).items():
            errors.setdefault(name, []).extend(messages)

    for name, value in plan.values.items():
        setattr(instance, plan.attnames[name], value)
    if plan.checks.clean:
        try:
            instance.clean()
        except ValidationError as exc:
            collect(exc)
    if plan.checks.unique:
        try:
            instance.validate_unique(exclude=set(plan.exclude) | {n for n in errors if n})
        except ValidationError as exc:
            collect(exc)
    for klass, constraint in plan.checks.constraints:
        try:
            constraint.validate(klass, instance, exclude=set(plan.exclude), using=plan.using)
        except ValidationError as exc:
            fields: Sequence[str] = getattr(constraint, "fields", ())
            if getattr(exc, "code", None) == "unique" and len(fields) == 1:
                errors.setdefault(fields[0], []).extend(exc.messages)
            else:
                collect(exc)
    return errors
