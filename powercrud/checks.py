"""System checks: misconfiguration is reported once, at startup, with a stable id and a hint.

Ids are documented in ``docs/reference/checks.md``; never reuse or renumber one.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable
from typing import Any

import django
from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.urls import NoReverseMatch, reverse
from django.utils.functional import cached_property as django_cached_property

from powercrud.bulk import lifecycle
from powercrud.bulk_persistence import BulkUpdatePersistenceBackend, check_backend_path, resolve_backend_class
from powercrud.columns import resolve_field_path
from powercrud.conf import settings as pc_settings
from powercrud.jobs.runners import check_runner_path
from powercrud.jsonapi import check_authenticate_path

# What ``properties`` may name: computed attributes read from each row.
PROPERTY_TYPES = (property, functools.cached_property, django_cached_property)


@register(Tags.models)
def check_lifecycle_hooks(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E027: a lifecycle hook (``powercrud.bulk.lifecycle``) registered for a model that is not
    installed."""
    errors: list[CheckMessage] = []
    for registration in lifecycle.registrations():
        try:
            apps.get_model(registration.model)
        except (LookupError, ValueError):
            hook = getattr(registration.hook, "__qualname__", repr(registration.hook))
            errors.append(
                Error(
                    f"The lifecycle hook {hook} ({registration.event.value}) is registered for "
                    f"{registration.model!r}, which is not an installed model.",
                    hint="Register it for a model of an app in INSTALLED_APPS, spelled 'app_label.Model'.",
                    obj=registration.hook,
                    id="powercrud.E027",
                )
            )
    return errors


REQUIRED_APPS = {
    "django_htmx": "django-htmx",
    "django_filters": "django-filter",
}


