"""The column chooser and saved views of a list, stored per user and per view in the database,
and the user's display settings (row density, theme), stored per user.

One query per list request reads the user's ``ViewPreference`` rows for the view: their
column choice, their saved views and their display settings together (the display settings
are then kept on the request for the page's templates, see ``powercrud.display``). The
``PREFERENCES`` role (``preferences/``) takes the chooser's, the saved-views menu's and the
display settings' forms; every answer goes back to the list (an htmx ``HX-Location`` into
``#pc-content``, or a redirect without JavaScript), but a display setting's, which htmx
gets as a bare 204 (the page has applied it already).

Which columns a list shows, first match wins: a shared link's ``?columns=a,b``; the columns
of the user's saved view named by ``?view=<id>``; the user's stored choice; the view's own.
"""

from __future__ import annotations

import builtins
import json
from typing import Any, ClassVar
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from powercrud import columns as cols
from powercrud import display as pc_display
from powercrud import preferences as prefs
from powercrud.mixins.contracts import ListHost
from powercrud.models import ViewPreference
from powercrud.params import RepeatedParameter, single
from powercrud.views import Role, htmx_details, refusal

SAVED = ViewPreference.Kind.SAVED
COLUMNS = ViewPreference.Kind.COLUMNS
DISPLAY = ViewPreference.Kind.DISPLAY


class PreferenceError(Exception):
    """A chooser or saved-view form the server refuses (400), with the sentence to show."""


