"""Role-based CRUD views.

A ``Role`` enum member owns everything one screen needs: its HTTP handlers, URL pattern,
URL name and template suffix. ``CRUDView.get_urls()`` asks every role for its pattern.
"""

from __future__ import annotations

import builtins
import contextlib
import enum
import heapq
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, cast

from django import forms
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured, ValidationError
from django.core.paginator import Page, Paginator
from django.db import OperationalError, connections, models, router, transaction
from django.db.models.deletion import ProtectedError, RestrictedError
from django.forms import modelform_factory
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils.decorators import classonlymethod
from django.utils.html import escape
from django.views import View
from django_htmx.http import HttpResponseClientRedirect, trigger_client_event
from django_htmx.middleware import HtmxDetails

from powercrud import columns as cols
from powercrud.bulk import lifecycle
from powercrud.bulk import messages as bulk_messages
from powercrud.conf import settings as pc_settings
from powercrud.edit_merge import EditConflict, loaded_values, merge_concurrent_changes, track_loaded_values
from powercrud.formfields import formfield_for
from powercrud.jobs.locks import LockConflict, guard_rows
from powercrud.notices import take_notices
from powercrud.relations import RelationSearch

# Views that define a model register here so system checks can inspect them.
registry: list[type[CRUDView]] = []


_SQLITE_BUSY = ("database is locked", "database table is locked")


def database_busy(exc: OperationalError) -> bool:
    """Whether ``exc`` is SQLite giving up on a write lock another connection held too long."""
    return str(exc).strip().lower() in _SQLITE_BUSY


class HtmxHttpRequest(HttpRequest):
    """The request a powercrud view serves: django-htmx's middleware (check E008) adds ``htmx``."""

    htmx: HtmxDetails


def htmx_details(request: HttpRequest) -> HtmxDetails | None:
    """``request.htmx``, or None for a request that skipped the middleware (e.g. ``RequestFactory``)."""
    details: HtmxDetails | None = getattr(request, "htmx", None)
    return details


def refusal(request: HttpRequest, message: str, *, status: int, event: str) -> HttpResponse:
    """A refusal whose body is the escaped ``message``; for htmx it swaps nothing and triggers
    ``event`` with the message, which powercrud.js shows as a toast."""
    response = HttpResponse(escape(message), status=status)
    if htmx_details(request):
        response["HX-Reswap"] = "none"
        response["HX-Trigger"] = json.dumps({event: {"message": message}})
    return response


class _Keyed:
    """Stands in for a row when only its key is needed to reverse a URL."""

    def __init__(self, pk: Any) -> None:
        self.pk = pk


class Role(enum.Enum):
    """The screens of a CRUD view."""

    LIST = "list"
    CREATE = "create"
    DETAIL = "detail"
    UPDATE = "update"
    DELETE = "delete"
    SELECTION = "selection"
    BULK_EDIT = "bulk-edit"
    BULK_DELETE = "bulk-delete"
    RELATION = "relation"
    INLINE = "inline"
    PREFERENCES = "preferences"
    EXPORT = "export"
    IMPORT = "import"
    BULK_API = "bulk-api"

    @property
    def handlers(self) -> dict[str, str]:
        """HTTP method -> view method name."""
        return _HANDLERS[self]

    @property
    def is_bulk(self) -> bool:
        """Roles that exist only when a view enables bulk work (``bulk_fields``/``bulk_delete``)."""
        return self in (Role.SELECTION, Role.BULK_EDIT, Role.BULK_DELETE, Role.BULK_API)

    @property
    def is_list_feature(self) -> bool:
        """Roles that exist only when a view turns on a list feature (``has_list_feature_role``)."""
        return self in (Role.INLINE, Role.PREFERENCES, Role.EXPORT, Role.IMPORT)

    @property
    def needs_object(self) -> bool:
        return self in (Role.DETAIL, Role.UPDATE, Role.DELETE, Role.INLINE)

    @property
    def template_suffix(self) -> str:
        return _TEMPLATE_SUFFIXES[self]

    @property
    def permission_action(self) -> str:
        """The Django model permission action (``view``, ``add``, ...) this role needs."""
        return _PERMISSION_ACTIONS[self]

    def url_name(self, url_base: str) -> str:
        return f"{url_base}-{self.value}"

    def url_pattern(self, view_cls: type[CRUDView]) -> URLPattern:
        url_base = view_cls.get_url_base()
        converter = view_cls.get_path_converter()
        route = _ROUTES[self].format(pk=f"<{converter}:pk>")
        return path(f"{url_base}/{route}", view_cls.as_view(role=self), name=self.url_name(url_base))


