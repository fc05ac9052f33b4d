"""The persistent multi-page selection: stored per user (session) and per view."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, QueryDict
from django.template.response import TemplateResponse
from django.utils.html import escape
from django_htmx.http import reswap, retarget, trigger_client_event

from powercrud.bulk.selection import Selection, SelectionError, clean_pks, clean_selection
from powercrud.conf import settings as pc_settings
from powercrud.mixins.contracts import SelectionHost
from powercrud.params import RepeatedParameter, single
from powercrud.views import Role, htmx_details

# Query-string keys that change how a list looks, not which rows match.
PRESENTATION_PARAMS = ("page",)
MAX_QUERY_LENGTH = 4096


def _same_rows_shape(found: models.QuerySet[Any], base: models.QuerySet[Any]) -> bool:
    """True when ``found`` (``base`` filtered) joins no table ``base`` does not and adds no
    annotation or ``distinct()``: each of its rows is one row of ``base``, no duplicates."""
    query, start = found.query, base.query
    table = {found.model._meta.db_table}  # the base table's alias exists once a filter is added
    return (
        set(query.alias_map) | table == set(start.alias_map) | table
        and query.annotations.keys() == start.annotations.keys()
        and query.distinct == start.distinct
        and not query.is_sliced
        and not query.combinator
    )


class SelectionMixin(SelectionHost):
    """Row, page and range selection that survives paging, sorting and filtering.

    Contract: ``SelectionHost`` (``mixins/contracts.py``): ``CRUDView`` plus ``ListFeatures``.
    """

    selection_id_cap: ClassVar[int | None] = None

    def get_selection_id_cap(self) -> int:
        return self.selection_id_cap or pc_settings.SELECTION_ID_CAP

    def get_selection_key(self) -> str:
        return f"powercrud:selection:{self.model._meta.label_lower}:{self.get_url_base()}"

    def get_selection(self) -> Selection:
        """The current user's selection for this view (empty when none).

        What the session holds is checked before any query uses it: more ids than the cap, or
        an id that is not a key of the model (a stale or tampered session), gives an empty
        selection. The check runs once per stored value and request.
        """
        raw = self.request.session.get(self.get_selection_key())
        cached: tuple[object, Selection] | None = self.__dict__.get("_checked_selection")
        if cached is not None and cached[0] is raw:
            return cached[1]
        try:
            selection = clean_selection(self.model, Selection.from_dict(raw), cap=self.get_selection_id_cap())
        except SelectionError:
            selection = Selection()
        self._checked_selection = (raw, selection)
        return selection

    def save_selection(self, selection: Selection) -> None:
        """Store ``selection``. Clearing a selection keeps a copy of it, which the ``restore``
        action puts back (the "Reselect" of the toast after a bulk run)."""
        key = self.get_selection_key()
        if selection.is_empty:
            previous = self.request.session.pop(key, None)
            if previous:
                self.request.session[f"{key}:previous"] = previous
        else:
            self.request.session[key] = selection.to_dict()

    def queryset_for_query(self, query: str) -> models.QuerySet[Any]:
        """Rows of ``get_queryset()`` matching a stored list query string (filters + search)."""
        params = QueryDict(query)
        queryset = self.get_queryset()
        filterset_class = self.get_filterset_class()
        if filterset_class is not None:
            queryset = filterset_class(params, queryset=queryset, request=self.request).qs
        search = params.get(pc_settings.SEARCH_PARAM, "").strip()[:200]
        return self.apply_search(queryset, search)

    def get_selection_queryset(self, selection: Selection | None = None) -> models.QuerySet[Any]:
        """The selected rows, always re-scoped through ``get_queryset()``."""
        selection = selection or self.get_selection()
        base = self.get_queryset()
        if selection.mode == "ids":
            return base.filter(pk__in=list(selection.ids)) if selection.ids else base.none()
        found = self.queryset_for_query(selection.query)
        if not selection.included and _same_rows_shape(found, base):
            # Filters and search on the row's own columns: the rows themselves, not
            # ``pk IN (subquery)``, which every statement of a bulk run would evaluate again.
            return found.exclude(pk__in=list(selection.excluded)) if selection.excluded else found
        matching = Q(pk__in=found.values("pk"))
        if selection.excluded:
            matching &= ~Q(pk__in=list(selection.excluded))
        if selection.included:
            matching |= Q(pk__in=list(selection.included))
        return base.filter(matching)

    def selected_pks_among(self, pks: list[Any]) -> set[str]:
        """Which of ``pks`` (one page of rows) are selected; one query at most."""
        selection = self.get_selection()
        if selection.mode == "ids":
            chosen = set(selection.ids)
            return {str(pk) for pk in pks if str(pk) in chosen}
        if not pks:
            return set()
        found = self.get_selection_queryset(selection).filter(pk__in=pks).values_list("pk", flat=True)
        return {str(pk) for pk in found}

    # ----- the SELECTION role --------------------------------------------------------
    def selection_state(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self.render_selection_bar()

    def update_selection(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """POST ``action``: ``set`` (``pk`` list + ``checked``), ``all`` (``query``), ``clear``,
        ``restore`` (the selection a bulk run cleared, see ``clear_selection_after_run()``)."""
        selection = self.get_selection()
        try:
            action, checked, query = (single(request.POST, name) for name in ("action", "checked", "query"))
            if action == "set":
                pks = clean_pks(self.model, request.POST.getlist("pk"), cap=self.get_selection_id_cap())
                updated = selection.with_ids(pks, checked=checked == "1")
                if updated.explicit_id_count() > self.get_selection_id_cap():
                    raise SelectionError(
                        f"A selection may hold at most {self.get_selection_id_cap():,} "
                        "individually chosen rows. Use “select all matching” instead."
                    )
                selection = updated
            elif action == "all":
                if len(query) > MAX_QUERY_LENGTH:
                    raise SelectionError("The filter is too long to store.")
                params = QueryDict(query, mutable=True)
                for key in PRESENTATION_PARAMS:
                    params.pop(key, None)
                selection = Selection(mode="all", query=params.urlencode())
            elif action == "clear":
                selection = Selection()
            elif action == "restore":
                previous = self.request.session.pop(f"{self.get_selection_key()}:previous", None)
                if previous is None:
                    raise SelectionError("There is no earlier selection to restore.")
                selection = clean_selection(
                    self.model, Selection.from_dict(previous), cap=self.get_selection_id_cap()
                )
            else:
                raise SelectionError("Unknown selection action; use set, all, clear or restore.")
        except (SelectionError, RepeatedParameter) as exc:
            return self.selection_error_response(str(exc))
        self.save_selection(selection)
        response = self.render_selection_bar()
        if action in ("all", "clear", "restore"):
            response = trigger_client_event(response, "pcSelectionReset")
        return response

    def selection_error_response(self, message: str) -> HttpResponse:
        """A 400 whose body is the escaped ``message``, rendered without any query.

        HTMX requests put it in the bar's error slot instead of replacing the bar (which
        would drop the element every later selection request targets).
        """
        response = HttpResponseBadRequest(escape(message))
        if htmx_details(self.request):
            response = reswap(retarget(response, "#pc-selection-error"), "innerHTML")
        return response

    def render_selection_bar(self) -> HttpResponse:
        context = self.get_context_data(**self.get_selection_context())
        return TemplateResponse(self.request, "powercrud/partials/selection_bar.html", context)

    # ----- list integration ------------------------------------------------------------
    def bulk_enabled(self) -> bool:
        """Whether the list shows row checkboxes and the selection bar: the view has bulk
        roles and the user may use one of them (a viewer gets a plain list)."""
        if Role.SELECTION not in self.get_roles():
            return False
        can = self.get_permission_flags()
        return bool(can[Role.BULK_EDIT.value] or can[Role.BULK_DELETE.value])

    def build_rows(self, objects: Any, columns: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = super().build_rows(objects, columns)
        if self.bulk_enabled():
            chosen = self.selected_pks_among([row["pk"] for row in rows])
            for row in rows:
                row["selected"] = str(row["pk"]) in chosen
        return rows

    def get_list_context(self) -> dict[str, Any]:
        context: dict[str, Any] = super().get_list_context()
        if self.bulk_enabled():
            context.update(self.get_selection_context())
            context["bulk_enabled"] = True
        return context

    def get_selection_context(self) -> dict[str, Any]:
        selection = self.get_selection()
        count = 0 if selection.is_empty else self.get_selection_queryset(selection).count()
        can = self.get_permission_flags()
        return {
            "selection": selection,
            "selection_count": count,
            "selection_url": self.reverse(Role.SELECTION),
            "bulk_edit_url": self.reverse(Role.BULK_EDIT) if can[Role.BULK_EDIT.value] else None,
            "bulk_delete_url": self.reverse(Role.BULK_DELETE) if can[Role.BULK_DELETE.value] else None,
        }
