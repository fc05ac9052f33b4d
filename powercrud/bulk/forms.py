"""The bulk-edit form: a "change this field" toggle and the right control per field type.

Values are validated once, through the model fields' own form fields; only toggled fields
are validated at all, so an untouched control can never block an edit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django import forms
from django.db import models
from django.forms import BoundField
from django.forms.models import apply_limit_choices_to_to_formfield

from powercrud.bulk.request import BulkRequest
from powercrud.bulk.types import BulkInputError
from powercrud.bulk.values import M2M_OP_SUFFIX, M2MChange, from_field_data
from powercrud.formfields import KeyCheckedMultipleChoiceField, few_choices

TOGGLE_PREFIX = "change_"
M2M_OP_CHOICES = [("add", "Add these"), ("remove", "Remove these"), ("replace", "Replace all with these")]

ChoicesHook = Callable[[str, models.QuerySet[Any]], models.QuerySet[Any]]
# Given a field name and its value field, the widget to draw it with instead (or None).
WidgetHook = Callable[[str, forms.Field], forms.Widget | None]


@dataclass(frozen=True)
class BulkFieldRow:
    """What the template needs for one field: its toggle, its value control and, for
    many-to-many fields, the operation."""

    name: str
    label: str
    toggle: BoundField
    value: BoundField | None
    operation: BoundField | None

    @property
    def errors(self) -> list[str]:
        """The value's errors and, for many-to-many fields, the operation's."""
        found = [str(e) for e in self.value.errors] if self.value is not None else []
        if self.operation is not None:
            found += [str(e) for e in self.operation.errors]
        return found


def _boolean_field(model_field: models.Field[Any, Any]) -> forms.Field:
    choices = [("true", "Yes"), ("false", "No")]
    if model_field.null:
        choices.append(("", "Unknown"))
    return forms.TypedChoiceField(
        choices=choices,
        coerce=lambda value: value == "true",
        empty_value=None,
        required=not model_field.null,
        label=model_field.verbose_name.capitalize(),
    )


def value_form_field(model_field: models.Field[Any, Any], choices_hook: ChoicesHook | None) -> forms.Field:
    """The form field that edits ``model_field`` in bulk."""
    if isinstance(model_field, models.BooleanField):
        return _boolean_field(model_field)
    kwargs: dict[str, Any] = {}
    if isinstance(model_field, models.DateTimeField):
        kwargs["widget"] = forms.DateTimeInput(attrs={"type": "datetime-local"})
    elif isinstance(model_field, models.DateField):
        kwargs["widget"] = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    elif model_field.many_to_many:
        kwargs["form_class"] = KeyCheckedMultipleChoiceField
        if few_choices(model_field):
            kwargs["widget"] = forms.CheckboxSelectMultiple(attrs={"class": "pc-checklist"})
    form_field = model_field.formfield(**kwargs)
    assert form_field is not None
    if model_field.is_relation:
        apply_limit_choices_to_to_formfield(form_field)  # as a ModelForm does
    if model_field.is_relation and choices_hook is not None:
        queryset = choices_hook(model_field.name, form_field.queryset)  # type: ignore[attr-defined]
        form_field.queryset = queryset  # type: ignore[attr-defined]
    if model_field.many_to_many:
        form_field.required = False
        form_field.help_text = ""
    # The model field's validators (a price's MinValueValidator) judge the one value every row
    # gets: run them here, so their message shows next to the field, not as a bare 400.
    extra = [v for v in model_field.validators if v not in form_field.validators]
    form_field.validators = [*form_field.validators, *extra]
    return form_field


class BulkEditForm(forms.Form):
    """Built for one model and its ``bulk_fields``; bound data decides which are changed.

    ``widget_hook``, when set (the view sets it before rendering), may give a value field
    another widget (a relation search control); ``rows()`` asks it for every row it draws.
    """

    widget_hook: WidgetHook | None = None

    def __init__(
        self,
        *args: Any,
        model: type[models.Model],
        bulk_fields: Sequence[str],
        choices_hook: ChoicesHook | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.model = model
        self.bulk_fields = list(bulk_fields)
        self.choices_hook = choices_hook
        for name in self.bulk_fields:
            model_field = model._meta.get_field(name)
            assert isinstance(model_field, models.Field), f"{name!r} is not a field (check E006)"
            label = str(model_field.verbose_name).capitalize()
            self.fields[TOGGLE_PREFIX + name] = forms.BooleanField(
                required=False, label=f"Change {model_field.verbose_name}"
            )
            value_field = value_form_field(model_field, choices_hook)
            value_field.label = label
            self.fields[name] = value_field
            if model_field.many_to_many:
                self.fields[name + M2M_OP_SUFFIX] = forms.ChoiceField(
                    choices=M2M_OP_CHOICES, initial="add", label=f"{label}: operation"
                )
        if self.is_bound:
            for name in self.bulk_fields:
                if not self._toggled(name):
                    self.fields.pop(name, None)
                    self.fields.pop(name + M2M_OP_SUFFIX, None)

    def _toggled(self, name: str) -> bool:
        raw = self.data.get(TOGGLE_PREFIX + name)
        return raw not in (None, "", "0", "false", "off")

    def selected_fields(self) -> list[str]:
        """The fields the user chose to change, in ``bulk_fields`` order."""
        return [name for name in self.bulk_fields if self.is_bound and self._toggled(name)]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.is_bound and not self.selected_fields():
            raise forms.ValidationError("Choose at least one field to change.", code="no_fields")
        for name in self.selected_fields():
            op = cleaned.get(name + M2M_OP_SUFFIX)
            if op in ("add", "remove") and not cleaned.get(name):
                self.add_error(name, f"Choose at least one item to {op}.")
        return cleaned

    def rows(self) -> list[BulkFieldRow]:
        """One row per bulk field, for the template."""
        for name in self.errors:
            field = self.fields.get(name)
            if field is not None and getattr(field.widget, "use_fieldset", False):
                # Django links errors only to single inputs; link each checkbox of a group too.
                field.widget.attrs["aria-describedby"] = f"{self[name].auto_id}_error"
        result = []
        unbound = (
            type(self)(
                model=self.model,
                bulk_fields=self.bulk_fields,
                choices_hook=self.choices_hook,
                auto_id=self.auto_id,
                prefix=self.prefix,
            )
            if self.is_bound
            else self
        )
        for name in self.bulk_fields:
            source = self if name in self.fields else unbound
            if self.widget_hook is not None:
                widget = self.widget_hook(name, source.fields[name])
                if widget is not None:
                    source.fields[name].widget = widget
            value = source[name]
            operation = source[name + M2M_OP_SUFFIX] if name + M2M_OP_SUFFIX in source.fields else None
            result.append(
                BulkFieldRow(
                    name=name,
                    label=str(self.fields[TOGGLE_PREFIX + name].label),
                    toggle=self[TOGGLE_PREFIX + name],
                    value=value,
                    operation=operation,
                )
            )
        return result


def initial_for(model: type[models.Model], request: BulkRequest) -> dict[str, Any]:
    """``BulkEditForm`` initial data that fills in ``request``'s fields and values again.

    Empty when the values no longer fit the model (a field was removed or changed type).
    """
    try:
        values = from_field_data(model, request.fields_to_update, request.field_data)
    except BulkInputError:
        return {}
    initial: dict[str, Any] = {}
    for name, value in values.items():
        initial[TOGGLE_PREFIX + name] = True
        if isinstance(value, M2MChange):
            initial[name] = list(value.ids)
            initial[name + M2M_OP_SUFFIX] = value.op
        else:
            initial[name] = value
    return initial