_HANDLERS = {
    Role.LIST: {"get": "list"},
    Role.CREATE: {"get": "show_form", "post": "process_form"},
    Role.DETAIL: {"get": "detail"},
    Role.UPDATE: {"get": "show_form", "post": "process_form"},
    Role.DELETE: {"get": "confirm_delete", "post": "process_deletion"},
    Role.SELECTION: {"get": "selection_state", "post": "update_selection"},
    Role.BULK_EDIT: {"get": "show_bulk_form", "post": "process_bulk_form"},
    Role.BULK_DELETE: {"get": "confirm_bulk_delete", "post": "process_bulk_delete"},
    Role.RELATION: {"get": "relation_search"},
    Role.INLINE: {"get": "show_inline_form", "post": "process_inline_form"},
    Role.PREFERENCES: {"get": "show_preferences", "post": "save_preferences"},
    Role.EXPORT: {"get": "export"},
    Role.IMPORT: {"get": "show_import", "post": "process_import"},  # mixins/importing.py
    Role.BULK_API: {"post": "process_bulk_api"},  # mixins/bulk_api.py
}
_ROUTES = {
    Role.LIST: "",
    Role.CREATE: "new/",
    Role.DETAIL: "{pk}/",
    Role.UPDATE: "{pk}/edit/",
    Role.DELETE: "{pk}/delete/",
    Role.SELECTION: "selection/",
    Role.BULK_EDIT: "bulk/edit/",
    Role.BULK_DELETE: "bulk/delete/",
    Role.RELATION: "relation/<str:field>/",
    Role.INLINE: "{pk}/inline/",
    Role.PREFERENCES: "preferences/",
    Role.EXPORT: "export/",
    Role.IMPORT: "import/",
    Role.BULK_API: "bulk/api/",
}
_TEMPLATE_SUFFIXES = {
    Role.LIST: "list",
    Role.CREATE: "form",
    Role.DETAIL: "detail",
    Role.UPDATE: "form",
    Role.DELETE: "confirm_delete",
    Role.SELECTION: "selection",
    Role.BULK_EDIT: "bulk_edit",
    Role.BULK_DELETE: "bulk_delete",
    Role.RELATION: "relation",
    Role.INLINE: "form",
    Role.PREFERENCES: "list",
    Role.EXPORT: "list",
    Role.IMPORT: "import",
    Role.BULK_API: "list",  # answers JSON, never a template
}
_PERMISSION_ACTIONS = {
    Role.LIST: "view",
    Role.DETAIL: "view",
    Role.CREATE: "add",
    Role.UPDATE: "change",
    Role.DELETE: "delete",
    Role.SELECTION: "view",
    Role.BULK_EDIT: "change",
    Role.BULK_DELETE: "delete",
    Role.RELATION: "view",  # and more: see has_role_permission()
    Role.INLINE: "change",  # and the UPDATE role's own permissions (mixins/inline.py)
    Role.PREFERENCES: "view",
    Role.EXPORT: "view",
    Role.IMPORT: "add",  # and "change" for an upsert (mixins/importing.py)
    Role.BULK_API: "change",  # per operation: see mixins/bulk_api.py
}

# The screens that show relation controls, and the place each is (relations.py).
_FORM_PLACES = {Role.LIST: "filter", Role.CREATE: "form", Role.UPDATE: "form", Role.BULK_EDIT: "bulk"}


def _blockers_text(objects: Any) -> str:
    """`` It is still used by 2 books: A, B.`` for the rows that stop a delete (first five named)."""
    objects = list(objects)
    if not objects:
        return ""
    counts = Counter(obj._meta for obj in objects)
    kinds = ", ".join(
        f"{n} {opts.verbose_name if n == 1 else opts.verbose_name_plural}" for opts, n in counts.items()
    )
    names = heapq.nsmallest(5, (str(obj) for obj in objects))
    more = f" and {len(objects) - 5} more" if len(objects) > 5 else ""
    return f" It is still used by {kinds}: {', '.join(names)}{more}."


