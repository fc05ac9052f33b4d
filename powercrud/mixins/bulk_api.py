"""The JSON bulk API: ``POST <url_base>/bulk/api/`` runs a bulk edit, delete, import or undo for a program.

The same view, permissions and run machinery as the bulk modal: values are validated by the
modal's ``BulkEditForm``, the rows are re-scoped through ``get_queryset()``, the run is one
``BulkRequest`` made by ``build_bulk_request()`` (or ``rerun_request()`` for an undo) and runs
in the request (``run_in_request()``, 200 with the result) or on a worker by size
(``should_run_async()``, 202 with the run's URL), recorded on the run ledger like any other.
An import sends its rows inline and takes the import screen's path: the same ``ImportSpec``
and ``BulkRequest`` (``build_import_request()``), ``run_import()`` in the request or
``launch_import()`` by ``import_runs_async()``; the undo of an import is
``ImportMixin.undo_import()``, as on the import screen.

The document::

    {"operation": "update" | "delete" | "import" | "undo",
     "selection": {"ids": [...]} | {"query": "<the list's query string>"},   # update, delete
     "values": {"price": "12.50", "tags": {"op": "add", "ids": [1]}},        # update
     "rows": [{"code": "B1", "title": "..."}, ...],                          # import
     "mode": "create" | "upsert" | "skip", "key": ["code", "language"],      # import
     "natural_keys": {"author": "name"},                                     # import
     "run": 41,                                                              # undo
     "atomic": true, "dry_run": false, "reason": "..."}                      # optional

Who is asking is ``jsonapi.api_user()`` (the host's token hook, else the session under
Django's CSRF rule). Every refusal is JSON naming the field: 400 bad input, 401 nobody signed
in, 403 a missing permission or CSRF token, 404 a run that is not the user's, 405 a method
other than POST, 409 rows held by another run or a run that cannot be undone, 413, 415, 503.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from django.db import OperationalError, models
from django.http import Http404, HttpRequest, HttpResponseBase, JsonResponse, QueryDict
from django.urls import NoReverseMatch, reverse
from django.utils.decorators import classonlymethod
from django.views.decorators.csrf import csrf_exempt

from powercrud.bulk import importstore, messages
from powercrud.bulk.codec import to_json
from powercrud.bulk.forms import TOGGLE_PREFIX
from powercrud.bulk.importing import MODES
from powercrud.bulk.request import BulkRequest
from powercrud.bulk.selection import Selection, SelectionError, clean_pks
from powercrud.bulk.types import BulkInputError, BulkResult, Operation, RowError
from powercrud.bulk.values import M2M_OP_SUFFIX, M2M_OPS, to_field_data
from powercrud.conf import settings as pc_settings
from powercrud.jobs.launch import LaunchError, launch_bulk_task
from powercrud.jobs.locks import LockConflict
from powercrud.jobs.reruns import undo_problem
from powercrud.jsonapi import ApiError, api_user, json_error, read_document
from powercrud.mixins.importing import ImportRefused, launch_import, run_import
from powercrud.mixins.selection import MAX_QUERY_LENGTH, PRESENTATION_PARAMS
from powercrud.models import BulkTask
from powercrud.params import RepeatedParameter, refuse_repeated
from powercrud.preferences import COLUMNS_PARAM
from powercrud.views import Role, database_busy

if TYPE_CHECKING:
    import django_filters

    from powercrud.mixins.bulk import BulkMixin

    class _ListAndSelection(Protocol):
        """What the API uses of ``ListMixin`` and ``SelectionMixin`` beyond ``BulkHost``."""

        def get_filterset_class(self) -> type[django_filters.FilterSet] | None: ...

        def get_selection_id_cap(self) -> int: ...

    class _Importing(Protocol):
        """What the API uses of ``ImportMixin``."""

        import_fields: ClassVar[Sequence[str]]

        def get_import_fields(self) -> list[str]: ...

        def import_enabled(self) -> bool: ...

        def import_keys(self) -> list[tuple[str, str]]: ...

        def import_naturals(self) -> list[dict[str, Any]]: ...

        def may_upsert(self) -> bool: ...

        def import_runs_async(self, rows: int) -> bool: ...

        def find_import_run(self, run_id: str) -> BulkTask | None: ...

        def undo_import(
            self, run: BulkTask, *, reason: str = "", atomic: bool | None = None
        ) -> tuple[BulkTask, BulkRequest, BulkResult]: ...

        def build_import_request(
            self,
            stored: importstore.StoredTable,
            mapping: Sequence[str | None],
            options: dict[str, Any],
            *,
            check: bool,
        ) -> BulkRequest: ...

    class BulkApiHost(BulkMixin, _ListAndSelection, _Importing):
        """``BulkApiMixin`` is mixed into a view with ``BulkMixin``, ``ImportMixin``,
        ``SelectionMixin`` and ``ListMixin``."""

        model: ClassVar[type[models.Model]]

else:
    BulkApiHost = object

logger = logging.getLogger("powercrud.api")

SERVER_FAILED = "The server failed while handling this request; its log has the details."
KEYS = (
    "operation",
    "selection",
    "values",
    "rows",
    "mode",
    "key",
    "natural_keys",
    "run",
    "atomic",
    "dry_run",
    "reason",
)
OPERATIONS = ("update", "delete", "import", "undo")
_IMPORT_ONLY = ("mode", "key", "natural_keys")
API_FILE_NAME = "rows sent to the JSON API"
"""The "file" an import made through the API records on its run."""
# Keys of a list query string that change how the list looks, not which rows match.
_LOOK_PARAMS = (*PRESENTATION_PARAMS, COLUMNS_PARAM)


@dataclasses.dataclass(frozen=True)
class ApiCall:
    """One checked API document."""

    operation: str
    selection: Mapping[str, Any] | None = None
    values: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    rows: Sequence[Any] = ()
    mode: str = "create"
    key: tuple[str, ...] = ()
    natural_keys: Mapping[str, str] = dataclasses.field(default_factory=dict)
    run: int | None = None
    atomic: bool | None = None
    dry_run: bool = False
    reason: str = ""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _require(document: Mapping[str, Any], key: str, check: Callable[[Any], bool], kind: str) -> Any:
    value = document[key]
    if not check(value):
        raise ApiError(f"“{key}” must be {kind}, not {_json_type(value)}.", field=key)
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return {dict: "an object", list: "a list", str: "text", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


def read_call(document: Mapping[str, Any]) -> ApiCall:
    """The document checked key by key: ``ApiError`` (400) naming the first bad key."""
    unknown = [key for key in document if key not in KEYS]
    if unknown:
        raise ApiError(f"Unknown key “{unknown[0]}”; the keys are {', '.join(KEYS)}.", field=unknown[0])
    if "operation" not in document:
        raise ApiError(f"“operation” is missing: one of {', '.join(OPERATIONS)}.", field="operation")
    operation = _require(document, "operation", lambda v: isinstance(v, str), "text")
    if operation not in OPERATIONS:
        raise ApiError(f"Unknown operation “{operation}”; use {', '.join(OPERATIONS)}.", field="operation")
    needs = {
        "update": ("selection", "values"),
        "delete": ("selection",),
        "import": ("rows",),
        "undo": ("run",),
    }[operation]
    for key in ("selection", "values", "rows", "run"):
        if key in needs and key not in document:
            raise ApiError(f"“{key}” is missing: an {operation} needs it.", field=key)
        if key not in needs and key in document:
            raise ApiError(f"“{key}” does not go with operation “{operation}”.", field=key)
    if operation == "undo" and "dry_run" in document:
        raise ApiError("An undo cannot be a check (dry_run); leave dry_run out.", field="dry_run")
    for key in _IMPORT_ONLY:
        if operation != "import" and key in document:
            raise ApiError(f"“{key}” does not go with operation “{operation}”.", field=key)
    selection = values = None
    if "selection" in document:
        selection = _require(document, "selection", lambda v: isinstance(v, dict), "an object")
        if len(selection) != 1 or next(iter(selection)) not in ("ids", "query"):
            keys = ", ".join(selection) or "nothing"
            raise ApiError(
                f"“selection” must hold exactly one of “ids” or “query” (it holds {keys}).",
                field="selection",
            )
    if "values" in document:
        values = _require(document, "values", lambda v: isinstance(v, dict) and bool(v), "a non-empty object")
    run = None
    if "run" in document:
        run = _require(document, "run", lambda v: isinstance(v, int) and not isinstance(v, bool), "a number")
    flags = {
        key: _require(document, key, lambda v: isinstance(v, bool), "true or false")
        for key in ("atomic", "dry_run")
        if key in document
    }
    reason = (
        _require(document, "reason", lambda v: isinstance(v, str), "text") if "reason" in document else ""
    )
    if "\x00" in reason:  # no text column stores it (PostgreSQL refuses it outright)
        raise ApiError("“reason” holds a NUL character (\\u0000); remove it.", field="reason")
    return ApiCall(
        operation=operation,
        selection=selection,
        values=values or {},
        rows=_read_rows(document["rows"]) if "rows" in document else (),
        mode=_read_mode(document),
        key=_read_key(document),
        natural_keys=_read_natural_keys(document),
        run=run,
        atomic=flags.get("atomic"),
        dry_run=flags.get("dry_run", False),
        reason=reason.strip(),
    )


def _read_rows(rows: Any) -> list[dict[str, Any]]:
    """``rows``: a non-empty list of objects with the same keys, each value a JSON scalar or a
    list of them (a many-to-many cell); the keys are checked against the view later."""
    if not isinstance(rows, list) or not rows:
        kind = "an empty list" if rows == [] else _json_type(rows)
        raise ApiError(f"“rows” must be a non-empty list of objects, not {kind}.", field="rows")
    first = rows[0]
    for index, row in enumerate(rows):
        where = f"rows[{index}]"
        if not isinstance(row, dict):
            raise ApiError(
                f"“{where}” must be an object of field names and values, not {_json_type(row)}.", field=where
            )
        if not row:
            raise ApiError(f"“{where}” is empty: give each row the fields it imports.", field=where)
        if isinstance(first, dict) and row.keys() != first.keys():
            differ = sorted(set(row) ^ set(first))[0]
            raise ApiError(
                f"“{where}” and “rows[0]” differ in “{differ}”: every row must have the same keys "
                "(send null for a value a row leaves empty).",
                field=where,
            )
        for name, value in row.items():
            if _is_cell(value) or (isinstance(value, list) and all(_is_cell(v) for v in value)):
                continue
            kind = "a list holding a list or an object" if isinstance(value, list) else _json_type(value)
            raise ApiError(
                f"“{where}.{name}” must be text, a number, true/false, null or a list of them, not {kind}.",
                field=f"{where}.{name}",
            )
    return rows


def _is_cell(value: Any) -> bool:
    return value is None or isinstance(value, str | bool) or _is_number(value)


def _read_mode(document: Mapping[str, Any]) -> str:
    if "mode" not in document:
        return "create"
    mode = _require(document, "mode", lambda v: isinstance(v, str), "text")
    if mode not in MODES:
        raise ApiError(f"Unknown import mode “{mode}”; use {', '.join(MODES)}.", field="mode")
    return str(mode)


def _read_key(document: Mapping[str, Any]) -> tuple[str, ...]:
    if "key" not in document:
        return ()
    key = document["key"]
    if isinstance(key, str):
        key = [key]
    if not isinstance(key, list) or not key or not all(isinstance(name, str) for name in key):
        raise ApiError("“key” must be a field name or a non-empty list of field names.", field="key")
    return tuple(key)


def _read_natural_keys(document: Mapping[str, Any]) -> dict[str, str]:
    if "natural_keys" not in document:
        return {}
    naturals = _require(document, "natural_keys", lambda v: isinstance(v, dict), "an object")
    for name, value in naturals.items():
        if not isinstance(value, str):
            raise ApiError(
                f"“natural_keys.{name}” must be the name of a field of the related model.",
                field=f"natural_keys.{name}",
            )
    return dict(naturals)


def _run_url(run_id: int) -> str | None:
    """The run's JSON (``tasks/<pk>/run.json``), None without the task dashboard's URLs."""
    try:
        return reverse("powercrud:tasks-run-json", kwargs={"pk": run_id})
    except NoReverseMatch:
        return None


class BulkApiMixin(BulkApiHost):
    """The ``BULK_API`` role (``<url_base>/bulk/api/``), on whenever the view has bulk roles;
    ``bulk_api = False`` turns it off."""

    bulk_api: ClassVar[bool] = True

    @classmethod
    def has_bulk_role(cls, role: Role) -> bool:
        if role is Role.BULK_API:
            return bool(cls.bulk_api) and bool(cls.bulk_fields or cls.bulk_delete or cls.import_fields)
        found: bool = super().has_bulk_role(role)
        return found

    @classonlymethod
    def as_view(cls, role: Role | None = None, **initkwargs: Any) -> Callable[..., HttpResponseBase]:
        view = super().as_view(role=role, **initkwargs)
        if role is Role.BULK_API:
            # The API checks CSRF itself (jsonapi.api_user), so that a refusal is JSON and a
            # request signed by the host's token hook, which carries no cookie, is not refused.
            view = csrf_exempt(view)
        return view

    def has_role_permission(self, role: Role) -> bool:
        """``BULK_API``: whichever bulk role the operation asks for (checked per call); here, any."""
        if role is Role.BULK_API and not (self.role_permissions and role.value in self.role_permissions):
            return any(self.may_run(role) for role in (Role.BULK_EDIT, Role.BULK_DELETE, Role.IMPORT))
        allowed: bool = super().has_role_permission(role)
        return allowed

    def may_run(self, role: Role) -> bool:
        """Whether the view offers bulk ``role`` (or ``IMPORT``) and the user holds its permissions."""
        return role in self.get_roles() and self.has_role_permission(role)

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if self.role is not Role.BULK_API:
            response: HttpResponseBase = super().dispatch(request, *args, **kwargs)
            return response
        try:
            if request.method != "POST":
                response = json_error(f"Use POST to run a bulk operation, not {request.method}.", status=405)
                response["Allow"] = "POST"
                return response
            api_user(request)  # 401, or 403 without a CSRF token
            if not self.has_role_permission(Role.BULK_API):
                raise ApiError("You do not have permission to change these rows in bulk.", status=403)
            return self.process_bulk_api(request)
        except ApiError as exc:
            return exc.response()
        except OperationalError as exc:
            if not database_busy(exc):
                logger.exception("The bulk API failed on %s", request.path)
                return json_error(SERVER_FAILED, status=500)
            return json_error(
                "The database is busy with another change, so nothing was saved. Try again in a moment.",
                status=503,
            )
        except Exception:  # a defect, not the caller's input: logged, and still JSON
            logger.exception("The bulk API failed on %s", request.path)
            return json_error(SERVER_FAILED, status=500)

    # ----- the handler ------------------------------------------------------------------------
    def process_bulk_api(self, request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        """Read the document, check the permission its operation needs, and run it."""
        call = read_call(read_document(request))
        if call.operation == "undo":
            return self.api_undo(call)
        if call.operation == "import":
            return self.api_import(call)
        operation: Operation = "update" if call.operation == "update" else "delete"
        self.api_permission(Role.BULK_EDIT if operation == "update" else Role.BULK_DELETE, operation)
        assert call.selection is not None
        queryset, size, not_found = self.api_selection(call.selection)
        if size == 0:
            raise ApiError("The selection matches no rows that you may change here.", field="selection")
        try:
            if operation == "update":
                fields, field_data = self.api_values(call.values)
                bulk_request = self.build_bulk_request(
                    "update",
                    fields_to_update=fields,
                    field_data=field_data,
                    dry_run=call.dry_run,
                    reason=call.reason,
                )
            else:
                bulk_request = self.build_bulk_request("delete", dry_run=call.dry_run, reason=call.reason)
            if call.atomic is not None:
                bulk_request = dataclasses.replace(bulk_request, atomic=call.atomic)
        except BulkInputError as exc:
            raise _input_error(exc) from None
        return self.api_run(bulk_request, queryset, size, not_found=not_found)

    def api_permission(self, role: Role, operation: str) -> None:
        """``ApiError``: 400 when the view offers no such bulk operation, 403 without its permission."""
        if role not in self.get_roles():
            hint = " (its import_fields are not set)" if role is Role.IMPORT else ""
            raise ApiError(f"This view offers no bulk {operation}{hint}.", field="operation")
        if not self.has_role_permission(role):
            raise ApiError(f"You do not have permission to {operation} these rows in bulk.", status=403)

    def api_selection(
        self, selection: Mapping[str, Any]
    ) -> tuple[models.QuerySet[Any], int, list[str] | None]:
        """The rows ``selection`` names, re-scoped through ``get_queryset()``, and how many; for
        ids, also the ids that name no such row (deleted, or outside what this view shows)."""
        if "ids" in selection:
            ids = selection["ids"]
            if not isinstance(ids, list) or not ids:
                raise ApiError("“selection.ids” must be a non-empty list of ids.", field="selection.ids")
            if not all(isinstance(pk, str) or _is_number(pk) for pk in ids):
                raise ApiError("“selection.ids” must hold ids (text or numbers).", field="selection.ids")
            try:
                pks = clean_pks(self.model, [str(pk) for pk in ids], cap=self.get_selection_id_cap())
            except SelectionError as exc:
                raise ApiError(str(exc), field="selection.ids") from None
            queryset = self.get_selection_queryset(Selection(mode="ids", ids=tuple(pks)))
            found = {str(pk) for pk in queryset.values_list("pk", flat=True)}
            return queryset, len(found), [pk for pk in pks if pk not in found]
        query = selection["query"]
        if not isinstance(query, str):
            raise ApiError(
                "“selection.query” must be text: the list's query string.", field="selection.query"
            )
        queryset = self.get_selection_queryset(self.api_query(query))
        # As the modal: exact below the worker threshold, else that bound (the worker counts).
        return queryset, self.selection_size(queryset), None

    def api_query(self, query: str) -> Selection:
        """``query`` (the list's query string) as a "select all matching" selection. Refused
        (400): a key the list does not read (a misspelt filter would otherwise match every row),
        a one-value key sent twice, a filter value the filter refuses."""
        query = query.removeprefix("?")
        if len(query) > MAX_QUERY_LENGTH:
            raise ApiError(
                f"“selection.query” is too long (at most {MAX_QUERY_LENGTH} characters).",
                field="selection.query",
            )
        params = QueryDict(query)
        filterset_class = self.get_filterset_class()
        form = (
            filterset_class(params, queryset=self.get_queryset(), request=self.request).form
            if filterset_class is not None
            else None
        )
        single_names = [pc_settings.SEARCH_PARAM, pc_settings.SORT_PARAM, pc_settings.PAGE_SIZE_PARAM]
        known = {*single_names, *_LOOK_PARAMS}
        for name, field in form.fields.items() if form is not None else ():
            widget = field.widget
            names = [name]
            if hasattr(widget, "suffixes"):  # django-filter's range and lookup widgets
                names = [f"{name}_{suffix}" if suffix else name for suffix in widget.suffixes]
            elif hasattr(widget, "widgets_names"):
                names = [name + suffix for suffix in widget.widgets_names]
            known.update(names)
            if not getattr(widget, "allow_multiple_selected", False):
                single_names.extend(names)
        unknown = sorted(set(params) - known)
        if unknown:
            raise ApiError(
                f"The list does not filter by “{unknown[0]}”; it reads "
                f"{', '.join(sorted(known - set(_LOOK_PARAMS)))}.",
                field="selection.query",
            )
        try:
            refuse_repeated(params, single_names)
        except RepeatedParameter as exc:
            raise ApiError(
                f"“{exc.name}” is in the query string more than once, but it takes one value.",
                field="selection.query",
            ) from None
        if form is not None and not form.is_valid():
            errors = {name: [str(m) for m in messages_] for name, messages_ in form.errors.items()}
            name = next(iter(errors))
            raise ApiError(
                f"The filter “{name}” refuses its value: {' '.join(errors[name])}",
                field="selection.query",
                errors=errors,
            )
        matching = params.copy()
        for name in _LOOK_PARAMS:
            matching.pop(name, None)
        return Selection(mode="all", query=matching.urlencode())

    def api_values(self, values: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
        """``values`` validated by the modal's ``BulkEditForm``: the fields and their ``field_data``."""
        allowed = self.get_bulk_fields()
        data = QueryDict(mutable=True)
        for name, value in values.items():
            where = f"values.{name}"
            if name not in allowed:
                raise ApiError(
                    f"“{name}” cannot be changed in bulk here. Allowed fields: {', '.join(allowed)}.",
                    field=where,
                )
            data[TOGGLE_PREFIX + name] = "on"
            model_field = self.model._meta.get_field(name)
            if model_field.many_to_many:
                if not isinstance(value, dict) or set(value) != {"op", "ids"}:
                    raise ApiError(
                        f'“{where}” must be {{"op": "add" | "remove" | "replace", "ids": [...]}}.',
                        field=where,
                    )
                if value["op"] not in M2M_OPS:
                    raise ApiError(f"“{where}.op” must be one of {', '.join(M2M_OPS)}.", field=where)
                ids = value["ids"]
                if not isinstance(ids, list) or not all(isinstance(i, str) or _is_number(i) for i in ids):
                    raise ApiError(f"“{where}.ids” must be a list of ids.", field=where)
                data.setlist(name, [str(i) for i in ids])
                data[name + M2M_OP_SUFFIX] = value["op"]
            elif isinstance(model_field, models.BooleanField):
                if value not in (True, False, None) or _is_number(value):
                    raise ApiError(f"“{where}” must be true or false, not {_json_type(value)}.", field=where)
                data[name] = {True: "true", False: "false", None: ""}[value]
            else:
                if not (value is None or isinstance(value, str) or _is_number(value)):
                    raise ApiError(
                        f"“{where}” must be text, a number or null, not {_json_type(value)}.", field=where
                    )
                data[name] = "" if value is None else str(value)
        form = self.get_bulk_form(data)
        if not form.is_valid():
            errors = {
                "values" if name == "__all__" else f"values.{name.removesuffix(M2M_OP_SUFFIX)}": [
                    str(m) for m in found
                ]
                for name, found in form.errors.items()
            }
            first = next(iter(errors))
            raise ApiError(f"“{first}”: {' '.join(errors[first])}", field=first, errors=errors)
        fields = form.selected_fields()
        return fields, to_field_data(self.model, fields, form.cleaned_data)

    # ----- import ----------------------------------------------------------------------------
    def api_import(self, call: ApiCall) -> JsonResponse:
        """Import ``call.rows`` as the import screen's apply does: the same ``BulkRequest``
        (``build_import_request()``), checks and permissions (``add``; ``change`` too for an
        upsert), scope (``get_queryset()``), in the request below the async threshold
        (``run_import()``, 200) and on a worker above it (``launch_import()``, 202). A check
        (``dry_run``) always runs in the request, as the screen's does."""
        self.api_permission(Role.IMPORT, "import")
        if call.mode == "upsert" and not self.may_upsert():
            raise ApiError(
                f"An upsert changes existing {self.model._meta.verbose_name_plural}, which you may not do.",
                status=403,
                field="mode",
            )
        limit = int(pc_settings.IMPORT_MAX_BYTES)
        if len(self.request.body) > limit:
            raise ApiError(
                f"The import is larger than the server accepts ({limit} bytes, IMPORT_MAX_BYTES); "
                "send the rows in several calls.",
                status=413,
                field="rows",
            )
        allowed = self.get_import_fields()
        headers = tuple(call.rows[0])
        for name in headers:
            if name not in allowed:
                raise ApiError(
                    f"“{name}” cannot be imported here. Import fields: {', '.join(allowed)}.",
                    field=f"rows[0].{name}",
                )
        self.api_import_options(call, headers)
        stored = importstore.StoredTable(
            token="",
            name=API_FILE_NAME,
            headers=headers,
            rows=tuple((index, tuple(row[name] for name in headers)) for index, row in enumerate(call.rows)),
        )
        options = {
            "mode": call.mode,
            "key": call.key,
            "natural_keys": dict(call.natural_keys),
            "reason": call.reason,
        }
        try:
            bulk_request = self.build_import_request(stored, list(headers), options, check=call.dry_run)
            if call.atomic is not None:
                bulk_request = dataclasses.replace(bulk_request, atomic=call.atomic)
            bulk_request.import_spec.check(self.model, allowed)
        except BulkInputError as exc:
            raise _import_input_error(exc, call) from None
        scope = self.get_queryset()
        try:
            if not call.dry_run and self.import_runs_async(len(call.rows)):
                task = launch_import(bulk_request, scope=scope, user=self.request.user)
                return self.api_queued(task, operation="import", not_found=None)
            run, result = run_import(bulk_request, scope=scope, user=self.request.user)
        except BulkInputError as exc:
            raise _import_input_error(exc, call) from None
        except LockConflict as exc:
            raise ApiError(str(exc), status=409) from None
        except LaunchError as exc:
            raise ApiError(exc.message, status=503) from None
        return self.api_result(run, bulk_request, result, operation="import", not_found=None)

    def api_import_options(self, call: ApiCall, headers: Sequence[str]) -> None:
        """``key`` and ``natural_keys`` checked against what the import screen offers this view."""
        if call.mode == "create" and call.key:
            raise ApiError("A create import takes no key: every row is new. Leave “key” out.", field="key")
        if call.mode != "create":
            offered = dict(self.import_keys())
            if ",".join(call.key) not in offered:
                choices = "; ".join(f"[{', '.join(map(repr, k.split(',')))}]" for k in offered) or "none"
                raise ApiError(
                    f"An {call.mode} import needs “key”: a unique field or unique-together set this view "
                    f"imports (here: {choices}).",
                    field="key",
                )
            missing = [name for name in call.key if name not in headers]
            if missing:
                raise ApiError(f"The key field “{missing[0]}” is not in the rows.", field="key")
        naturals = {item["name"]: item for item in self.import_naturals()}
        for name, natural in call.natural_keys.items():
            where = f"natural_keys.{name}"
            if name not in naturals or name not in headers:
                raise ApiError(f"“{name}” is not a relation these rows import.", field=where)
            options = [option for option, _ in naturals[name]["options"] if option]
            if natural not in options:
                raise ApiError(
                    f"“{natural}” cannot find a {naturals[name]['label'].lower()}; "
                    f"use one of {', '.join(options) or 'none'} (or leave it out for the primary key).",
                    field=where,
                )

    def api_undo(self, call: ApiCall) -> JsonResponse:
        """Undo run ``call.run``: 404 unless it is the user's (any, for staff) and of this model;
        the permission of the bulk operation it made; 409 when it cannot be undone."""
        run = self.api_source_run(call.run)
        if run.kind == BulkTask.Kind.IMPORT:
            return self.api_undo_import(run, call)
        kind = "update" if run.kind == BulkTask.Kind.UPDATE else "delete"
        self.api_permission(Role.BULK_EDIT if kind == "update" else Role.BULK_DELETE, f"undo a bulk {kind}")
        problem = undo_problem(run)
        if problem:
            raise ApiError(problem, status=409, field="run")
        queryset, keys, size = self.undo_rows(run)
        if size == 0:
            raise ApiError(messages.nothing_to_undo(run.pk), status=409, field="run")
        try:
            undo = self.rerun_request(run, "undo", reason=call.reason or f"Undo of run #{run.pk}")
            if call.atomic is not None:
                undo = dataclasses.replace(undo, atomic=call.atomic)
        except BulkInputError as exc:
            raise _input_error(exc) from None
        return self.api_run(undo, queryset, size, keys=keys, operation="undo")

    def api_undo_import(self, run: BulkTask, call: ApiCall) -> JsonResponse:
        """Undo an import as its run's page does (``ImportMixin.undo_import()``, in the
        request), with the import's permission besides."""
        self.api_permission(Role.IMPORT, "undo an import")
        try:
            done, undo, result = self.undo_import(run, reason=call.reason, atomic=call.atomic)
        except ImportRefused as exc:
            raise ApiError(exc.message, status=exc.status, field="run") from None
        return self.api_result(done, undo, result, operation="undo", not_found=None)

    def api_source_run(self, run_id: int | None) -> BulkTask:
        for kind in ("update", "delete"):
            try:
                return self.get_source_run(str(run_id), kind)
            except Http404:
                continue
        if run_id is None or not 0 < run_id < 2**63:
            raise ApiError(f"No bulk run #{run_id} of yours on this screen.", status=404, field="run")
        found = self.find_import_run(str(run_id))
        if found is not None and self.import_enabled():
            return found
        raise ApiError(f"No bulk run #{run_id} of yours on this screen.", status=404, field="run")

    # ----- running and answering --------------------------------------------------------------
    def api_run(
        self,
        bulk_request: BulkRequest,
        queryset: models.QuerySet[Any],
        size: int,
        *,
        keys: models.QuerySet[Any] | None = None,
        not_found: Sequence[str] | None = None,
        operation: str | None = None,
    ) -> JsonResponse:
        """Run ``bulk_request`` in the request (200 with the result) or on a worker (202)."""
        operation = operation or bulk_request.operation
        try:
            if self.should_run_async(size):
                # Chunked as the modal's runs are; an undo (as on the screens) is one job.
                chunks = None if bulk_request.source_action == "undo" else self.get_bulk_chunk_size()
                task = launch_bulk_task(
                    bulk_request, queryset, user=self.request.user, keys=keys, chunk_size=chunks
                )
                return self.api_queued(task, operation=operation, not_found=not_found)
            result = self.run_in_request(bulk_request, queryset, size)
        except BulkInputError as exc:
            raise _input_error(exc) from None
        except LockConflict as exc:
            raise ApiError(str(exc), status=409) from None
        except LaunchError as exc:
            raise ApiError(exc.message, status=503) from None
        assert self.bulk_run is not None
        return self.api_result(self.bulk_run, bulk_request, result, operation=operation, not_found=not_found)

    def api_queued(self, task: BulkTask, *, operation: str, not_found: Sequence[str] | None) -> JsonResponse:
        """202: the run went to a worker; ``Location`` is its JSON, to poll (its ``total`` is
        the rows the worker locked)."""
        url = _run_url(task.pk)
        body: dict[str, Any] = {
            "run": task.pk,
            "url": url,
            "status": task.status,
            "operation": operation,
        }
        if not_found is not None:
            body["not_found"] = list(not_found)
        response = JsonResponse(to_json(body), status=202)
        if url:
            response["Location"] = url
        return response

    def api_result(
        self,
        run: BulkTask,
        bulk_request: BulkRequest,
        result: BulkResult,
        *,
        operation: str,
        not_found: Sequence[str] | None,
    ) -> JsonResponse:
        """200: what the run did, with its counts, its row errors and the run's URL."""
        body: dict[str, Any] = {
            "run": run.pk,
            "url": _run_url(run.pk),
            "status": run.status,
            "operation": operation,
            "dry_run": bulk_request.dry_run,
            "atomic": bulk_request.atomic,
            "success": result.success,
            "message": result.message,
            "counts": {
                "selected": run.total,
                "succeeded": result.success_records,
                "changed": result.changed,
                "failed": result.failed_records,
            },
            "outcomes": dict(run.row_counts) if isinstance(run.row_counts, Mapping) else {},
            "errors": [error.to_dict() for error in result.errors],
            "errors_complete": result.errors_listed >= result.failed_records,
        }
        if operation == "import":
            body["errors"] = [_with_row(error) for error in result.errors]
            outcomes = body["outcomes"]
            body["counts"].update(
                {name: int(outcomes.get(outcome, 0)) for name, outcome in IMPORT_COUNTS.items()}
            )
        if bulk_request.dry_run:
            body["examples"] = [change.to_dict() for change in result.examples]
        if not_found is not None:
            body["not_found"] = list(not_found)
        return JsonResponse(to_json(body))


IMPORT_COUNTS = {
    "new": "created",
    "updated": "changed",
    "unchanged": "unchanged",
    "skipped": "skipped",
    "failed": "failed",
}
"""An import's counts in the answer, from the run ledger's outcomes."""


def _with_row(error: RowError) -> dict[str, Any]:
    """An import's row error with ``row``: the row's index in ``rows`` (its line)."""
    data = error.to_dict()
    data["row"] = next(
        (line for text in error.messages if (line := messages.import_line_of(text)) is not None), None
    )
    return data


def _import_input_error(exc: BulkInputError, call: ApiCall) -> ApiError:
    """A ``BulkInputError`` of an import's settings as a 400 naming the key it came from."""
    if exc.field in ("key", "mode", "reason"):
        return ApiError(exc.message, field=exc.field)
    if exc.field in call.natural_keys:
        return ApiError(exc.message, field=f"natural_keys.{exc.field}")
    return ApiError(exc.message, field="rows" if exc.field is None else f"rows[0].{exc.field}")


def _input_error(exc: BulkInputError) -> ApiError:
    """A ``BulkInputError`` as a 400 naming its field (``reason``, or ``values.<field>``)."""
    if exc.field == "reason":
        return ApiError(exc.message, field="reason")
    return ApiError(exc.message, field=f"values.{exc.field}" if exc.field else "values")
