"""Form fields and widgets shared by the CRUD forms and the bulk-edit form."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db import models


class KeyCheckedMultipleChoiceField(forms.ModelMultipleChoiceField):
    """A many-to-many choice that refuses ids the related key cannot hold before any query.

    Django's own field looks posted ids up with ``pk__in``; on SQLite an integer past 64 bits
    then raises ``OverflowError`` (a server error) instead of matching nothing.
    """

    def clean(self, value: Any) -> Any:
        if isinstance(value, list | tuple) and self.queryset is not None:
            opts = self.queryset.model._meta
            key_field = opts.get_field(self.to_field_name) if self.to_field_name else opts.pk
            for item in value:
                try:
                    key_field.run_validators(key_field.to_python(item))
                except (forms.ValidationError, TypeError, ValueError):
                    raise forms.ValidationError(
                        self.error_messages["invalid_pk_value"], code="invalid_pk_value", params={"pk": item}
                    ) from None
        return super().clean(value)


def formfield_for(field: models.Field[Any, Any], **kwargs: Any) -> forms.Field | None:
    """Form field callback: native date pickers, and key-checked many-to-many choices."""
    if isinstance(field, models.DateTimeField):
        kwargs.setdefault("widget", forms.DateTimeInput(attrs={"type": "datetime-local"}))
    elif isinstance(field, models.DateField):
        kwargs.setdefault("widget", forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    elif isinstance(field, models.ManyToManyField):
        kwargs.setdefault("form_class", KeyCheckedMultipleChoiceField)
        if few_choices(field):
            kwargs.setdefault("widget", forms.CheckboxSelectMultiple(attrs={"class": "pc-checklist"}))
    return field.formfield(**kwargs)


CHECKLIST_MAX_CHOICES = 40


def few_choices(field: models.Field[Any, Any]) -> bool:
    """Whether a relation has few enough rows to show as a checklist instead of a select."""
    related = field.related_model
    assert related is not None, f"{field} is not a relation"
    manager = related._default_manager
    return manager.all()[: CHECKLIST_MAX_CHOICES + 1].count() <= CHECKLIST_MAX_CHOICES