class ViewPreferencesMixin(ListHost):
    """Column chooser, saved views and stored display settings on ``CRUDView``'s list role.

    ``column_chooser`` and ``allow_saved_views`` turn the two menus on (both on by default);
    ``saved_views`` are the view's own named states, offered to every user:
    ``saved_views = [("Drafts", "?status=draft&sort=-price")]``. ``remember_display`` (on by
    default) stores a signed-in user's row density and theme in the database; off, the view
    keeps them in the browser's cookies, as for anonymous users.
    """

    column_chooser: ClassVar[bool] = True
    allow_saved_views: ClassVar[bool] = True
    saved_views: ClassVar[Any] = ()
    remember_display: ClassVar[bool] = True

    @classmethod
    def has_list_feature_role(cls, role: Role) -> bool:
        if role is Role.PREFERENCES:
            return bool(cls.column_chooser or cls.allow_saved_views or cls.remember_display)
        result: bool = super().has_list_feature_role(role)
        return result

    def get_role_permissions(self, role: Role) -> builtins.list[str]:
        """Saving one's own columns and views needs only what the list needs."""
        if role is Role.PREFERENCES:
            return self.get_role_permissions(Role.LIST)
        permissions: builtins.list[str] = super().get_role_permissions(role)
        return permissions

    # ----- reading -----------------------------------------------------------------------
    def get_preferences_key(self) -> str:
        """Which list a preference belongs to: ``<app.model>:<url base>``."""
        return f"{self.model._meta.label_lower}:{self.get_url_base()}"

    def preference_user_id(self) -> Any:
        return self.request.user.pk

    def preferences_enabled(self) -> bool:
        return Role.PREFERENCES in self.get_roles() and bool(self.request.user.is_authenticated)

    def remembers_display(self) -> bool:
        """Whether a signed-in user's display settings are stored (and read) for this view."""
        return bool(self.remember_display) and Role.PREFERENCES in self.get_roles()

    def get_user_preferences(self) -> builtins.list[ViewPreference]:
        """The user's column choice and saved views for this view: one query, once a request.

        The same query reads the user's display settings, which it keeps on the request for
        the page's templates (``powercrud.display``) rather than in this list.
        """
        if not hasattr(self, "_user_preferences"):
            if self.preferences_enabled():
                keys = [self.get_preferences_key()]
                if self.remembers_display():
                    keys.append(ViewPreference.DISPLAY_KEY)
                rows = list(
                    ViewPreference.objects.filter(
                        user_id=self.preference_user_id(), view_key__in=keys
                    ).order_by("kind", "name", "pk")
                )
                stored = next((p.display for p in rows if p.kind == DISPLAY), None)
                pc_display.keep_display(self.request, stored if self.remembers_display() else None)
                self._user_preferences = [p for p in rows if p.kind != DISPLAY]
            else:
                self._user_preferences = []
        return self._user_preferences

    def get_own_saved_views(self) -> builtins.list[ViewPreference]:
        if not self.allow_saved_views:
            return []
        return [p for p in self.get_user_preferences() if p.kind == SAVED]

    def get_stored_columns(self) -> ViewPreference | None:
        if not self.column_chooser:
            return None
        return next((p for p in self.get_user_preferences() if p.kind == COLUMNS), None)

    def get_active_saved_view(self) -> ViewPreference | None:
        """The user's saved view named by ``?view=<id>``; ``LookupError`` when it is not theirs."""
        raw = self.request.GET.get(prefs.SAVED_VIEW_PARAM)
        if raw is None:
            return None
        found = next((p for p in self.get_own_saved_views() if str(p.pk) == raw.strip()), None)
        if found is None:
            raise LookupError(raw)
        return found

    def get_all_columns(self) -> builtins.list[cols.Column]:
        """Every column the view offers (``fields`` then ``properties``), built once a request
        (the sort, the headers and the rows each ask)."""
        if not hasattr(self, "_all_columns"):
            self._all_columns: builtins.list[cols.Column] = super().get_columns()
        return list(self._all_columns)

    def get_column_choice(self) -> tuple[builtins.list[str], str]:
        """The column names to show (empty: the view's own) and where they come from."""
        available = [c.name for c in self.get_all_columns()]
        linked = self.request.GET.get(prefs.COLUMNS_PARAM)
        if linked:
            chosen = prefs.choose_columns(available, prefs.parse_columns_param(linked))
            if chosen:
                return chosen, "link"
        try:
            saved = self.get_active_saved_view()
        except LookupError:
            saved = None
        if saved is not None:
            chosen = prefs.choose_columns(available, saved.columns)
            if chosen:
                return chosen, "saved"
        stored = self.get_stored_columns()
        if stored is not None:
            chosen = prefs.choose_columns(available, stored.columns)
            if chosen:
                return chosen, "yours"
        return [], "default"

    def get_columns(self) -> builtins.list[cols.Column]:
        """On the list (and its inline rows), the chosen columns in the chosen order."""
        columns = self.get_all_columns()
        if self.role not in (Role.LIST, Role.INLINE, Role.EXPORT) or not self.preferences_enabled():
            return columns
        if not hasattr(self, "_chosen_columns"):
            chosen, _ = self.get_column_choice()
            by_name = {c.name: c for c in columns}
            self._chosen_columns = [by_name[n] for n in chosen] if chosen else columns
        return list(self._chosen_columns)

    # ----- the list --------------------------------------------------------------------
    def list(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            self.get_active_saved_view()
        except LookupError:
            return self.render_page(
                {
                    "title": "Saved view not found",
                    "message": "That saved view does not exist, or it is not yours. "
                    "Ask its owner for a share link instead.",
                },
                templates=["powercrud/denied.html"],
                status=404,
            )
        response: HttpResponse = super().list(request, *args, **kwargs)
        return response

    def list_url_for(self, state: str, **extra: str) -> str:
        query = state
        if extra:
            query = "&".join(p for p in (state, urlencode(extra)) if p)
        base = self.reverse(Role.LIST)
        return f"{base}?{query}" if query else base

    def get_list_context(self) -> dict[str, Any]:
        context: dict[str, Any] = super().get_list_context()
        if not self.preferences_enabled():
            return context
        self.get_user_preferences()  # read with the columns and saved views, once
        state = prefs.list_state(self.request.GET)
        if self.remembers_display():
            context["display_form"] = {"url": self.reverse(Role.PREFERENCES), "state": state}
        if not (self.column_chooser or self.allow_saved_views):
            return context
        available = self.get_all_columns()
        shown = [c.name for c in context["columns"]]
        chosen, source = self.get_column_choice()
        labels = {c.name: c.label for c in available}
        rows = prefs.chooser_rows([c.name for c in available], shown)
        try:
            active = self.get_active_saved_view()
        except LookupError:
            active = None
        saved = []
        for view in self.get_own_saved_views():
            view_state = prefs.list_state(view.query)
            share = {prefs.COLUMNS_PARAM: ",".join(view.columns)} if view.columns else {}
            saved.append(
                {
                    "id": view.pk,
                    "name": view.name,
                    "open_url": self.list_url_for(view_state, **{prefs.SAVED_VIEW_PARAM: str(view.pk)}),
                    "share_url": self.request.build_absolute_uri(self.list_url_for(view_state, **share)),
                    "active": active is not None and active.pk == view.pk,
                    "modified": active is not None and active.pk == view.pk and view_state != state,
                }
            )
        shipped = []
        for name, query in self.get_saved_views():
            view_state = prefs.list_state(query.lstrip("?"))
            shipped.append(
                {
                    "name": name,
                    "open_url": self.list_url_for(view_state),
                    "active": active is None and source != "link" and view_state == state,
                }
            )
        context["preferences"] = {
            "url": self.reverse(Role.PREFERENCES),
            "state": state,
            "carry": {
                key: self.request.GET[key]
                for key in (prefs.SAVED_VIEW_PARAM, prefs.COLUMNS_PARAM)
                if self.request.GET.get(key)
            },
            "chooser": [
                {
                    "name": name,
                    "label": labels[name],
                    "shown": on,
                    "first": i == 0,
                    "last": i == len(shown) - 1,
                }
                for i, (name, on) in enumerate(rows)
            ]
            if self.column_chooser
            else None,
            "columns_source": source,
            "customised": self.get_stored_columns() is not None and bool(chosen),
            "current_columns": ",".join(shown),
            "saved_views": saved if self.allow_saved_views else None,
            "shipped_views": shipped,
            "active_view": active,
            "max_query": prefs.MAX_QUERY_LENGTH,
        }
        return context

    def get_saved_views(self) -> builtins.list[tuple[str, str]]:
        """The view's own saved views, ``(name, query string)`` pairs (check E016 checks them)."""
        return [(str(name), str(query)) for name, query in self.saved_views]

    # ----- the PREFERENCES role ----------------------------------------------------------
    def show_preferences(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """Nothing to show on its own: back to the list."""
        return HttpResponseRedirect(self.reverse(Role.LIST))

    def save_preferences(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """POST ``action``: ``columns``, ``reset``, ``save_view``, ``rename_view``,
        ``delete_view`` or ``display``."""
        if not request.user.is_authenticated:
            return self.preference_refused("Sign in to keep your own columns and views.", status=403)
        try:
            action = single(request.POST, "action")
            state = prefs.list_state(single(request.POST, "state"))
            if len(state) > prefs.MAX_QUERY_LENGTH:
                raise PreferenceError("This list's filters are too long to keep.")
            if action == "display" and self.remembers_display():
                return self.save_display_choice(request, state)
            if action == "columns" and self.column_chooser:
                url, message = self.save_column_choice(request, state)
            elif action == "reset" and self.column_chooser:
                ViewPreference.objects.filter(
                    user_id=self.preference_user_id(), view_key=self.get_preferences_key(), kind=COLUMNS
                ).delete()
                url, message = self.list_url_for(state), "Columns reset to the list's own."
            elif action in ("save_view", "rename_view", "delete_view") and self.allow_saved_views:
                url, message = self.change_saved_view(request, action, state)
            else:
                raise PreferenceError("Unknown action.")
        except LookupError:
            return self.preference_refused("That saved view does not exist, or it is not yours.", status=404)
        except (PreferenceError, RepeatedParameter, prefs.BadDisplayChoice) as exc:
            return self.preference_refused(str(exc), status=400)
        if htmx_details(request):
            response = HttpResponse(status=204)
            response["HX-Location"] = json.dumps(
                {"path": url, "target": "#pc-content", "swap": "outerHTML"}, separators=(",", ":")
            )
            response["HX-Trigger"] = json.dumps({"pcPreferenceSaved": {"message": message}})
            return response
        messages.success(request, message, fail_silently=True)
        return HttpResponseRedirect(url)

    def preference_refused(self, message: str, *, status: int) -> HttpResponse:
        """A refusal: its sentence as the body; htmx shows it as a toast and swaps nothing."""
        return refusal(self.request, message, status=status, event="pcPreferenceRefused")

    def save_display_choice(self, request: HttpRequest, state: str) -> HttpResponse:
        """Store the user's ``density`` and/or ``theme`` (for every list and page they open).

        A value that is not a choice, or a setting sent twice, is refused (400) before anything
        is stored. htmx gets a bare 204: the page has applied the choice already.
        """
        sent = {name: single(request.POST, name) for name in prefs.DISPLAY_CHOICES if name in request.POST}
        changes = prefs.parse_display_form(sent)
        pc_display.save_display(self.preference_user_id(), changes)
        if htmx_details(request):
            return HttpResponse(status=204)
        messages.success(request, "Display settings saved.", fail_silently=True)
        return HttpResponseRedirect(self.list_url_for(state))

    def save_column_choice(self, request: HttpRequest, state: str) -> tuple[str, str]:
        available = [c.name for c in self.get_all_columns()]
        move = single(request.POST, "move")
        shown = prefs.apply_column_form(
            available, request.POST.getlist("column"), request.POST.getlist("show"), move
        )
        if not shown:
            raise PreferenceError("Show at least one column.")
        ViewPreference.objects.update_or_create(
            user_id=self.preference_user_id(),
            view_key=self.get_preferences_key(),
            kind=COLUMNS,
            defaults={"columns": shown},
        )
        return self.list_url_for(state), "Columns saved."

    def change_saved_view(self, request: HttpRequest, action: str, state: str) -> tuple[str, str]:
        own = ViewPreference.objects.filter(
            user_id=self.preference_user_id(), view_key=self.get_preferences_key(), kind=SAVED
        )
        if action == "save_view":
            name = prefs.clean_name(single(request.POST, "name"))
            if not name:
                raise PreferenceError("Give the view a name.")
            if own.count() >= prefs.MAX_SAVED_VIEWS:
                raise PreferenceError(
                    f"You can keep at most {prefs.MAX_SAVED_VIEWS} saved views of this list."
                )
            available = [c.name for c in self.get_all_columns()]
            columns = prefs.choose_columns(
                available, prefs.parse_columns_param(single(request.POST, "columns"))
            )
            view = ViewPreference.objects.create(
                user_id=self.preference_user_id(),
                view_key=self.get_preferences_key(),
                kind=SAVED,
                name=name,
                query=state,
                columns=columns,
            )
            return self.list_url_for(
                state, **{prefs.SAVED_VIEW_PARAM: str(view.pk)}
            ), f"Saved view “{name}” saved."
        raw = single(request.POST, "view_id").strip()
        found = own.filter(pk=int(raw)).first() if raw.isdigit() and len(raw) < 19 else None
        if found is None:
            raise LookupError(raw)
        view = found
        if action == "rename_view":
            name = prefs.clean_name(single(request.POST, "name"))
            if not name:
                raise PreferenceError("Give the view a name.")
            old, view.name = view.name, name
            view.save(update_fields=["name", "updated_at"])
            return self.list_url_for(state), f"Saved view “{old}” renamed to “{name}”."
        view.delete()
        return self.list_url_for(state), f"Saved view “{view.name}” deleted."
