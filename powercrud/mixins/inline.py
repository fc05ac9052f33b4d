"""Inline editing: a list row becomes its form fields in place, and saves like the edit modal.

The ``INLINE`` role (``<pk>/inline/``) serves one row of the list. GET answers the row as a
form (``partials/inline_row.html``), or, with ``cancel=1``, as the plain row again; POST
validates and saves through exactly the path of the edit modal: ``row_guard()``,
``merge_concurrent_changes()`` and ``persist_single_object(mode="update")``, under the
UPDATE role's permissions. The query string of the inline URL is the list's own state, so
a save without JavaScript returns to the list as it was (filters, search, sort, page).

Only the fields in ``inline_edit_fields`` that the list shows can be edited; the request
names them (``field=``), and a field outside them is refused with a 400.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

from django import forms
from django.contrib import messages
from django.forms import modelform_factory
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.text import capfirst

from powercrud import columns as cols
from powercrud.bulk.lifecycle import LifecycleRefused
from powercrud.edit_merge import (
    LOADED_FIELD,
    EditConflict,
    loaded_values,
    merge_concurrent_changes,
    track_loaded_values,
)
from powercrud.formfields import formfield_for
from powercrud.jobs.locks import LockConflict, locked_by
from powercrud.mixins.contracts import ListHost
from powercrud.params import RepeatedParameter, single
from powercrud.views import Role, htmx_details, refusal

FIELD_PARAM = "field"
CANCEL_PARAM = "cancel"
# Keys of an inline POST that are not form fields.
INLINE_KEYS = {FIELD_PARAM, LOADED_FIELD, "csrfmiddlewaretoken"}


class InlineRefused(Exception):
    """A request for fields the row cannot edit in place (400), with the sentence to show."""


class InlineEditMixin(ListHost):
    """Row and cell editing in the list for ``CRUDView``, off until ``inline_edit_fields`` is set.

    ``inline_edit_fields`` must be fields of the view's form (check E016).
    """

    inline_edit_fields: ClassVar[Sequence[str]] = ()

    @classmethod
    def has_list_feature_role(cls, role: Role) -> bool:
        if role is Role.INLINE:
            return bool(cls.inline_edit_fields)
        result: bool = super().has_list_feature_role(role)
        return result

    def get_role_permissions(self, role: Role) -> list[str]:
        """An inline edit is an update: it needs exactly the UPDATE role's permissions."""
        if role is Role.INLINE:
            return self.get_role_permissions(Role.UPDATE)
        permissions: list[str] = super().get_role_permissions(role)
        return permissions

    def get_inline_edit_fields(self) -> list[str]:
        return list(self.inline_edit_fields)

    def inline_enabled(self) -> bool:
        roles = self.get_roles()
        return Role.INLINE in roles and Role.UPDATE in roles

    # ----- the list's rows -------------------------------------------------------------
    def list_query(self) -> str:
        """The list's state to carry through an inline edit (the list URL's query string)."""
        query = self.request.GET.copy()
        for key in (FIELD_PARAM, CANCEL_PARAM):
            query.pop(key, None)
        return query.urlencode()

    def inline_url(self, obj: Any, **extra: str) -> str:
        query = self.request.GET.copy()
        for key in (FIELD_PARAM, CANCEL_PARAM):
            query.pop(key, None)
        for key, value in extra.items():
            query[key] = value
        encoded = query.urlencode()
        url = self.reverse(Role.INLINE, obj)
        return f"{url}?{encoded}" if encoded else url

    def build_rows(self, objects: Any, columns: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = super().build_rows(objects, columns)
        if not self.inline_enabled() or not self.get_permission_flags().get(Role.INLINE.value):
            return rows
        editable = set(self.get_inline_edit_fields())
        url_of = self.row_url_maker(Role.INLINE)  # reversed once for the page
        query = self.request.GET.copy()
        for key in (FIELD_PARAM, CANCEL_PARAM):
            query.pop(key, None)
        kept = query.urlencode()
        suffixes = {}
        for name in editable:
            query[FIELD_PARAM] = name
            suffixes[name] = f"?{query.urlencode()}"
        for row in rows:
            url = url_of(row["object"])
            row["inline_url"] = f"{url}?{kept}" if kept else url
            for cell in row["cells"]:
                if cell["column"].name in editable:
                    cell["inline_url"] = url + suffixes[cell["column"].name]
        return rows

    # ----- the form ----------------------------------------------------------------------
    def get_inline_form_class(self, fields: Sequence[str]) -> type[forms.BaseModelForm]:
        """The view's ModelForm (its validation included) narrowed to ``fields``."""
        base = self.form_class if isinstance(self.form_class, type) else None
        if base is None or not issubclass(base, forms.ModelForm):
            base = forms.ModelForm
        form_class: type[forms.BaseModelForm] = modelform_factory(
            self.model, form=base, fields=list(fields), formfield_callback=formfield_for
        )
        return form_class

    def get_inline_form(
        self, fields: Sequence[str], data: Any = None, files: Any = None
    ) -> forms.BaseModelForm:
        assert self.object is not None
        form_id = f"pc-inline-{self.object.pk}"
        form = self.get_inline_form_class(fields)(
            data=data, files=files, instance=self.object, auto_id=f"{form_id}-%s", label_suffix=""
        )
        for field in form.fields.values():
            field.widget.attrs["form"] = form_id  # the inputs sit in table cells, the <form> in the last
        track_loaded_values(form)  # so a save keeps what others changed since (edit_merge.py)
        return form

    def requested_inline_fields(self, data: Any) -> list[str]:
        """The fields this request edits: ``field=`` (each an inline field the list shows), or
        every inline field the list shows. ``InlineRefused`` for any other."""
        allowed = self.get_inline_edit_fields()
        shown = {c.name for c in self.get_columns()}
        named = data.getlist(FIELD_PARAM)
        for name in named:
            if name not in allowed:
                raise InlineRefused(f"“{name}” cannot be edited in the list.")
            if name not in shown:
                raise InlineRefused(f"“{name}” is not a column of this list.")
        fields = list(dict.fromkeys(named)) or [name for name in allowed if name in shown]
        if not fields:
            raise InlineRefused("None of this list's columns can be edited in the list.")
        return fields

    def refuse_other_fields(self, data: Any, fields: Sequence[str]) -> None:
        """A POST carrying a form field that is not being edited here is refused, not ignored."""
        others = set(self.get_form_fields()) | {c.name for c in self.get_all_list_columns()}
        extra = sorted(key for key in data if key in others and key not in fields and key not in INLINE_KEYS)
        if extra:
            raise InlineRefused(f"“{extra[0]}” cannot be edited in the list.")

    def get_all_list_columns(self) -> list[cols.Column]:
        assert self.model is not None
        return cols.build_columns(self.model, self.get_fields(), self.get_properties())

    # ----- handlers ---------------------------------------------------------------------
    def show_inline_form(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.object = self.get_object()
        if not htmx_details(request):  # no JavaScript: the full edit page
            return HttpResponseRedirect(self.reverse(Role.UPDATE, self.object))
        if request.GET.get(CANCEL_PARAM):
            return self.render_inline_row()
        try:
            fields = self.requested_inline_fields(request.GET)
        except (InlineRefused, RepeatedParameter) as exc:
            return self.inline_refused(str(exc), status=400)
        task = locked_by(self.model, self.object.pk)
        if task is not None:
            noun, status = self.model._meta.verbose_name, task.get_status_display().lower()
            return self.inline_refused(
                f"This {noun} is being changed by bulk task #{task.pk} ({status}). "
                "Try again when it finishes.",
                status=409,
            )
        return self.render_inline_form(self.get_inline_form(fields))

    def process_inline_form(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.object = self.get_object()
        try:
            single(request.POST, LOADED_FIELD)
            fields = self.requested_inline_fields(request.POST)
            self.refuse_other_fields(request.POST, fields)
        except (InlineRefused, RepeatedParameter) as exc:
            return self.inline_refused(str(exc), status=400)
        form = self.get_inline_form(fields, data=request.POST, files=request.FILES)
        if not form.is_valid():
            return self.render_inline_form(form)
        try:
            with self.row_guard(self.object):
                merge_concurrent_changes(form)
                self.object = self.persist_with_hooks(form=form, mode="update")
        except (LockConflict, EditConflict) as exc:
            form.add_error(None, str(exc))
            return self.render_inline_form(form, status=409)
        except LifecycleRefused as exc:
            self.refuse_in_form(form, exc)
            return self.render_inline_form(form, status=400)
        message = f"{self.verbose_name()} “{self.object}” saved."
        if htmx_details(request):
            response = self.render_inline_row()
            response["HX-Trigger"] = json.dumps({"pcInlineSaved": {"message": message}})
            return response
        messages.success(request, message, fail_silently=True)
        list_url = self.reverse(Role.LIST)
        query = self.list_query()
        return HttpResponseRedirect(f"{list_url}?{query}" if query else list_url)

    # ----- responses --------------------------------------------------------------------
    def inline_refused(self, message: str, *, status: int) -> HttpResponse:
        """A refusal as its sentence; htmx leaves the row as it is and shows it as a toast."""
        return refusal(self.request, message, status=status, event="pcInlineRefused")

    def handle_no_permission(self) -> HttpResponse:
        if self.role is Role.INLINE and self.request.user.is_authenticated and htmx_details(self.request):
            return self.inline_refused("You do not have permission to edit this.", status=403)
        response: HttpResponse = super().handle_no_permission()
        return response

    def inline_row_context(self) -> dict[str, Any]:
        assert self.object is not None
        columns = self.get_columns()
        row = self.build_rows([self.object], columns)[0]
        bulk = getattr(self, "bulk_enabled", None)
        return {"row": row, "columns": columns, "bulk_enabled": bool(bulk and bulk())}

    def render_inline_row(self, status: int = 200) -> HttpResponse:
        """The row as the list shows it (``partials/table.html#row``)."""
        context = self.get_context_data(**self.inline_row_context())
        return TemplateResponse(self.request, "powercrud/partials/table.html#row", context, status=status)

    def render_inline_form(self, form: forms.BaseModelForm, status: int = 200) -> HttpResponse:
        """The row as a form (htmx), or the edit page narrowed to the row's fields (no JavaScript)."""
        assert self.object is not None
        if not htmx_details(self.request):
            return self.render_page(
                {"form": form, "object": self.object, "loaded_values": loaded_values(form)},
                templates=["powercrud/object_form.html"],
                status=status,
            )
        context = self.inline_row_context()
        cells = []
        for cell in context["row"]["cells"]:
            name = cell["column"].name
            cells.append({**cell, "field": form[name] if name in form.fields else None})
        context.update(
            {
                "form": form,
                "form_id": f"pc-inline-{self.object.pk}",
                "cells": cells,
                "edited_fields": list(form.fields),
                "loaded_values": loaded_values(form),
                "post_url": self.inline_url(self.object),
                "cancel_url": self.inline_url(self.object, **{CANCEL_PARAM: "1"}),
                "row_label": capfirst(str(self.object)),
            }
        )
        return TemplateResponse(
            self.request,
            "powercrud/partials/inline_row.html",
            self.get_context_data(**context),
            status=status,
        )
