"""Export of the list: the rows it shows, or the selection, as CSV, XLSX or JSON.

``export_formats`` turns the ``EXPORT`` role on (``<url_base>/export/``). The request carries
the list's own query string (filters, search, sort, columns, a saved view), plus
``export=<format>`` and ``export_scope=all|selection``: the file holds what the list holds,
re-scoped through ``get_queryset()``, in the list's order, with the columns the user shows.
Anyone who may see the list may export it.

The columns are those an import of the file would take back: the primary key first, then
each shown column that is one of the model's own fields, under the field's name. Values are
as stored: a choice's value (not its label), a foreign key's primary key, a many-to-many
field's related primary keys (a list in JSON, ``", "``-separated in CSV and XLSX), decimals
and dates in the codec's text form in CSV and JSON and as numbers and dates in XLSX. Related
paths (``author__name``) and properties are display-only and left out.

CSV and JSON stream as the rows are read (``iterator()``, ``EXPORT_CHUNK`` rows and one
query per many-to-many field per chunk); XLSX is written to a temporary file first.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlencode

from django.db import models
from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.utils.text import slugify

from powercrud import fileformats
from powercrud.bulk.codec import sorted_values
from powercrud.bulk.m2m import link_edit, read_links
from powercrud.mixins.contracts import ExportHost
from powercrud.params import RepeatedParameter, refuse_repeated
from powercrud.views import Role, refusal

FORMAT_PARAM = "export"
SCOPE_PARAM = "export_scope"
SCOPES = ("all", "selection")
EXPORT_CHUNK = 2000
"""Rows read per round trip while an export streams."""


@dataclass(frozen=True)
class ExportColumn:
    """One column of an export: its header (the field's name) and how its value is read."""

    name: str
    attname: str  # what ``values_list()`` reads; empty for a many-to-many field
    many: bool = False


class ExportRefused(Exception):
    """An export request that cannot be answered (400), with the sentence to show."""


class ExportMixin(ExportHost):
    """Downloads of the list for ``CRUDView``, off until ``export_formats`` is set."""

    export_formats: ClassVar[Sequence[str]] = ()

    @classmethod
    def has_list_feature_role(cls, role: Role) -> bool:
        if role is Role.EXPORT:
            return bool(cls.export_formats)
        result: bool = super().has_list_feature_role(role)
        return result

    def get_role_permissions(self, role: Role) -> list[str]:
        """An export shows what the list shows: it needs the LIST role's permissions, unless
        ``role_permissions`` names ``export`` itself."""
        if role is Role.EXPORT and not (self.role_permissions and role.value in self.role_permissions):
            return self.get_role_permissions(Role.LIST)
        permissions: list[str] = super().get_role_permissions(role)
        return permissions

    def get_export_formats(self) -> list[fileformats.FileFormat]:
        """The formats offered, in the view's order (names checked at startup: E018, E019)."""
        return [fileformats.FORMATS[name] for name in self.export_formats if name in fileformats.FORMATS]

    def export_enabled(self) -> bool:
        return Role.EXPORT in self.get_roles()

    def get_export_columns(self) -> list[ExportColumn]:
        """The primary key, then each column the list shows that is one of the model's fields."""
        pk = self.model._meta.pk
        assert pk is not None
        columns = [ExportColumn(pk.name, pk.attname)]
        for column in self.get_columns():
            if column.kind == "property" or "__" in column.name:
                continue
            field = self.model._meta.get_field(column.name)
            if not isinstance(field, models.Field) or field.primary_key:
                continue  # a reverse relation, or the key already first
            if field.many_to_many:
                columns.append(ExportColumn(field.name, "", many=True))
            elif field.concrete:
                columns.append(ExportColumn(field.name, field.attname))
        return columns

    def export_rows(
        self, queryset: models.QuerySet[Any], columns: Sequence[ExportColumn]
    ) -> Iterator[list[Any]]:
        """Each row's values, in ``columns``' order, read ``EXPORT_CHUNK`` rows at a time."""
        plain = [c.attname for c in columns if not c.many]
        many = [c.name for c in columns if c.many]
        using = queryset.db
        found = queryset.select_related(None).prefetch_related(None).values_list(*plain)
        rows = found.iterator(chunk_size=EXPORT_CHUNK)
        while chunk := list(itertools.islice(rows, EXPORT_CHUNK)):
            pks = [row[0] for row in chunk]
            links = {
                name: read_links(link_edit(self.model, name, "add", frozenset()), using, pks) for name in many
            }
            for row in chunk:
                values = iter(row)
                yield [
                    sorted_values(links[c.name].get(row[0], ())) if c.many else next(values) for c in columns
                ]

    def get_export_queryset(self, scope: str) -> models.QuerySet[Any]:
        """The rows to export: the list's (filters, search, sort) or the selection's, in the list's
        order; ``ExportRefused`` for a selection that is empty or that this view does not keep."""
        if scope == "all":
            return self.get_list_queryset()
        if Role.SELECTION not in self.get_roles():
            raise ExportRefused("This list keeps no selection to export; export all matching rows instead.")
        selection = self.get_selection()
        if selection.is_empty:
            raise ExportRefused(
                f"No {self.model._meta.verbose_name_plural} are selected: tick rows first, "
                "or export all matching rows."
            )
        return self.apply_sort(self.get_selection_queryset(selection))

    def export_filename(self, file_format: fileformats.FileFormat) -> str:
        stamp = timezone.localtime().strftime("%Y-%m-%d-%H%M")
        name = slugify(str(self.model._meta.verbose_name_plural)) or "rows"
        return f"{name}-{stamp}.{file_format.extension}"

    # ----- the handler -----------------------------------------------------------------
    def export(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            refuse_repeated(request.GET, (FORMAT_PARAM, SCOPE_PARAM))
            file_format = self._chosen_format(request)
            scope = request.GET.get(SCOPE_PARAM, "all")
            if scope not in SCOPES:
                raise ExportRefused(f"“{scope}” is not an export scope; use “all” or “selection”.")
            queryset = self.get_export_queryset(scope)
        except RepeatedParameter as exc:
            return self.export_refused(exc.message)
        except ExportRefused as exc:
            return self.export_refused(str(exc))
        columns = self.get_export_columns()
        header = [c.name for c in columns]
        rows = self.export_rows(queryset, columns)
        filename = self.export_filename(file_format)
        if file_format.name == "xlsx":
            title = str(self.model._meta.verbose_name_plural).capitalize()
            handle = fileformats.xlsx_file(header, rows, title=title)
            return FileResponse(
                handle, as_attachment=True, filename=filename, content_type=file_format.content_type
            )
        chunks = fileformats.json_chunks if file_format.name == "json" else fileformats.csv_chunks
        response = StreamingHttpResponse(chunks(header, rows), content_type=file_format.content_type)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    def _chosen_format(self, request: HttpRequest) -> fileformats.FileFormat:
        offered = self.get_export_formats()
        raw = request.GET.get(FORMAT_PARAM, offered[0].name if offered else "")
        for file_format in offered:
            if file_format.name == raw:
                return file_format
        names = ", ".join(f.name for f in offered)
        raise ExportRefused(f"“{raw}” is not an export format of this list; choose one of: {names}.")

    def export_refused(self, message: str) -> HttpResponse:
        return refusal(self.request, message, status=400, event="pcExportRefused")

    def get_context_data(self, **extra: Any) -> dict[str, Any]:
        """The list's Export menu and the selection bar (drawn by the list and again by every
        selection change) get ``export_links``; other pages need none."""
        context: dict[str, Any] = super().get_context_data(**extra)
        if self.role in (Role.LIST, Role.SELECTION) and self.export_enabled():
            context["export_links"] = self.export_links()
        return context

    def export_links(self) -> list[dict[str, str]]:
        """Per format: its label, the URL of the list's rows (with the list's query string) and
        the URL of the selection (in the list's default order, with the user's columns: the
        selection bar is also drawn by the selection's own requests, which carry no list state)."""
        url = self.reverse(Role.EXPORT)
        query = self.request.GET.copy()
        query.pop("page", None)
        links = []
        for file_format in self.get_export_formats():
            query[FORMAT_PARAM] = file_format.name
            query[SCOPE_PARAM] = "all"
            selection = urlencode({FORMAT_PARAM: file_format.name, SCOPE_PARAM: "selection"})
            links.append(
                {
                    "label": file_format.label,
                    "all": f"{url}?{query.urlencode()}",
                    "selection": f"{url}?{selection}",
                }
            )
        return links
