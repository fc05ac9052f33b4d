"""Form fields and widgets shared by the CRUD forms and the bulk-edit form."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from django import forms
from django.db import models
from django.forms.renderers import get_default_renderer
from django.utils import timezone
from django.utils.formats import localize
from django.utils.html import conditional_escape
from django.utils.safestring import SafeData, SafeString, mark_safe

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


# ----- widgets drawn in Python ----------------------------------------------------------------
# A widget drawn by a form renderer costs a template render per widget (and per option and
# attribute list). The filter form's widgets (its selects, ``mixins/listing.py``, and the
# relation search control below) write the same markup in Python when the renderer would use
# Django's and powercrud's own templates; a project's own copy of one keeps it drawing.
DJANGO_WIDGET_TEMPLATES = Path(forms.__file__).resolve().parent / "templates"
OWN_TEMPLATES = Path(__file__).resolve().parent / "templates"
ATTRS_TEMPLATE = "django/forms/widgets/attrs.html"


@functools.lru_cache(maxsize=32)
def renders_own_templates(renderer: Any, templates: tuple[tuple[str, Path], ...]) -> bool:
    """Whether ``renderer`` finds each ``(name, directory)`` template in that directory (that
    is, no project replaces it)."""
    for name, directory in templates:
        origin = getattr(getattr(renderer.get_template(name), "origin", None), "name", "")
        if Path(str(origin)) != directory / name:
            return False
    return True


def attr_text(value: Any) -> str:
    """``{{ value|stringformat:'s' }}``."""
    try:
        text: str = "%s" % value  # noqa: UP031 - exactly what the filter does
    except (ValueError, TypeError):
        return ""
    return conditional_escape(mark_safe(text) if isinstance(value, SafeData) else text)


def label_text(value: Any) -> str:
    """``{{ value }}``."""
    return conditional_escape(str(localize(timezone.template_localtime(value))))  # type: ignore[attr-defined]


def attrs_html(attrs: dict[str, Any]) -> str:
    """What ``django/forms/widgets/attrs.html`` draws."""
    return "".join(
        f" {conditional_escape(name)}" + ("" if value is True else f'="{attr_text(value)}"')
        for name, value in attrs.items()
        if value is not False
    )


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

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        """What ``relation_input.html`` draws, written in Python (see ``renders_own_templates``)."""
        renderer = renderer or get_default_renderer()
        own = ((self.template_name, OWN_TEMPLATES), (ATTRS_TEMPLATE, DJANGO_WIDGET_TEMPLATES))
        default = self.template_name == RelationSearchInput.template_name
        if not default or not renders_own_templates(renderer, own):
            return super().render(name, value, attrs, renderer)
        w = self.get_context(name, value, attrs)["widget"]
        multiple = " data-pc-multiple" if w["multiple"] else ""
        hint = (
            f"Ids of {label_text(w['noun'])}, separated by commas"
            if w["multiple"]
            else f"Id of the {label_text(w['noun_one'])}"
        )
        return mark_safe(
            f'<span class="pc-relation"><input type="text" name="{label_text(w["name"])}" '
            f'value="{label_text(w["value"])}" autocomplete="off" inputmode="numeric" '
            f'data-pc-relation="{label_text(w["url"])}" data-pc-selected="{label_text(w["selected_json"])}" '
            f'data-pc-placeholder="Search {label_text(w["noun"])}…"{multiple}{attrs_html(w["attrs"])}>'
            f'<noscript><span class="pc-relation-hint">{hint}</span></noscript></span>'
        )

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
