"""A form edit saved after other changes to the same row: keep theirs, or say there is a conflict.

An edit form is opened, the user changes a field or two, and saves minutes later. Meanwhile a
bulk edit (or another user) may have changed the row. Saving the form as posted would write
back every value as it was when the form was opened, silently undoing those changes.

So the update form carries the row's values as it showed them (a hidden input named
``LOADED_FIELD``, rendered by ``powercrud/object_form.html`` from ``loaded_values()``), and,
under the row's lock just before the save, ``merge_concurrent_changes`` compares three
versions of each field: as loaded into the form, as stored now, and as the user (and the
form's own code) left it on the instance:

* stored value unchanged since the form was loaded: the user's value is saved;
* changed by someone else, not by the user: the stored value is kept;
* changed by both, to different values: ``EditConflict``; nothing is saved and the form
  is shown again with the user's values, so saving again is a deliberate overwrite.

Fields the form does not edit are always saved as they are stored now (unless the form's
own code changed them). Without the hidden input (a client that posts only the data, or a
template that does not render it), the values read at the start of the request take its place.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from django import forms
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models
from django.utils.text import capfirst

from powercrud.bulk.codec import to_json

__all__ = ["LOADED_FIELD", "EditConflict", "loaded_values", "merge_concurrent_changes", "track_loaded_values"]

LOADED_FIELD = "pc__loaded"
"""The hidden form field holding the values the form was opened with (no model field has "__")."""

_READ = "_pc_read"


class EditConflict(Exception):
    """A field changed both in the form and in the database since the form was opened."""

    def __init__(self, message: str, fields: tuple[str, ...]) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields


def _plain(value: Any) -> Any:
    return to_json(value)


def _model_fields(form: forms.BaseModelForm) -> dict[str, models.Field[Any, Any]]:
    """The form's fields that are fields of its model, by name."""
    opts = form.instance._meta
    found = {}
    for name in form.fields:
        try:
            field = opts.get_field(name)
        except FieldDoesNotExist:
            continue
        if isinstance(field, models.Field) and (field.concrete or field.many_to_many):
            found[name] = field
    return found


def _stored(instance: models.Model, field: models.Field[Any, Any]) -> Any:
    """``field`` of ``instance`` as plain data (many-to-many: the related keys, as text)."""
    if field.many_to_many:
        if instance.pk is None:
            return []
        return sorted(str(pk) for pk in getattr(instance, field.name).values_list("pk", flat=True))
    return _plain(field.value_from_object(instance))


def _same(field: models.Field[Any, Any], a: Any, b: Any) -> bool:
    if field.many_to_many:
        return set(a or ()) == set(b or ())
    try:
        return bool(field.to_python(a) == field.to_python(b))
    except (ValidationError, TypeError, ValueError):
        return bool(a == b)


def track_loaded_values(form: forms.BaseModelForm) -> None:
    """Remember the row's values as read for this request; call before validating the form."""
    instance = form.instance
    read = {f.attname: _plain(f.value_from_object(instance)) for f in instance._meta.concrete_fields}
    setattr(form, _READ, read)


def loaded_values(form: forms.BaseModelForm) -> str:
    """The value of the hidden ``LOADED_FIELD`` input to render with ``form`` ("" for none).

    A fresh form: its row's values now. A posted form shown again: what it was posted with
    (the values it was first opened with), or the stored values after an ``EditConflict``.
    """
    if form.is_bound:
        return str(form.data.get(LOADED_FIELD) or "")
    loaded = {name: _stored(form.instance, field) for name, field in _model_fields(form).items()}
    return json.dumps(loaded, separators=(",", ":"))


def _loaded(form: forms.BaseModelForm) -> Mapping[str, Any]:
    raw = form.data.get(LOADED_FIELD) if form.is_bound else None
    if not raw:
        return {}
    try:
        loaded = json.loads(raw)
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def merge_concurrent_changes(form: forms.BaseModelForm) -> None:
    """Bring a valid update form's instance up to date with the stored row (see the module).

    Call it in the transaction that saves, after the row is locked. Raises ``EditConflict``
    when a field the form edits was changed to a different value by someone else; the form
    then holds the stored values as its new baseline, so posting it again overwrites them.
    """
    instance = form.instance
    model = type(instance)
    stored_now = model._base_manager.using(instance._state.db).get(pk=instance.pk)
    read: Mapping[str, Any] = getattr(form, _READ, {})
    loaded = _loaded(form)
    editable = _model_fields(form)
    conflicts: list[str] = []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        now = _plain(field.value_from_object(stored_now))
        base = loaded[field.name] if field.name in loaded else read.get(field.attname, now)
        if _same(field, now, base):
            continue  # nobody else changed it
        mine = _plain(field.value_from_object(instance))
        if _same(field, mine, base):
            setattr(instance, field.attname, getattr(stored_now, field.attname))  # keep theirs
        elif field.name in editable and not _same(field, mine, now):
            conflicts.append(field.name)
    for name, field in editable.items():
        if not field.many_to_many or name not in loaded:
            continue
        now = _stored(stored_now, field)
        if _same(field, now, loaded[name]):
            continue
        mine = sorted(str(obj.pk) for obj in form.cleaned_data.get(name) or ())
        if _same(field, mine, loaded[name]):
            form.cleaned_data[name] = list(getattr(stored_now, name).all())  # keep theirs
        elif not _same(field, mine, now):
            conflicts.append(name)
    if conflicts:
        data: Any = copy.copy(form.data)  # a QueryDict's copy is mutable
        data[LOADED_FIELD] = json.dumps(
            {name: _stored(stored_now, field) for name, field in editable.items()}, separators=(",", ":")
        )
        form.data = data
        labels = [str(form[name].label or capfirst(name)) for name in conflicts]
        what = labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"
        verb = "was" if len(labels) == 1 else "were"
        noun = model._meta.verbose_name
        raise EditConflict(
            f"{capfirst(what)} {verb} changed by someone else after you opened this form, so nothing "
            f"was saved. The form shows your values: save again to replace theirs, or close it to "
            f"keep the {noun} as it is now.",
            tuple(conflicts),
        )
