"""What powercrud's JSON endpoints share: errors as JSON, who is asking, and a strict body.

- ``ApiError`` / ``json_error()``: every refusal is ``{"error": <sentence>, "field": <name>}``
  with its HTTP status, never an HTML page.
- ``api_user()``: the host project's token hook (``POWERCRUD_SETTINGS["API_AUTHENTICATE"]``, a
  dotted path to ``callable(request) -> user | None``) first, then the session. A request the
  hook authenticates carries no cookie, so Django's CSRF rule does not apply to it; a
  session-authenticated ``POST`` must pass the CSRF check as any Django form does, and is
  refused with a 403 JSON error otherwise. Nobody signed in is a 401 JSON error, never a
  redirect to the login page.
- ``read_document()``: the request body as one JSON object; a body that is not JSON, not an
  object, holds a key twice or ``NaN`` is a 400 naming the problem.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, NoReturn

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.module_loading import import_string

from powercrud.conf import settings as pc_settings

__all__ = [
    "ApiError",
    "api_user",
    "authenticate_hook",
    "check_authenticate_path",
    "json_error",
    "read_document",
]

JSON_CONTENT_TYPE = "application/json"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")

UserHook = Callable[[HttpRequest], Any]


def json_error(message: str, *, status: int, field: str | None = None, **extra: Any) -> JsonResponse:
    """An error a program reads: the sentence, the parameter or field it is about, and any
    details (``extra``, e.g. every field's messages)."""
    body: dict[str, Any] = {"error": message}
    if field:
        body["field"] = field
    body.update(extra)
    return JsonResponse(body, status=status)


class ApiError(Exception):
    """A refusal with its HTTP status; ``field`` names what to fix (``values.price``)."""

    def __init__(self, message: str, *, status: int = 400, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field
        self.extra = extra

    def response(self) -> JsonResponse:
        return json_error(self.message, status=self.status, field=self.field, **self.extra)


# ----- who is asking ------------------------------------------------------------------------------


def check_authenticate_path(path: Any) -> tuple[str, str] | None:
    """``(check id, message)`` when ``API_AUTHENTICATE`` cannot work: ``powercrud.E021`` for a
    path that does not import, ``powercrud.E022`` for one that is not callable; else None."""
    if path in (None, ""):
        return None
    if not isinstance(path, str):
        return "powercrud.E021", f"API_AUTHENTICATE must be a dotted path (text), not {path!r}."
    try:
        hook = import_string(path)
    except ImportError as exc:
        return "powercrud.E021", f"API_AUTHENTICATE {path!r} does not import: {exc}"
    if not callable(hook):
        return "powercrud.E022", f"API_AUTHENTICATE {path!r} is not callable (it is {type(hook).__name__})."
    return None


@functools.lru_cache(maxsize=8)
def _hook_at(path: str) -> UserHook:
    hook: UserHook = import_string(path)
    return hook


def authenticate_hook() -> UserHook | None:
    """The host's ``callable(request) -> user | None`` (``API_AUTHENTICATE``), or None."""
    path = pc_settings.API_AUTHENTICATE
    return _hook_at(path) if path else None


class _CsrfRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _CsrfCheck(CsrfViewMiddleware):
    """Django's own CSRF check, raising the reason instead of drawing the failure page."""

    def _reject(self, request: HttpRequest, reason: str) -> NoReturn:
        raise _CsrfRefused(reason)


def _csrf_refusal(request: HttpRequest) -> str | None:
    """Why Django's CSRF rule refuses ``request`` (the middleware's reason), or None."""
    check = _CsrfCheck(lambda _request: HttpResponse())
    check.process_request(request)
    try:
        check.process_view(request, None, (), {})  # type: ignore[arg-type]  # no view: none is exempt
    except _CsrfRefused as exc:
        return exc.reason
    return None


def api_user(request: HttpRequest) -> Any:
    """The user making ``request``: the token hook's, else the session's (which must pass the
    CSRF check on an unsafe method). ``request.user`` is set to it. ``ApiError`` otherwise:
    401 nobody signed in or a refused token, 403 a session request failing the CSRF check."""
    hook = authenticate_hook()
    if hook is not None:
        try:
            user = hook(request)
        except PermissionDenied as exc:
            raise ApiError(str(exc) or "The token was refused.", status=401) from None
        if user is not None:
            if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", True):
                raise ApiError("The token belongs to no active user.", status=401)
            request.user = user
            return user
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        raise ApiError("Sign in, or send the token your project's API authentication expects.", status=401)
    if request.method not in SAFE_METHODS:
        reason = _csrf_refusal(request)
        if reason is not None:
            raise ApiError(
                f"CSRF check failed: {reason} A request signed in by the session must send the CSRF "
                "token (the X-CSRFToken header) with the csrftoken cookie.",
                status=403,
                field="csrf",
            )
    return user


# ----- the body -----------------------------------------------------------------------------------


class _Repeated(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise _Repeated(key)
        document[key] = value
    return document


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def read_document(request: HttpRequest) -> dict[str, Any]:
    """The body of ``request`` as one JSON object; ``ApiError`` (400, 413 or 415) otherwise."""
    if request.content_type != JSON_CONTENT_TYPE:
        raise ApiError(
            f"Send the body as JSON with Content-Type: {JSON_CONTENT_TYPE} "
            f"(this request says {request.content_type or 'nothing'}).",
            status=415,
            field="Content-Type",
        )
    try:
        body = request.body
    except RequestDataTooBig:
        raise ApiError(
            "The body is larger than the server accepts (DATA_UPLOAD_MAX_MEMORY_SIZE); select the rows "
            "by a query instead of by ids, or send fewer ids.",
            status=413,
        ) from None
    try:
        document = json.loads(body, object_pairs_hook=_refuse_repeated_keys, parse_constant=_refuse_constant)
    except _Repeated as exc:
        raise ApiError(
            f"The key “{exc.key}” appears twice in one JSON object; send it once.", field=exc.key
        ) from None
    except json.JSONDecodeError as exc:
        raise ApiError(
            f"The body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None
    except UnicodeDecodeError:
        raise ApiError("The body is not valid UTF-8 text.") from None
    except RecursionError:
        raise ApiError("The JSON is nested too deeply.") from None
    except ValueError as exc:
        raise ApiError(f"The body is not valid JSON: {exc}.") from None
    if not isinstance(document, dict):
        raise ApiError(f"The body must be a JSON object ({{...}}), not {type(document).__name__}.")
    return document