@register(Tags.compatibility)
def check_installation(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E007: required apps; E008: the htmx middleware; E011: the request context processor;
    E020: a ``BULK_RUNNER`` that does not import; E021/E022: an ``API_AUTHENTICATE`` hook that
    does not import / is not callable; W001: unknown settings."""
    errors: list[CheckMessage] = []
    required = dict(REQUIRED_APPS)
    if django.VERSION < (6, 0):
        required["template_partials"] = "django-template-partials"
    for app, package in required.items():
        if not apps.is_installed(app):
            errors.append(
                Error(
                    f"powercrud needs {app!r} in INSTALLED_APPS.",
                    hint=f"Install {package} and add {app!r} to INSTALLED_APPS.",
                    id="powercrud.E007",
                )
            )
    engines: list[dict[str, Any]] = settings.TEMPLATES
    context_processors = [
        name
        for engine in engines
        if engine.get("BACKEND") == "django.template.backends.django.DjangoTemplates"
        for name in engine.get("OPTIONS", {}).get("context_processors", [])
    ]
    if "django.template.context_processors.request" not in context_processors:
        errors.append(
            Error(
                "powercrud's templates need the request context processor.",
                hint="Add 'django.template.context_processors.request' to "
                "TEMPLATES[...]['OPTIONS']['context_processors'].",
                id="powercrud.E011",
            )
        )
    if "django_htmx.middleware.HtmxMiddleware" not in settings.MIDDLEWARE:
        errors.append(
            Error(
                "powercrud needs django-htmx's middleware.",
                hint="Add 'django_htmx.middleware.HtmxMiddleware' to MIDDLEWARE.",
                id="powercrud.E008",
            )
        )
    problem = check_runner_path(pc_settings.BULK_RUNNER)
    if problem:
        errors.append(
            Error(
                problem,
                hint="Set POWERCRUD_SETTINGS['BULK_RUNNER'] to the dotted path of a runner class, "
                "or leave it out for django-q2 (powercrud.jobs.runners.DjangoQRunner).",
                id="powercrud.E020",
            )
        )
    found = check_authenticate_path(pc_settings.API_AUTHENTICATE)
    if found:
        check_id, message = found
        errors.append(
            Error(
                message,
                hint="Set POWERCRUD_SETTINGS['API_AUTHENTICATE'] to the dotted path of a function "
                "taking the request and returning a user or None, or leave it out (the session only).",
                id=check_id,
            )
        )
    for name in pc_settings.unknown_names():
        errors.append(
            Warning(
                f"POWERCRUD_SETTINGS has an unknown key {name!r}; it is ignored.",
                hint="See docs/reference/settings.md for the settings powercrud reads.",
                id="powercrud.W001",
            )
        )
    return errors


def _field_errors(view: type[Any], attr: str, names: Iterable[str], check_id: str) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for name in names:
        try:
            resolve_field_path(view.model, name)
        except FieldDoesNotExist:
            errors.append(
                Error(
                    f"{view.__qualname__}.{attr} names {name!r}, which is not a field of "
                    f"{view.model._meta.label}.",
                    hint=f"Use one of: {', '.join(_field_names(view.model))}.",
                    obj=view,
                    id=check_id,
                )
            )
    return errors


def _field_names(model: type[models.Model]) -> list[str]:
    return [f.name for f in model._meta.get_fields() if not f.auto_created or f.concrete]


def _property_errors(view: type[Any]) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for name in getattr(view, "properties", ()) or ():
        if not isinstance(getattr(view.model, name, None), PROPERTY_TYPES):
            errors.append(
                Error(
                    f"{view.__qualname__}.properties names {name!r}, which is not a property "
                    f"of {view.model._meta.label}.",
                    hint="List @property names here; model fields belong in `fields`.",
                    obj=view,
                    id="powercrud.E002",
                )
            )
    return errors


def _bulk_field_errors(view: type[Any]) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    names = list(getattr(view, "bulk_fields", ()) or ())
    errors += _field_errors(view, "bulk_fields", [n for n in names if "__" not in n], "powercrud.E005")
    for name in names:
        if "__" in name:
            errors.append(
                Error(
                    f"{view.__qualname__}.bulk_fields names {name!r}; bulk edit writes the "
                    "view's own model only.",
                    hint="Use a field of the model itself.",
                    obj=view,
                    id="powercrud.E005",
                )
            )
            continue
        try:
            field = view.model._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        if (
            getattr(field, "primary_key", False)
            or not getattr(field, "editable", False)
            or (field.auto_created and not field.concrete)
        ):
            errors.append(
                Error(
                    f"{view.__qualname__}.bulk_fields names {name!r}, which cannot be edited "
                    "(primary key, editable=False, or a reverse relation).",
                    hint=f"Remove {name!r} from bulk_fields.",
                    obj=view,
                    id="powercrud.E006",
                )
            )
        elif field.many_to_many and _custom_many_to_many(field):
            errors.append(
                Error(
                    f"{view.__qualname__}.bulk_fields names {name!r}, a many-to-many field with a "
                    "custom through model or a symmetrical self-relation, which bulk edit cannot write.",
                    hint=f"Remove {name!r} from bulk_fields, or edit it row by row in the form.",
                    obj=view,
                    id="powercrud.E013",
                )
            )
    return errors


def _custom_many_to_many(field: Any) -> bool:
    remote = field.remote_field
    custom_through = not remote.through._meta.auto_created
    symmetrical_self = bool(getattr(remote, "symmetrical", False)) and remote.model == field.model
    return custom_through or symmetrical_self


def _async_errors(view: type[Any]) -> list[CheckMessage]:
    """E012: async needs django-q2; W002: a sync-only override would make the modes differ."""
    if not getattr(view, "bulk_async", False):
        return []
    errors: list[CheckMessage] = []
    if not apps.is_installed("django_q"):
        errors.append(
            Error(
                f"{view.__qualname__}.bulk_async is True but django-q2 is not installed.",
                hint="Add 'django_q' to INSTALLED_APPS and configure Q_CLUSTER (see docs/async.md).",
                obj=view,
                id="powercrud.E012",
            )
        )
    try:
        reverse("powercrud:tasks-list")
    except NoReverseMatch:
        errors.append(
            Error(
                f"{view.__qualname__}.bulk_async is True but the task dashboard's URLs are not "
                "installed, so users could not follow their tasks.",
                hint='Add path("powercrud/", include("powercrud.urls")) to your URLconf.',
                obj=view,
                id="powercrud.E014",
            )
        )
    from powercrud.mixins.bulk import BulkMixin

    hook = getattr(view, "persist_bulk_update", None)
    overridden = hook is not None and hook is not BulkMixin.persist_bulk_update
    if overridden and not getattr(view, "bulk_update_persistence_backend_path", None):
        errors.append(
            Warning(
                f"{view.__qualname__} overrides persist_bulk_update() but sets no "
                "bulk_update_persistence_backend_path, so async runs would not use the override.",
                hint="Move the write logic into a BulkUpdatePersistenceBackend, name it in "
                "bulk_update_persistence_backend_path, and call the same service from both.",
                obj=view,
                id="powercrud.W002",
            )
        )
    return errors


def _unused_bulk_settings(view: type[Any]) -> list[CheckMessage]:
    """W003: ``bulk_async`` or a backend path that nothing uses, because ``bulk_fields`` is empty.

    Without bulk edit, ``bulk_async`` still serves bulk delete, and so does the backend, but
    only through its ``scope_queryset()``. Views without ``BulkMixin`` have no bulk screens
    whatever they set, so ``bulk_fields`` would not help them: they are not checked.
    """
    from powercrud.mixins.bulk import BulkMixin

    if not issubclass(view, BulkMixin) or view.bulk_fields:
        return []
    path = getattr(view, "bulk_update_persistence_backend_path", None)
    name = view.__qualname__
    fix = "Set bulk_fields to the fields users may change in bulk, or remove"
    if getattr(view, "bulk_delete", False):
        if not path or check_backend_path(path) is not None:  # an unresolvable path is E009
            return []
        if resolve_backend_class(path).scope_queryset is not BulkUpdatePersistenceBackend.scope_queryset:
            return []
        return [
            Warning(
                f"{name} sets bulk_update_persistence_backend_path, but bulk edit is off because "
                "bulk_fields is empty; bulk delete uses only the backend's scope_queryset(), which "
                f"{path} does not override, so the backend is never used.",
                hint=f"{fix} bulk_update_persistence_backend_path.",
                obj=view,
                id="powercrud.W003",
            )
        ]
    unused = [
        attr
        for attr, value in (
            ("bulk_async", getattr(view, "bulk_async", False)),
            ("bulk_update_persistence_backend_path", path),
        )
        if value
    ]
    if not unused:
        return []
    named = " and ".join("bulk_async = True" if attr == "bulk_async" else attr for attr in unused)
    effect = "it has" if len(unused) == 1 else "they have"
    return [
        Warning(
            f"{name} sets {named}, but bulk edit is off because bulk_fields is empty (and "
            f"bulk_delete is off too), so {effect} no effect.",
            hint=f"{fix} {' and '.join(unused)}.",
            obj=view,
            id="powercrud.W003",
        )
    ]


def _chunk_errors(view: type[Any]) -> list[CheckMessage]:
    """E028: ``bulk_chunk_size`` that is not a positive whole number, or on an all-or-nothing
    view (its run is one transaction on one worker: it cannot be split)."""
    size = getattr(view, "bulk_chunk_size", None)
    if size is None:
        return []
    name = view.__qualname__
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        problem = f"{name}.bulk_chunk_size is {size!r}; it must be a whole number of rows, 1 or more."
        hint = "Set bulk_chunk_size = 10_000 (rows per chunk job), or None for one job per run."
    elif getattr(view, "bulk_atomic", True):
        problem = (
            f"{name}.bulk_chunk_size is set, but the view is all-or-nothing (bulk_atomic = True), "
            "whose run is one transaction on one worker and is never split."
        )
        hint = "Set bulk_atomic = False (per-row mode) to run chunks in parallel, or remove bulk_chunk_size."
    else:
        return []
    return [Error(problem, hint=hint, obj=view, id="powercrud.E028")]


def check_view(view: type[Any]) -> list[CheckMessage]:
    """All class-level checks for one CRUD view."""
    model = getattr(view, "model", None)
    if model is None:
        return []
    if not (isinstance(model, type) and issubclass(model, models.Model)):
        return [
            Error(
                f"{view.__qualname__}.model must be a Django model class, not {model!r}.",
                hint="Set model = YourModel.",
                obj=view,
                id="powercrud.E010",
            )
        ]
    errors: list[CheckMessage] = []
    if view.fields is not None:
        errors += _field_errors(view, "fields", view.fields, "powercrud.E001")
    errors += _property_errors(view)
    if getattr(view, "filterset_class", None) is None:
        errors += _field_errors(
            view, "filterset_fields", getattr(view, "filterset_fields", ()) or (), "powercrud.E003"
        )
    errors += _field_errors(view, "search_fields", getattr(view, "search_fields", ()) or (), "powercrud.E004")
    errors += _bulk_field_errors(view)
    errors += _async_errors(view)
    errors += _unused_bulk_settings(view)
    errors += _chunk_errors(view)
    path = getattr(view, "bulk_update_persistence_backend_path", None)
    if path:
        problem = check_backend_path(path)
        if problem:
            errors.append(
                Error(
                    f"{view.__qualname__}.bulk_update_persistence_backend_path is invalid: {problem}",
                    hint="Name an importable subclass of powercrud.bulk_persistence."
                    "BulkUpdatePersistenceBackend, e.g. 'myapp.backends.MyBackend'.",
                    obj=view,
                    id="powercrud.E009",
                )
            )
    return errors


@register(Tags.models)
def check_views(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Run ``check_view`` on every CRUD view the URLconf imports."""
    from django.urls import get_resolver

    from powercrud.views import registry

    # Import the URLconf so every view class is defined; Django's own URL checks report a
    # broken URLconf, so a failure here is left to them.
    with contextlib.suppress(Exception):
        _ = get_resolver().url_patterns
    errors: list[CheckMessage] = []
    for view in list(dict.fromkeys(registry)):
        errors += check_view(view)
    return errors


def _view_form_fields(view: type[Any]) -> list[str] | None:
    """The fields of ``view``'s create/update form, or None when they cannot be known here."""
    form_class = getattr(view, "form_class", None)
    if form_class is not None:
        return list(getattr(form_class, "base_fields", {}))
    try:
        return list(view().get_form_fields())
    except Exception:  # a get_fields()/get_form_fields() that needs a request: nothing to check
        return None


def check_list_features(view: type[Any]) -> list[CheckMessage]:
    """E016: ``inline_edit_fields`` outside the view's form; E017: a malformed ``saved_views``;
    E018 and E019: ``export_formats`` (``_check_export_formats``); E023-E026: import
    (``_check_import``)."""
    model = getattr(view, "model", None)
    if not (isinstance(model, type) and issubclass(model, models.Model)):
        return []
    errors: list[CheckMessage] = []
    inline = list(getattr(view, "inline_edit_fields", ()) or ())
    form_fields = _view_form_fields(view) if inline else None
    if form_fields is not None:
        for name in inline:
            if name not in form_fields:
                errors.append(
                    Error(
                        f"{view.__qualname__}.inline_edit_fields names {name!r}, which is not a field "
                        "of the view's form.",
                        hint="Inline editing saves through the view's form: name fields it edits "
                        f"({', '.join(form_fields) or 'none'}), or add {name!r} to form_fields.",
                        obj=view,
                        id="powercrud.E016",
                    )
                )
    shipped = getattr(view, "saved_views", ()) or ()
    for entry in shipped if isinstance(shipped, (list, tuple)) else [shipped]:
        if not (
            isinstance(entry, (list, tuple))
            and len(entry) == 2
            and all(isinstance(part, str) for part in entry)
            and entry[0].strip()
        ):
            errors.append(
                Error(
                    f"{view.__qualname__}.saved_views has {entry!r}, which is not a "
                    "(name, query string) pair.",
                    hint='Write saved_views = [("Drafts", "?status=draft&sort=-price")].',
                    obj=view,
                    id="powercrud.E017",
                )
            )
    return errors + _check_export_formats(view) + _check_import(view)


def _check_export_formats(view: type[Any]) -> list[CheckMessage]:
    """E018: an unknown name in ``export_formats``; E019: ``xlsx`` without openpyxl installed."""
    from powercrud.fileformats import FORMATS

    formats = getattr(view, "export_formats", ()) or ()
    return _check_formats(view, "export_formats", formats, FORMATS, "export", ("E018", "E019"))


def _check_formats(
    view: type[Any], attribute: str, formats: Any, known: Any, kind: str, ids: tuple[str, str]
) -> list[CheckMessage]:
    """A view's ``export_formats`` or ``import_formats``: ``ids[0]`` for a name powercrud does
    not write or read (or a string instead of a list), ``ids[1]`` for ``xlsx`` without openpyxl."""
    from powercrud.fileformats import xlsx_available

    names = [formats] if isinstance(formats, str) else list(formats)
    errors: list[CheckMessage] = []
    for name in names:
        if name not in known or isinstance(formats, str):
            errors.append(
                Error(
                    f"{view.__qualname__}.{attribute} names {name!r}, which is not an {kind} format"
                    + (" (it is a string, not a list of names)." if isinstance(formats, str) else "."),
                    hint=f"Use some of {', '.join(repr(n) for n in known)}, "
                    f'as a list: {attribute} = ["csv", "json"].',
                    obj=view,
                    id=f"powercrud.{ids[0]}",
                )
            )
    if "xlsx" in names and not xlsx_available():
        errors.append(
            Error(
                f"{view.__qualname__}.{attribute} offers 'xlsx', but openpyxl is not installed.",
                hint="Install powercrud with its xlsx extra (pip install 'powercrud[xlsx]'), "
                f"or leave 'xlsx' out of {attribute}.",
                obj=view,
                id=f"powercrud.{ids[1]}",
            )
        )
    return errors


def _check_import(view: type[Any]) -> list[CheckMessage]:
    """E023: ``import_fields`` names no field of the model; E024: a field an import cannot fill;
    E025: ``import_formats`` names a format powercrud does not read; E026: ``xlsx`` without openpyxl."""
    from powercrud.bulk.importfile import FORMATS as IMPORT_FORMATS
    from powercrud.bulk.importing import importable_fields

    declared = getattr(view, "import_fields", ()) or ()
    if not declared:
        return []
    model = view.model
    names = [declared] if isinstance(declared, str) else list(declared)
    allowed = importable_fields(model)
    errors: list[CheckMessage] = []
    for name in names:
        try:
            model._meta.get_field(name)
        except Exception:
            errors.append(
                Error(
                    f"{view.__qualname__}.import_fields names {name!r}, which is not a field of "
                    f"{model._meta.label}.",
                    hint=f"Name fields of {model._meta.label}: {', '.join(allowed) or 'none'}.",
                    obj=view,
                    id="powercrud.E023",
                )
            )
            continue
        if name not in allowed or isinstance(declared, str):
            errors.append(
                Error(
                    f"{view.__qualname__}.import_fields names {name!r}, which an import cannot fill "
                    "(not editable, the automatic key, a reverse relation or a many-to-many field "
                    "with its own through model)"
                    + (", and import_fields is a string, not a list." if isinstance(declared, str) else "."),
                    hint=f"Importable fields of {model._meta.label}: {', '.join(allowed) or 'none'}.",
                    obj=view,
                    id="powercrud.E024",
                )
            )
    formats = getattr(view, "import_formats", IMPORT_FORMATS) or ()
    errors += _check_formats(view, "import_formats", formats, IMPORT_FORMATS, "import", ("E025", "E026"))
    return errors


@register(Tags.models)
def check_list_feature_views(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Run ``check_list_features`` on every CRUD view (``check_views`` imported the URLconf)."""
    from django.urls import get_resolver

    from powercrud.views import registry

    with contextlib.suppress(Exception):
        _ = get_resolver().url_patterns
    errors: list[CheckMessage] = []
    for view in list(dict.fromkeys(registry)):
        errors += check_list_features(view)
    return errors
