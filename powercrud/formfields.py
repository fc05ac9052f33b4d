"""Form fields and widgets shared by the CRUD forms and the bulk-edit form."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.db import models

TEXT_KEYS = (models.CharField, models.TextField)


class KeyCheckedMultipleChoiceField(forms.ModelMultipleChoiceField):
    """A many-to-many choice that refuses ids the related key cannot hold before any query.

    Django's own field looks posted ids up with ``pk__in``; on SQLite an integer past 64 bits
    then raises ``OverflowError`` (a server error) instead of matching nothing.
    """

    def clean(self, value: Any) -> Any:
        if isinstance(value, list | tuple) and self.queryset is not None:
            opts = self.queryset.model._meta
            key_field = opts.get_field(self.to_field_name) if self.to_field_name else opts.pk
            if not isinstance(key_field, TEXT_KEYS):
                # The search control (RelationSearchInput) posts its ids as one "1,2,3".
                value = [part.strip() for item in value for part in str(item).split(",") if part.strip()]
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


class RelationSearchInput(forms.Widget):
    """A relation chosen by searching: a text input of ids that ``relations.js`` turns into a
    search-as-you-type control over ``url`` (the view's ``RELATION`` endpoint).

    Without JavaScript it stays a text input of ids (comma-separated when ``multiple``); the
    form field validates them as it validates a select's. Selected values are drawn with their
    labels, read from ``queryset`` in one query.
    """

    template_name = "powercrud/partials/relation_input.html"

    def __init__(
        self,
        *,
        url: str,
        queryset: models.QuerySet[Any],
        key: str,
        multiple: bool = False,
        required: bool = False,
        attrs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(attrs)
        self.url = url
        self.queryset = queryset
        self.key = key
        self.multiple = multiple
        self.required = required

    @property
    def allow_multiple_selected(self) -> bool:
        return self.multiple

    def format_value(self, value: Any) -> list[str]:
        if value is None or value == "":
            return []
        items = value if isinstance(value, list | tuple) else [value]
        return [str(getattr(item, "pk", item)) for item in items if item not in (None, "")]

    def selected(self, values: list[str]) -> list[dict[str, str]]:
        """``{id, text}`` for each value, labelled from the queryset (one query); ids the key
        cannot hold, or rows outside the queryset, keep their id as their label."""
        key_field = self.queryset.model._meta.get_field(self.key)
        valid = []
        for value in values:
            try:
                key_field.run_validators(key_field.to_python(value))
            except (forms.ValidationError, TypeError, ValueError):
                continue
            valid.append(value)
        labels: dict[str, str] = {}
        if valid:
            for row in self.queryset.filter(**{f"{self.key}__in": valid}).order_by():
                labels[str(getattr(row, self.key))] = str(row)
        return [{"id": value, "text": labels.get(value, value)} for value in values]

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        values = context["widget"]["value"]
        context["widget"].update(
            {
                "value": ",".join(values),
                "url": self.url,
                "multiple": self.multiple,
                "noun": self.queryset.model._meta.verbose_name_plural,
                "noun_one": self.queryset.model._meta.verbose_name,
                "selected_json": json.dumps(self.selected(values)),
            }
        )
        return context

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        if not self.multiple:
            return data.get(name)
        getlist = getattr(data, "getlist", None)
        raw = getlist(name) if getlist else data.get(name)
        if raw is None:
            return None
        raw = raw if isinstance(raw, list | tuple) else [raw]
        return [part.strip() for item in raw for part in str(item).split(",") if part.strip()]

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return name not in data
