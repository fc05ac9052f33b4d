"""Relations that scale: foreign-key and many-to-many controls that search as you type.

Every ``CRUDView`` serves a ``RELATION`` role at ``<url_base>/relation/<field>/?for=&q=&page=``:
a page of ``{"results": [{"id", "text"}], "more"}`` for one relation field of one place
(``form``, ``filter`` or ``bulk``), scoped exactly as that place validates its choices. A
relation with more than ``FILTER_SELECT_MAX_CHOICES`` rows is drawn, in all three places, as a
``RelationSearchInput`` (``formfields.py``) pointing at it; smaller ones keep their select.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from django import forms
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models
from django.db.models import Q
from django.http import HttpRequest, JsonResponse
from django.urls import NoReverseMatch, reverse

from powercrud.conf import settings as pc_settings
from powercrud.formfields import RelationSearchInput
from powercrud.params import RepeatedParameter, single

if TYPE_CHECKING:
    from powercrud.views import HtmxHttpRequest, Role

PLACES = ("form", "filter", "bulk")
# The roles whose permission opens each place (``Role`` values, see ``views.py``).
PLACE_ROLES: dict[str, tuple[str, ...]] = {
    "form": ("create", "update"),
    "filter": ("list",),
    "bulk": ("bulk-edit",),
}
MAX_QUERY_LENGTH = 100
MAX_PAGE = 1000
TEXT_FIELDS = (models.CharField, models.TextField)


class RelationError(Exception):
    """A request the endpoint refuses; ``status`` is its HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def is_relation(field: Any) -> bool:
    """A forward foreign key, one-to-one or many-to-many of the model itself."""
    return isinstance(field, models.Field) and bool(
        field.is_relation and (field.many_to_one or field.one_to_one or field.many_to_many)
    )


def key_name(field: models.Field[Any, Any]) -> str:
    """The related field a posted id names (a foreign key's ``to_field``, else the primary key)."""
    related = field.related_model
    assert related is not None and not isinstance(related, str)
    if field.many_to_one or field.one_to_one:
        return str(getattr(field.remote_field, "field_name", None) or related._meta.pk.name)
    return str(related._meta.pk.name)


def base_choices(field: models.Field[Any, Any]) -> models.QuerySet[Any]:
    """Every row the field may point at: the related model's rows within ``limit_choices_to``."""
    related = field.related_model
    assert related is not None and not isinstance(related, str)
    queryset = related._default_manager.all()
    limit = field.get_limit_choices_to()  # type: ignore[attr-defined]
    return queryset.complex_filter(limit) if limit else queryset


def text_fields_of(model: type[models.Model]) -> list[str]:
    """Fields a relation search matches by default: the text fields of ``Meta.ordering``, else
    the model's first text field."""
    names = []
    for key in model._meta.ordering or ():
        if isinstance(key, str) and "__" not in key:
            try:
                field = model._meta.get_field(key.lstrip("-"))
            except FieldDoesNotExist:
                continue
            if isinstance(field, TEXT_FIELDS):
                names.append(field.name)
    if not names:
        names = [f.name for f in model._meta.concrete_fields if isinstance(f, TEXT_FIELDS)][:1]
    return names


def has_many(queryset: models.QuerySet[Any], limit: int) -> bool:
    """Whether ``queryset`` holds more than ``limit`` rows: one bounded query, whether a row
    follows the first ``limit`` (``SELECT 1 ... LIMIT 1 OFFSET limit``; a count of the first
    ``limit + 1`` rows, which the ORM wraps in a subquery, took twice the Python)."""
    return queryset.order_by()[limit : limit + 1].exists()


