"""List features: django-filter filtering, text search, sortable columns, page-size choice."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Sequence
from functools import reduce
from typing import Any, ClassVar, cast

import django_filters
from django import forms
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.db.models.expressions import Combinable
from django.forms.renderers import get_default_renderer
from django.utils.functional import lazy
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

from powercrud.columns import build_columns, resolve_field_path
from powercrud.conf import settings as pc_settings
from powercrud.formfields import (
    DJANGO_WIDGET_TEMPLATES,
    attr_text,
    attrs_html,
    label_text,
    renders_own_templates,
)
from powercrud.mixins.contracts import ListHost

TEXT_FIELDS = (models.CharField, models.TextField)


def build_filterset_class(model: type[models.Model], names: Sequence[str]) -> type[django_filters.FilterSet]:
    """A FilterSet for ``names``: text fields match by ``icontains``, the rest by django-filter's
    defaults (choices and foreign keys become selects, booleans a yes/no select).

    A relation keeps its exact filter whatever the table size; ``ListMixin.get_filterset()``
    draws one over more than ``FILTER_SELECT_MAX_CHOICES`` rows as a search control instead of
    a select (``relations.py``), so the page never renders thousands of options.
    """
    declared: dict[str, Any] = {}
    exact: list[str] = []
    for name in names:
        field = resolve_field_path(model, name)[-1]
        # Lazy: the class is built once per process (filterset_class_for()) and shown in any language.
        label = _lazy_label(model, name)
        if isinstance(field, TEXT_FIELDS) and not field.choices:
            declared[name] = django_filters.CharFilter(field_name=name, lookup_expr="icontains", label=label)
            continue
        exact.append(name)
    meta = type("Meta", (), {"model": model, "fields": exact})
    return type(f"{model.__name__}FilterSet", (django_filters.FilterSet,), {"Meta": meta, **declared})


def _column_label(model: type[models.Model], name: str) -> str:
    return build_columns(model, [name])[0].label


_lazy_label = lazy(_column_label, str)


@functools.cache
def filterset_class_for(model: type[models.Model], names: tuple[str, ...]) -> type[django_filters.FilterSet]:
    """``build_filterset_class()``, built once per model and field names: building a FilterSet
    class inspects every field, which took a list page about 0.7 ms a request."""
    return build_filterset_class(model, names)


ANY_LABEL = "Any"
SELECT_TEMPLATES = (
    "django/forms/widgets/select.html",
    "django/forms/widgets/select_option.html",
    "django/forms/widgets/attrs.html",
)
_DJANGO_SELECTS = tuple((name, DJANGO_WIDGET_TEMPLATES) for name in SELECT_TEMPLATES)


class FilterSelect(forms.Select):
    """The filter form's select: Django's markup, written in Python.

    Three selects drawn by Django's form templates (a template per option and per attribute
    list) took a third of the filter form's time. Any other renderer, or a project's own copy
    of those templates, gets the templates as before.

    ``instead``, when set, is asked first when the select is drawn and may give another widget
    to draw in its place: a relation filter decides there whether it is big enough to be a
    search control (``relations.py``), so a response that does not draw the filter form (the
    htmx partial of a sort, filter or page click) never counts the related rows.
    """

    instead: Callable[[], forms.Widget | None] | None = None

    @classmethod
    def like(cls, widget: forms.Select) -> FilterSelect:
        new = cls(attrs=widget.attrs, choices=widget.choices)
        new.is_required, new.is_localized = widget.is_required, widget.is_localized
        return new

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        if self.instead is not None:
            other = self.instead()
            if other is not None:
                return other.render(name, value, attrs, renderer)
        renderer = renderer or get_default_renderer()
        default = (self.template_name, self.option_template_name) == SELECT_TEMPLATES[:2]
        if not default or not renders_own_templates(renderer, _DJANGO_SELECTS):
            return super().render(name, value, attrs, renderer)
        widget = self.get_context(name, value, attrs)["widget"]
        parts = [f'<select name="{conditional_escape(widget["name"])}"{attrs_html(widget["attrs"])}>']
        for group_name, options, _index in widget["optgroups"]:
            if group_name:
                parts.append(f'<optgroup label="{label_text(group_name)}">')
            for option in options:
                parts.append(
                    f'<option value="{attr_text(option["value"])}"{attrs_html(option["attrs"])}>'
                    f"{label_text(option['label'])}</option>"
                )
            if group_name:
                parts.append("</optgroup>")
        parts.append("</select>")
        return mark_safe("\n".join(parts))


def prepare_filter_form(form: forms.Form) -> None:
    """Give the filter form its own element ids (so they never clash with a modal form's)
    and label every "no filter" choice "Any"."""
    form.auto_id = "filter_%s"
    for field in form.fields.values():
        if isinstance(field, forms.NullBooleanField):
            field.widget = FilterSelect(choices=[("", ANY_LABEL), ("true", "Yes"), ("false", "No")])
        elif hasattr(field, "empty_label"):
            # django-filter's choice fields add their own empty choice from ``empty_label``.
            field.empty_label = ANY_LABEL
            if isinstance(field, forms.ChoiceField) and not isinstance(field, forms.ModelChoiceField):
                # Django normalises any choices it is given to (value, label) pairs.
                choices = cast("Iterable[tuple[Any, Any]]", field.choices)
                field.choices = [(v, label) for v, label in choices if v != ""]
        if type(field.widget) is forms.Select:
            field.widget = FilterSelect.like(field.widget)


def _has_active_filter(filterset: django_filters.FilterSet | None) -> bool:
    if filterset is None or not filterset.is_bound or not filterset.form.is_valid():
        return False
    return any(v not in (None, "", []) for v in filterset.form.cleaned_data.values())


class ListMixin(ListHost):
    """Filtering, searching, sorting and page-size choice for ``CRUDView``'s list role.

    Contract: ``ListHost`` (``mixins/contracts.py``), i.e. ``CRUDView``, whose list hooks it extends.
    """

    filterset_fields: ClassVar[Sequence[str]] = ()
    filterset_class: ClassVar[type[django_filters.FilterSet] | None] = None
    search_fields: ClassVar[Sequence[str]] = ()
    page_size_options: ClassVar[Sequence[int] | None] = None
    # Default ordering of the list (before the primary-key tie-break), e.g. ["-published_date"].
    ordering: ClassVar[Sequence[str] | None] = None

    def get_filterset_class(self) -> type[django_filters.FilterSet] | None:
        if self.filterset_class is not None:
            return self.filterset_class
        if self.filterset_fields:
            return filterset_class_for(self.model, tuple(self.filterset_fields))
        return None

    def get_filterset(self, queryset: models.QuerySet[Any]) -> django_filters.FilterSet | None:
        """The bound FilterSet for this request (invalid values are ignored and shown)."""
        if not hasattr(self, "_filterset"):
            filterset_class = self.get_filterset_class()
            self._filterset = (
                filterset_class(self.request.GET or None, queryset=queryset, request=self.request)
                if filterset_class
                else None
            )
            if self._filterset is not None:
                prepare_filter_form(self._filterset.form)
                self.scope_filter_choices(self._filterset)
                self.use_search_widgets(self._filterset.form, "filter")
        return self._filterset

    def scope_filter_choices(self, filterset: django_filters.FilterSet) -> None:
        """Narrow each relation filter's choices through ``get_relation_queryset()``, as forms are."""
        relations = self.relation_fields("filter")
        for name, form_field in filterset.form.fields.items():
            field_name = getattr(filterset.filters.get(name), "field_name", None)
            queryset = getattr(form_field, "queryset", None)
            if field_name in relations and queryset is not None:
                form_field.queryset = self.get_relation_queryset(field_name, queryset)

    def get_search_query(self) -> str:
        return self.request.GET.get(pc_settings.SEARCH_PARAM, "").strip()[:200]

    def apply_search(self, queryset: models.QuerySet[Any], query: str) -> models.QuerySet[Any]:
        """Rows where every word of ``query`` is in at least one of ``search_fields``.

        A NUL character separates words like a space: no stored text holds one, and
        PostgreSQL refuses any query parameter that contains one.
        """
        query = query.replace("\x00", " ").strip()
        if not query or not self.search_fields:
            return queryset
        # A many-valued path (``tags__name``) would repeat a row once per match; test it in a
        # subquery instead so each row appears once.
        many = any(
            f.many_to_many or f.one_to_many
            for name in self.search_fields
            for f in resolve_field_path(self.model, name)
        )
        for word in query.split()[:10]:
            match = reduce(operator.or_, [Q(**{f"{name}__icontains": word}) for name in self.search_fields])
            if many:
                match = Q(Exists(self.model._default_manager.filter(match, pk=OuterRef("pk"))))
            queryset = queryset.filter(match)
        return queryset

    def get_sort(self) -> tuple[str, bool] | None:
        """The requested sortable column name and whether it is descending, if valid."""
        raw = self.request.GET.get(pc_settings.SORT_PARAM, "")
        name = raw.removeprefix("-")
        sortable = {c.name for c in self.get_columns() if c.sort_key}
        return (name, raw.startswith("-")) if name in sortable else None

    def apply_sort(self, queryset: models.QuerySet[Any]) -> models.QuerySet[Any]:
        """Order by the chosen column (or the default), always with a primary-key tie-break."""
        sort = self.get_sort()
        order: list[str | Combinable]
        if sort:
            keys = {c.name: c.sort_key for c in self.get_columns() if c.sort_key}
            name, descending = sort
            order = [f"-{keys[name]}" if descending else keys[name]]
        else:
            # ``Meta.ordering`` may hold expressions (``F("name").asc()``) as well as names.
            order = list(self.ordering or self.model._meta.ordering or [])
        order = [o for o in order if not (isinstance(o, str) and o.lstrip("-") == "pk")] + ["pk"]
        return queryset.order_by(*order)

    def get_list_queryset(self) -> models.QuerySet[Any]:
        queryset = super().get_list_queryset()
        filterset = self.get_filterset(queryset)
        if filterset is not None:
            queryset = filterset.qs
        queryset = self.apply_search(queryset, self.get_search_query())
        return self.apply_sort(queryset)

    def get_page_size_options(self) -> list[int]:
        options = set(self.page_size_options or pc_settings.PAGE_SIZE_OPTIONS)
        options.add(super().get_paginate_by())
        return sorted(options)

    def get_paginate_by(self) -> int:
        """``page_size`` from the query string when it is one of the options, else the default."""
        raw = self.request.GET.get(pc_settings.PAGE_SIZE_PARAM, "")
        default: int = super().get_paginate_by()
        return int(raw) if raw.isdigit() and int(raw) in self.get_page_size_options() else default

    def get_list_context(self) -> dict[str, Any]:
        context: dict[str, Any] = super().get_list_context()
        sort = self.get_sort()
        # Sort links keep the rest of the state (filters, search, page size) and restart at page one.
        query = self.request.GET.copy()
        query.pop("page", None)
        headers = []
        for column in context["columns"]:
            current = sort[1] if sort and sort[0] == column.name else None
            next_sort = f"-{column.name}" if current is False else column.name
            query[pc_settings.SORT_PARAM] = next_sort
            headers.append(
                {
                    "column": column,
                    "direction": None if current is None else ("desc" if current else "asc"),
                    "next_sort": next_sort,
                    "sort_query": f"?{query.urlencode()}",
                }
            )
        filterset = self._filterset if hasattr(self, "_filterset") else None
        context.update(
            {
                "headers": headers,
                "filterset": filterset,
                "search_enabled": bool(self.search_fields),
                "search_query": self.get_search_query(),
                "page_size": self.get_paginate_by(),
                "page_size_options": self.get_page_size_options(),
                "sort_param": pc_settings.SORT_PARAM,
                "search_param": pc_settings.SEARCH_PARAM,
                "page_size_param": pc_settings.PAGE_SIZE_PARAM,
                "current_sort": self.request.GET.get(pc_settings.SORT_PARAM, "") if sort else "",
                "is_filtered": bool(self.get_search_query()) or _has_active_filter(filterset),
            }
        )
        return context