class CRUDView(RelationSearch, View):
    """One class, every CRUD screen for ``model``: list, detail, create, update, delete."""

    model: ClassVar[type[models.Model] | None] = None
    fields: ClassVar[Sequence[str] | None] = None
    properties: ClassVar[Sequence[str]] = ()
    form_fields: ClassVar[Sequence[str] | None] = None
    form_class: ClassVar[type[forms.BaseForm] | None] = None
    paginate_by: ClassVar[int | None] = None
    url_base: ClassVar[str | None] = None
    namespace: ClassVar[str | None] = None
    path_converter: ClassVar[str | None] = None
    base_template_path: ClassVar[str | None] = None
    role_permissions: ClassVar[Mapping[str, Sequence[str]] | None] = None
    # Full pages show a toast for each background bulk run of the user that ended unseen.
    announce_runs: ClassVar[bool] = True
    # Set by ``as_view(role=...)``.
    role: Role | None = None

    request: HtmxHttpRequest

    object: models.Model | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        registry.append(cls)

    # ----- URLs -------------------------------------------------------------------------
    @classonlymethod
    def as_view(cls, role: Role | None = None, **initkwargs: Any) -> Callable[..., HttpResponseBase]:
        if not isinstance(role, Role):
            raise ImproperlyConfigured(
                f"{cls.__name__}.as_view() needs role=Role.<NAME>; "
                f"use {cls.__name__}.get_urls() to get every URL pattern at once."
            )
        if cls.model is None:
            raise ImproperlyConfigured(f"{cls.__name__} needs a `model` attribute.")
        view = super().as_view(role=role, **initkwargs)
        if role.is_bulk:
            # Never inside ATOMIC_REQUESTS: a bulk launch must commit, and so enqueue its job,
            # before the response, or a broker that is down could not be answered with a 503.
            for alias in connections:
                view = transaction.non_atomic_requests(using=alias)(view)
        return view

    @classmethod
    def get_roles(cls) -> list[Role]:
        """The roles this view serves; override to drop some (e.g. no delete screen)."""
        return [
            role
            for role in Role
            if (not role.is_bulk or cls.has_bulk_role(role))
            and (not role.is_list_feature or cls.has_list_feature_role(role))
        ]

    @classmethod
    def has_bulk_role(cls, role: Role) -> bool:
        """Whether bulk ``role`` is enabled; ``PowerCRUDMixin`` turns these on."""
        return False

    @classmethod
    def has_list_feature_role(cls, role: Role) -> bool:
        """Whether list-feature ``role`` (inline edit, preferences) is on; ``PowerCRUDMixin`` decides."""
        return False

    @classmethod
    def get_urls(cls, roles: Sequence[Role] | None = None) -> list[URLPattern]:
        """URL patterns for every role (or just ``roles``), named ``<url_base>-<role>``."""
        return [role.url_pattern(cls) for role in (roles or cls.get_roles())]

    @classmethod
    def get_url_base(cls) -> str:
        assert cls.model is not None
        return cls.url_base or str(cls.model._meta.model_name)

    @classmethod
    def get_path_converter(cls) -> str:
        if cls.path_converter:
            return cls.path_converter
        assert cls.model is not None
        pk = cls.model._meta.pk
        if isinstance(pk, (models.AutoField, models.BigAutoField, models.IntegerField)):
            return "int"
        if isinstance(pk, models.UUIDField):
            return "uuid"
        if isinstance(pk, models.ForeignKey):  # multi-table inheritance child
            return "int"
        return "str"

    @classmethod
    def row_url(cls, pk: Any) -> str | None:
        """The detail page of the row with primary key ``pk``; None without a DETAIL role or URL."""
        if Role.DETAIL not in cls.get_roles() or pk is None:
            return None
        name = Role.DETAIL.url_name(cls.get_url_base())
        try:
            return reverse(f"{cls.namespace}:{name}" if cls.namespace else name, kwargs={"pk": pk})
        except NoReverseMatch:  # not in the URLconf, or a key the path converter refuses
            return None

    def reverse(self, role: Role, obj: models.Model | None = None) -> str:
        """The URL of ``role`` (for ``obj`` when the role needs one). A role without an object
        is reversed once a request (a list page asked for the list's and the preferences' URLs
        a dozen times)."""
        keep = obj is None or not role.needs_object
        kept: dict[Role, str] = self.__dict__.setdefault("_reversed", {})
        if keep and role in kept:
            return kept[role]
        name = role.url_name(self.get_url_base())
        if self.namespace:
            name = f"{self.namespace}:{name}"
        kwargs = {"pk": obj.pk} if role.needs_object and obj is not None else None
        url = reverse(name, kwargs=kwargs)
        if keep:
            kept[role] = url
        return url

    # ----- dispatch and permissions ---------------------------------------------------
    def setup(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        super().setup(request, *args, **kwargs)
        assert self.role is not None
        # get_roles() asks every role's feature hooks; a list page asked 17 times (0.3 ms).
        # Within one request the answer cannot change: ask once, then answer with copies.
        roles = type(self).get_roles()
        self.get_roles = lambda: list(roles)  # type: ignore[method-assign]
        for method, handler in self.role.handlers.items():
            setattr(self, method, getattr(self, handler))
        if "get" in self.role.handlers and "head" not in self.role.handlers:
            self.head = getattr(self, self.role.handlers["get"])

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        assert self.role is not None
        if not self.has_role_permission(self.role):
            return self.handle_no_permission()
        try:
            return super().dispatch(request, *args, **kwargs)
        except OperationalError as exc:
            if not database_busy(exc):
                raise
            return self.handle_database_busy()

    def handle_database_busy(self) -> HttpResponse:
        """The response when SQLite stayed locked by another writer past its ``timeout``: 503."""
        return self.render_page(
            {
                "title": "Try again in a moment",
                "message": "The database is busy with another change (SQLite saves one change at a "
                "time), so nothing was saved. Try again in a moment.",
            },
            templates=["powercrud/denied.html"],
            status=503,
        )

    def get_role_permissions(self, role: Role) -> list[str]:
        """Permission names (``app.codename``) a user needs for ``role``."""
        if self.role_permissions is not None and role.value in self.role_permissions:
            return list(self.role_permissions[role.value])
        assert self.model is not None
        opts = self.model._meta
        return [f"{opts.app_label}.{role.permission_action}_{opts.model_name}"]

    def has_role_permission(self, role: Role) -> bool:
        """Whether the current user may use ``role``."""
        if role is Role.RELATION and not (self.role_permissions and role.value in self.role_permissions):
            # Relation search serves a form, a filter or the bulk modal: any one of them will do
            # here; the endpoint then checks the place it is asked for (relations.py).
            return any(self.has_role_permission(r) for r in self.get_roles() if r in _FORM_PLACES)
        return self.request.user.has_perms(self.get_role_permissions(role))

    def handle_no_permission(self) -> HttpResponse:
        """Anonymous users go to the login page; signed-in users get a 403 page or modal."""
        request = self.request
        if not request.user.is_authenticated:
            if htmx_details(request):
                return HttpResponseClientRedirect(redirect_to_login(request.get_full_path()).url)
            return redirect_to_login(request.get_full_path())
        return self.render_page(
            {"message": "You do not have permission to do this."},
            templates=["powercrud/denied.html"],
            status=403,
        )

    # ----- data -------------------------------------------------------------------------
    def get_queryset(self) -> models.QuerySet[Any]:
        """Every row this view may show or change; all other code starts from here."""
        assert self.model is not None
        return self.model._default_manager.all()

    def get_object(self) -> models.Model:
        """The row named in the URL, looked up inside ``get_queryset()``."""
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])

    def get_fields(self) -> list[str]:
        """Model field names (``a__b`` for related) shown in the list and detail."""
        assert self.model is not None
        return list(self.fields) if self.fields is not None else cols.default_field_names(self.model)

    def get_properties(self) -> list[str]:
        return list(self.properties)

    def get_columns(self) -> list[cols.Column]:
        assert self.model is not None
        return cols.build_columns(self.model, self.get_fields(), self.get_properties())

    # ----- forms --------------------------------------------------------------------------
    def get_form_fields(self) -> list[str]:
        """Fields the create/update form edits: ``form_fields``, else the editable ``fields``."""
        if self.form_fields is not None:
            return list(self.form_fields)
        assert self.model is not None
        names = []
        for name in self.get_fields():
            if "__" in name:
                continue
            try:
                field = self.model._meta.get_field(name)
            except FieldDoesNotExist:
                continue
            if getattr(field, "editable", False) and not getattr(field, "auto_created", False):
                names.append(name)
        return names

    def get_form_class(self) -> type[forms.BaseForm]:
        if self.form_class is not None:
            return self.form_class
        assert self.model is not None
        return modelform_factory(
            self.model,
            fields=self.get_form_fields(),
            formfield_callback=formfield_for,
        )

    def get_form(self, data: Any = None, files: Any = None) -> forms.BaseForm:
        form_class = self.get_form_class()
        kwargs: dict[str, Any] = {"data": data, "files": files, "label_suffix": ""}
        if issubclass(form_class, forms.BaseModelForm):
            kwargs["instance"] = self.object
        form = form_class(**kwargs)
        self.scope_form_choices(form)  # get_relation_queryset() (relations.py)
        if self.role is Role.UPDATE and isinstance(form, forms.BaseModelForm) and self.object is not None:
            track_loaded_values(form)  # so a save keeps what others changed since (edit_merge.py)
        return form

    def persist_single_object(
        self, *, form: forms.BaseForm, mode: str, instance: models.Model | None = None
    ) -> models.Model:
        """Write one create or update (``mode`` is "create" or "update"); return the object."""
        # The default saves a ModelForm; any other ``form_class`` overrides this hook (documented).
        model_form = cast("forms.BaseModelForm[models.Model]", form)
        return model_form.save()

    def row_guard(self, instance: models.Model | None) -> contextlib.AbstractContextManager[Any]:
        """A transaction in which ``instance`` cannot be taken by a bulk task; raises
        ``LockConflict`` naming the task when one already holds it."""
        if instance is None:
            return contextlib.nullcontext()
        return guard_rows(type(instance), [instance.pk])

    def delete_object(self, instance: models.Model) -> None:
        """Delete one row; raise ProtectedError or ValidationError to refuse with a message."""
        instance.delete()

    def persist_with_hooks(self, *, form: forms.BaseForm, mode: str) -> models.Model:
        """``persist_single_object()`` between the model's lifecycle hooks (``bulk.lifecycle``),
        in one transaction; raises ``LifecycleRefused`` when a before hook refuses the row."""
        assert self.model is not None
        write = lambda: self.persist_single_object(form=form, mode=mode, instance=self.object)  # noqa: E731
        if not lifecycle.has_hooks(self.model, lifecycle.CREATE if mode == "create" else lifecycle.UPDATE):
            return write()
        new = form.instance if isinstance(form, forms.BaseModelForm) else None
        with transaction.atomic(using=router.db_for_write(self.model)):
            old = lifecycle.stored(self.object) if mode == "update" and self.object is not None else None
            result: models.Model = lifecycle.write_one(self.model, mode, new, old, write)
        return result

    def delete_with_hooks(self, instance: models.Model) -> None:
        """``delete_object()`` between the model's delete lifecycle hooks, in one transaction."""
        if not lifecycle.has_hooks(type(instance), lifecycle.DELETE):
            self.delete_object(instance)
            return
        with transaction.atomic(using=router.db_for_write(type(instance))):
            old = lifecycle.snapshot(instance)
            lifecycle.write_one(type(instance), "delete", None, old, lambda: self.delete_object(instance))

    def refuse_in_form(self, form: forms.BaseForm, exc: lifecycle.LifecycleRefused) -> None:
        """A lifecycle hook's refusal shown on ``form``: on its field when the form has it."""
        for error in exc.errors:
            for message in error.messages:
                form.add_error(error.field if error.field in form.fields else None, message)

    # ----- handlers -----------------------------------------------------------------------
    def list(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self.render_page(self.get_list_context())

    def detail(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.object = self.get_object()
        return self.render_page({"object": self.object, "detail_rows": self.get_detail_rows()})

    def show_form(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.object = self.get_object() if self.role is Role.UPDATE else None
        return self.render_page({"form": self.get_form(), "object": self.object})

    def process_form(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.object = self.get_object() if self.role is Role.UPDATE else None
        form = self.get_form(data=request.POST, files=request.FILES)
        if not form.is_valid():
            return self.render_page({"form": form, "object": self.object})
        mode = "update" if self.role is Role.UPDATE else "create"
        try:
            with self.row_guard(self.object):
                if mode == "update" and isinstance(form, forms.BaseModelForm):
                    merge_concurrent_changes(form)
                self.object = self.persist_with_hooks(form=form, mode=mode)
        except (LockConflict, EditConflict) as exc:
            form.add_error(None, str(exc))
            return self.render_page({"form": form, "object": self.object}, status=409)
        except lifecycle.LifecycleRefused as exc:
            self.refuse_in_form(form, exc)
            return self.render_page({"form": form, "object": self.object}, status=400)
        verb = "saved" if mode == "update" else "created"
        return self.success_response(f"{self.verbose_name()} “{self.object}” {verb}.")

    def confirm_delete(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.object = self.get_object()
        return self.render_page({"object": self.object})

    def process_deletion(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.object = self.get_object()
        label = str(self.object)
        try:
            with self.row_guard(self.object):
                self.delete_with_hooks(self.object)
        except LockConflict as exc:
            return self.render_page({"object": self.object, "error": str(exc)}, status=409)
        except lifecycle.LifecycleRefused as exc:
            error = bulk_messages.refused_by_hook(label, [m for e in exc.errors for m in e.messages])
            return self.render_page({"object": self.object, "error": error}, status=409)
        except (ProtectedError, RestrictedError) as exc:
            detail = _blockers_text(exc.args[1]) if len(exc.args) > 1 else ""
            return self.render_page(
                {"object": self.object, "error": f"“{label}” cannot be deleted.{detail}"},
                status=409,
            )
        except ValidationError as exc:
            return self.render_page({"object": self.object, "error": " ".join(exc.messages)}, status=409)
        return self.success_response(f"{self.verbose_name()} “{label}” deleted.")

    # ----- context and rendering ------------------------------------------------------
    def verbose_name(self) -> str:
        assert self.model is not None
        return str(self.model._meta.verbose_name).capitalize()

    def get_list_queryset(self) -> models.QuerySet[Any]:
        """The list's rows: ``get_queryset()`` with joins for the shown relations."""
        assert self.model is not None
        queryset = self.get_queryset()
        fields = self.get_fields()
        related = cols.select_related_paths(self.model, fields)
        many = cols.prefetch_paths(self.model, fields)
        if related:
            queryset = queryset.select_related(*related)
        if many:
            queryset = queryset.prefetch_related(*many)
        if not queryset.query.order_by and not self.model._meta.ordering:
            queryset = queryset.order_by("pk")
        return queryset

    def get_paginate_by(self) -> int:
        return self.paginate_by or pc_settings.DEFAULT_PAGE_SIZE

    def paginate(self, queryset: models.QuerySet[Any], per_page: int) -> Page[Any]:
        """The requested page; a page number past the end shows the last page."""
        paginator = Paginator(queryset, per_page)
        number = self.request.GET.get("page") or 1
        return paginator.get_page(number)

    def get_list_context(self) -> dict[str, Any]:
        page = self.paginate(self.get_list_queryset(), self.get_paginate_by())
        columns = self.get_columns()
        return {
            "page_obj": page,
            "page_numbers": list(
                page.paginator.get_elided_page_range(page.number, on_each_side=2, on_ends=1)
            ),
            "columns": columns,
            "rows": self.build_rows(page.object_list, columns),
        }

    def build_rows(self, objects: Any, columns: Sequence[cols.Column]) -> builtins.list[dict[str, Any]]:
        """Rows for the table template: the object, its cells and its action URLs."""
        rows = []
        can = self.get_permission_flags()
        detail, update, delete = (
            self.row_url_maker(role) for role in (Role.DETAIL, Role.UPDATE, Role.DELETE)
        )
        for obj in objects:
            rows.append(
                {
                    "object": obj,
                    "pk": obj.pk,
                    "cells": [
                        {"column": c, "value": cols.format_value(cols.cell_value(obj, c))} for c in columns
                    ],
                    "detail_url": detail(obj) if can["detail"] else None,
                    "update_url": update(obj) if can["update"] else None,
                    "delete_url": delete(obj) if can["delete"] else None,
                }
            )
        return rows

    _URL_MARKER = 918_273_645_546_372_819  # a key no table has: reversed once, then replaced

    def row_url_maker(self, role: Role) -> Callable[[models.Model], str]:
        """``obj -> self.reverse(role, obj)``, reversing once per page for integer keys (a list
        page reversed three to five URLs per row, a third of its time)."""
        if self.get_path_converter() != "int":
            return lambda obj: self.reverse(role, obj)
        marker = str(self._URL_MARKER)
        try:
            sample = self.reverse(role, _Keyed(self._URL_MARKER))  # type: ignore[arg-type]
        except NoReverseMatch:
            return lambda obj: self.reverse(role, obj)
        if sample.count(marker) != 1:
            return lambda obj: self.reverse(role, obj)
        head, tail = sample.split(marker)
        return lambda obj: f"{head}{obj.pk}{tail}"

    def get_detail_rows(self) -> builtins.list[tuple[str, Any]]:
        assert self.object is not None
        columns = self.get_columns()
        return [(c.label, cols.format_value(cols.cell_value(self.object, c))) for c in columns]

    def get_permission_flags(self) -> dict[str, bool]:
        """Which roles the user may use, so templates hide the buttons they may not."""
        if not hasattr(self, "_permission_flags"):
            roles = set(self.get_roles())
            self._permission_flags = {
                role.value: role in roles and self.has_role_permission(role) for role in Role
            }
        return self._permission_flags

    def get_base_template_path(self) -> str:
        return self.base_template_path or pc_settings.BASE_TEMPLATE

    def get_template_names(self) -> builtins.list[str]:
        """Per-model override first (``<app>/<model>_<suffix>.html``), then powercrud's own."""
        assert self.model is not None and self.role is not None
        opts = self.model._meta
        suffix = self.role.template_suffix
        return [
            f"{opts.app_label}/{opts.model_name}_{suffix}.html",
            f"powercrud/object_{suffix}.html",
        ]

    def get_partial_name(self) -> str | None:
        """The named partial to render for an HTMX request, or None for the whole page."""
        htmx = htmx_details(self.request)
        if not htmx or htmx.boosted or htmx.history_restore_request:
            return None
        return "content"

    def get_context_data(self, **extra: Any) -> dict[str, Any]:
        assert self.model is not None and self.role is not None
        urls = {"list": self.reverse(Role.LIST)}
        can = self.get_permission_flags()
        if can["create"]:
            urls["create"] = self.reverse(Role.CREATE)
        if self.object is not None:
            for role in (Role.DETAIL, Role.UPDATE, Role.DELETE):
                if can[role.value]:
                    urls[role.value] = self.reverse(role, self.object)
        context: dict[str, Any] = {
            "view": self,
            "role": self.role.value,
            "model_opts": self.model._meta,
            "verbose_name": self.model._meta.verbose_name,
            "verbose_name_plural": self.model._meta.verbose_name_plural,
            "base_template_path": self.get_base_template_path(),
            "urls": urls,
            "can": can,
            "is_modal": self.get_partial_name() is not None,
        }
        if self.announce_runs and not context["is_modal"]:
            context["run_notices"] = take_notices(self.request.user)  # background runs that ended
        form = extra.get("form")
        if isinstance(form, forms.BaseForm) and self.role in _FORM_PLACES and self.role is not Role.LIST:
            self.use_search_widgets(form, _FORM_PLACES[self.role])  # big relations search (relations.py)
        if self.role is Role.UPDATE and self.object is not None and isinstance(form, forms.BaseModelForm):
            context["loaded_values"] = loaded_values(form)  # see edit_merge.py
        context.update(extra)
        return context

    def render_page(
        self,
        context: dict[str, Any],
        *,
        templates: builtins.list[str] | None = None,
        status: int = 200,
    ) -> HttpResponse:
        """Render the role's page, or only its partial for an HTMX request."""
        names = templates or self.get_template_names()
        partial = self.get_partial_name()
        if partial:
            names = [f"{name}#{partial}" for name in names]
        return TemplateResponse(self.request, names, self.get_context_data(**context), status=status)

    def success_response(self, message: str) -> HttpResponse:
        """After a write: HTMX closes the modal and refreshes the list; plain HTML redirects."""
        if self.get_partial_name():
            response = HttpResponse(status=204)
            return trigger_client_event(response, "pcSaved", {"message": message})
        from django.contrib import messages

        messages.success(self.request, message, fail_silently=True)
        return HttpResponseRedirect(self.reverse(Role.LIST))


def view_named(dotted_name: str) -> type[CRUDView] | None:
    """The registered ``CRUDView`` subclass named ``module.ClassName``, or None."""
    for view in registry:
        if f"{view.__module__}.{view.__qualname__}" == dotted_name:
            return view
    return None


__all__ = ["CRUDView", "HtmxHttpRequest", "Role", "htmx_details", "registry", "view_named"]