class RelationSearch:
    """The ``RELATION`` role of ``CRUDView`` (a base of it): the search endpoint and its hooks."""

    if TYPE_CHECKING:  # what it uses of ``CRUDView``, for the type checker only
        model: ClassVar[type[models.Model] | None]
        namespace: ClassVar[str | None]
        request: HtmxHttpRequest

        def get_form_fields(self) -> list[str]: ...
        def get_permission_flags(self) -> dict[str, bool]: ...
        @classmethod
        def get_roles(cls) -> list[Role]: ...
        @classmethod
        def get_url_base(cls) -> str: ...

    # field name -> related-model lookups a search matches (``icontains`` on each word).
    relation_search_fields: ClassVar[Mapping[str, Sequence[str]]] = {}
    # Matches per page; None means ``RELATION_PAGE_SIZE``.
    relation_page_size: ClassVar[int | None] = None

    def get_relation_queryset(self, field_name: str, queryset: models.QuerySet[Any]) -> models.QuerySet[Any]:
        """The rows a form or filter may offer for ``field_name`` (default: all of ``queryset``,
        which already honours the field's ``limit_choices_to``). Forms validate against it and
        the search endpoint returns only these. The bulk modal uses
        ``get_bulk_choices_queryset()``, which calls this unless overridden."""
        return queryset

    def get_relation_search_fields(self, field_name: str, related: type[models.Model]) -> list[str]:
        if field_name in self.relation_search_fields:
            return list(self.relation_search_fields[field_name])
        return text_fields_of(related)

    # ----- which fields each place shows -----------------------------------------------
    def relation_fields(self, place: str) -> dict[str, models.Field[Any, Any]]:
        """The relation fields ``place`` shows, by name."""
        assert self.model is not None
        names: list[str] = []
        if place == "form":
            # A view's own form class, else the form fields (building the default form class
            # would ask the database whether each many-to-many is short).
            form_class = getattr(self, "form_class", None)
            names = list(getattr(form_class, "base_fields", {})) if form_class else self.get_form_fields()
        elif place == "filter":
            get_filterset_class = getattr(self, "get_filterset_class", None)
            filterset_class = get_filterset_class() if get_filterset_class else None
            if filterset_class is not None:
                names = [f.field_name for f in filterset_class.base_filters.values()]
        elif place == "bulk":
            get_bulk_fields = getattr(self, "get_bulk_fields", None)
            names = list(get_bulk_fields()) if get_bulk_fields else []
        found = {}
        for name in names:
            try:
                field = self.model._meta.get_field(name)
            except FieldDoesNotExist:
                continue
            if isinstance(field, models.Field) and is_relation(field):
                found[name] = field
        return found

    def relation_choices(self, place: str, field: models.Field[Any, Any]) -> models.QuerySet[Any]:
        """The rows ``place`` accepts for ``field``: the same scope its form validates against."""
        queryset = base_choices(field)
        if place == "bulk":
            hook = getattr(self, "get_bulk_choices_queryset", None)
            return hook(field.name, queryset) if hook else queryset
        return self.get_relation_queryset(field.name, queryset)

    def may_use_place(self, place: str) -> bool:
        can = self.get_permission_flags()
        return any(can.get(role, False) for role in PLACE_ROLES[place])

    def relation_url(self, field_name: str, place: str) -> str | None:
        """The search endpoint of ``field_name`` in ``place``; None when the view does not serve it."""
        if "relation" not in {role.value for role in self.get_roles()}:
            return None
        name = f"{self.get_url_base()}-relation"
        if self.namespace:
            name = f"{self.namespace}:{name}"
        try:
            return f"{reverse(name, kwargs={'field': field_name})}?for={place}"
        except NoReverseMatch:
            return None

    # ----- the endpoint -----------------------------------------------------------------
    def relation_search(self, request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        """``GET <url_base>/relation/<field>/?for=form|filter|bulk&q=&page=``."""
        try:
            return JsonResponse(self.relation_page(str(kwargs.get("field", ""))))
        except RelationError as exc:
            return JsonResponse({"error": exc.message}, status=exc.status)

    def relation_page(self, field_name: str) -> dict[str, Any]:
        data = self.request.GET
        try:
            place = single(data, "for", "form")
            query = single(data, "q")
            page_raw = single(data, "page", "1")
        except RepeatedParameter as exc:
            raise RelationError(exc.message) from None
        if place not in PLACES:
            raise RelationError(f"“for” must be one of {', '.join(PLACES)}.")
        if len(query) > MAX_QUERY_LENGTH:
            raise RelationError(f"The search “q” is longer than {MAX_QUERY_LENGTH} characters.")
        if not (page_raw.isascii() and page_raw.isdigit() and len(page_raw) <= 4) or not (
            1 <= int(page_raw) <= MAX_PAGE
        ):
            raise RelationError(f"“page” must be a whole number from 1 to {MAX_PAGE}.")
        page = int(page_raw)
        fields = self.relation_fields(place)
        field = fields.get(field_name)
        if field is None:
            allowed = ", ".join(sorted(fields)) or "none"
            raise RelationError(
                f"“{field_name[:60]}” is not a relation field of this {place}. Allowed: {allowed}."
            )
        if not self.may_use_place(place):
            raise RelationError("You do not have permission to use this form.", status=403)
        related = field.related_model
        assert related is not None and not isinstance(related, str)
        opts = related._meta
        if not self.request.user.has_perm(f"{opts.app_label}.view_{opts.model_name}"):
            raise RelationError(f"You do not have permission to view {opts.verbose_name_plural}.", status=403)
        queryset = self.relation_choices(place, field)
        queryset = self.filter_relation(queryset, field, query)
        size = self.relation_page_size or pc_settings.RELATION_PAGE_SIZE
        start = (page - 1) * size
        if not queryset.query.order_by and not opts.ordering:
            queryset = queryset.order_by("pk")
        rows = list(queryset[start : start + size + 1])
        key = key_name(field)
        results = [{"id": str(getattr(row, key)), "text": str(row)} for row in rows[:size]]
        return {"results": results, "more": len(rows) > size}

    def filter_relation(
        self, queryset: models.QuerySet[Any], field: models.Field[Any, Any], query: str
    ) -> models.QuerySet[Any]:
        """Rows where every word of ``query`` is in one of the search fields (or the id is it)."""
        related = queryset.model
        lookups = self.get_relation_search_fields(field.name, related)
        words = query.replace("\x00", " ").split()[:10]
        for word in words:
            match = Q()
            for lookup in lookups:
                match |= Q(**{f"{lookup}__icontains": word})
            key_field = related._meta.get_field(key_name(field))
            try:
                value = key_field.to_python(word)
                key_field.run_validators(value)
            except (ValidationError, TypeError, ValueError):
                pass
            else:
                if len(words) == 1:
                    match |= Q(**{key_field.name: value})
            queryset = queryset.filter(match)
        return queryset

    # ----- the controls -------------------------------------------------------------------
    def use_search_widgets(self, form: forms.BaseForm, place: str) -> None:
        """Give every big relation field of ``form`` the search control of ``place``."""
        fields = self.relation_fields(place)
        hook = _Widgets(self, place, fields)
        if hasattr(form, "widget_hook"):
            form.widget_hook = hook  # BulkEditForm draws rows from clones: let it ask
            return
        for name, form_field in form.fields.items():
            if name in fields and hasattr(form_field.widget, "instead") and not _multiple(form_field.widget):
                # A filter's own select (``FilterSelect``): decided when it is drawn, if it is. A
                # single value is read from the query string alike by a select and a search control.
                form_field.widget.instead = functools.partial(hook, name, form_field)
                continue
            widget = hook(name, form_field)
            if widget is not None:
                form_field.widget = widget

    def scope_form_choices(self, form: forms.BaseForm) -> None:
        """Narrow every relation choice of a create/update form through ``get_relation_queryset()``."""
        assert self.model is not None
        for name, form_field in form.fields.items():
            queryset = getattr(form_field, "queryset", None)
            if queryset is None:
                continue
            try:
                model_field = self.model._meta.get_field(name)
            except FieldDoesNotExist:
                continue
            if is_relation(model_field):
                form_field.queryset = self.get_relation_queryset(name, queryset)  # type: ignore[attr-defined]


def _multiple(widget: forms.Widget) -> bool:
    return bool(getattr(widget, "allow_multiple_selected", False))


class _Widgets:
    """Decides, per form field, whether it becomes a ``RelationSearchInput``."""

    def __init__(self, view: RelationSearch, place: str, fields: dict[str, models.Field[Any, Any]]) -> None:
        self.view = view
        self.place = place
        self.fields = fields
        self.decided: dict[str, bool] = {}

    def __call__(self, name: str, form_field: forms.Field) -> forms.Widget | None:
        model_field = self.fields.get(name)
        queryset = getattr(form_field, "queryset", None)
        if model_field is None or queryset is None:
            return None
        if name not in self.decided:
            self.decided[name] = has_many(queryset, pc_settings.FILTER_SELECT_MAX_CHOICES)
        if not self.decided[name]:
            return None
        url = self.view.relation_url(name, self.place)
        if url is None:
            return None
        old = form_field.widget
        return RelationSearchInput(
            url=url,
            queryset=queryset,
            key=getattr(form_field, "to_field_name", None) or key_name(model_field),
            multiple=bool(getattr(old, "allow_multiple_selected", False)),
            attrs=dict(old.attrs),
            required=form_field.required,
        )
