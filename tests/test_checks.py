"""System checks: each id is raised by a deliberately broken view or setting, with its exact text."""

from __future__ import annotations

import functools
from typing import Any

import django
import django_filters
import pytest
from django.conf import settings
from django.core.checks import ERROR, WARNING
from django.test import override_settings
from django.utils.functional import cached_property

from powercrud import checks
from powercrud.checks import check_installation, check_view, check_views
from powercrud.views import CRUDView, registry
from tests.testapp.models import Author, Book
from tests.testapp.views import ALL_VIEWS

BOOK_FIELDS = "id, title, author, genre, status, price, published_date, pages, is_available, tags"


@pytest.fixture(autouse=True)
def _forget_broken_views():
    """Broken views defined here must not reach the project-wide ``check_views``."""
    before = list(registry)
    yield
    registry[:] = before


def broken_view(model: Any = Book, **attrs: Any) -> type[CRUDView]:
    return type("BrokenView", (CRUDView,), {"__module__": __name__, "model": model, **attrs})


def only(messages: list[Any]) -> Any:
    assert len(messages) == 1, [m.id for m in messages]
    return messages[0]


# ----- class checks -------------------------------------------------------------------------
def test_the_test_app_views_pass():
    for view in ALL_VIEWS:
        assert check_view(view) == [], view


def test_a_view_without_model_is_not_checked():
    assert check_view(broken_view(model=None, fields=["nope"])) == []


@pytest.mark.parametrize("name", ["nope", "author__nope", "title__length", "price_band"])
def test_e001_unknown_field(name):
    view = broken_view(fields=["title", name])
    error = only(check_view(view))
    assert error.id == "powercrud.E001"
    assert error.level == ERROR
    assert error.obj is view
    assert error.msg == f"BrokenView.fields names {name!r}, which is not a field of testapp.Book."
    assert error.hint == f"Use one of: {BOOK_FIELDS}."


def test_related_paths_through_relations_are_valid_fields():
    assert check_view(broken_view(fields=["title", "author__name", "tags__name", "genre"])) == []


def test_e002_properties_must_be_properties():
    view = broken_view(properties=["price_band", "title", "nope", "__str__"])
    errors = check_view(view)
    assert [e.id for e in errors] == ["powercrud.E002"] * 3
    assert [e.msg for e in errors] == [
        f"BrokenView.properties names {name!r}, which is not a property of testapp.Book."
        for name in ("title", "nope", "__str__")
    ]
    assert errors[0].hint == "List @property names here; model fields belong in `fields`."


def test_cached_properties_are_properties(monkeypatch):
    functools_prop = functools.cached_property(lambda self: self.title.upper())
    functools_prop.__set_name__(Book, "shout")
    monkeypatch.setattr(Book, "shout", functools_prop, raising=False)
    monkeypatch.setattr(Book, "whisper", cached_property(lambda self: self.title.lower()), raising=False)
    assert check_view(broken_view(properties=["shout", "whisper", "price_band"])) == []


def test_e003_unknown_filterset_field():
    error = only(check_view(broken_view(filterset_fields=["status", "colour"])))
    assert error.id == "powercrud.E003"
    assert error.msg == "BrokenView.filterset_fields names 'colour', which is not a field of testapp.Book."
    assert error.hint == f"Use one of: {BOOK_FIELDS}."


def test_e003_is_skipped_when_a_filterset_class_is_given():
    class Filters(django_filters.FilterSet):
        class Meta:
            model = Book
            fields = ["status"]

    assert check_view(broken_view(filterset_fields=["colour"], filterset_class=Filters)) == []


def test_e004_unknown_search_field():
    error = only(check_view(broken_view(search_fields=["title", "author__nickname"])))
    assert error.id == "powercrud.E004"
    assert (
        error.msg
        == "BrokenView.search_fields names 'author__nickname', which is not a field of testapp.Book."
    )


def test_e005_unknown_bulk_field():
    error = only(check_view(broken_view(bulk_fields=["status", "colour"])))
    assert error.id == "powercrud.E005"
    assert error.msg == "BrokenView.bulk_fields names 'colour', which is not a field of testapp.Book."


def test_e005_bulk_field_on_a_related_model():
    error = only(check_view(broken_view(bulk_fields=["author__name"])))
    assert error.id == "powercrud.E005"
    assert (
        error.msg
        == "BrokenView.bulk_fields names 'author__name'; bulk edit writes the view's own model only."
    )
    assert error.hint == "Use a field of the model itself."


@pytest.mark.parametrize(
    "model, name",
    [(Book, "id"), (Author, "books")],  # primary key; reverse relation
)
def test_e006_bulk_field_that_cannot_be_edited(model, name):
    error = only(check_view(broken_view(model=model, bulk_fields=[name])))
    assert error.id == "powercrud.E006"
    assert error.msg == (
        f"BrokenView.bulk_fields names {name!r}, which cannot be edited "
        "(primary key, editable=False, or a reverse relation)."
    )
    assert error.hint == f"Remove {name!r} from bulk_fields."


def test_e006_non_editable_field():
    from tests.testapp.models import ShelfEvent

    error = only(check_view(broken_view(model=ShelfEvent, bulk_fields=["message", "created"])))
    assert error.id == "powercrud.E006"
    assert "'created', which cannot be edited" in error.msg


@pytest.mark.parametrize(
    "path, problem",
    [
        ("NoDots", "Bulk update backend path 'NoDots' is not a dotted path; use 'package.module.ClassName'."),
        (
            "tests.testapp.backends.Missing",
            "Bulk update backend path 'tests.testapp.backends.Missing': module 'tests.testapp.backends' "
            "has no attribute 'Missing'.",
        ),
        (
            "tests.testapp.models.Book",
            "Bulk update backend path 'tests.testapp.models.Book' names <class 'tests.testapp.models.Book'>, "
            "which is not a subclass of powercrud.bulk_persistence.BulkUpdatePersistenceBackend.",
        ),
    ],
)
def test_e009_bad_backend_path(path, problem):
    error = only(check_view(broken_view(bulk_update_persistence_backend_path=path)))
    assert error.id == "powercrud.E009"
    assert error.msg == f"BrokenView.bulk_update_persistence_backend_path is invalid: {problem}"
    assert "BulkUpdatePersistenceBackend" in error.hint


def test_e009_module_that_cannot_be_imported():
    path = "tests.testapp.no_such_module.Backend"
    error = only(check_view(broken_view(bulk_update_persistence_backend_path=path)))
    assert error.id == "powercrud.E009"
    assert error.msg.startswith(
        "BrokenView.bulk_update_persistence_backend_path is invalid: Bulk update backend path "
        "'tests.testapp.no_such_module.Backend': module 'tests.testapp.no_such_module' could not be imported "
        "(ModuleNotFoundError: "
    )


def test_e009_valid_backend_path_passes():
    view = broken_view(bulk_update_persistence_backend_path="tests.testapp.backends.BookBulkUpdateBackend")
    assert check_view(view) == []


@pytest.mark.parametrize("model", ["testapp.Book", object, 42])
def test_e010_model_must_be_a_model_class(model):
    error = only(check_view(broken_view(model=model, fields=["nope"])))
    assert error.id == "powercrud.E010"
    assert error.msg == f"BrokenView.model must be a Django model class, not {model!r}."
    assert error.hint == "Set model = YourModel."


def test_every_problem_of_a_view_is_reported_at_once():
    view = broken_view(
        fields=["a"], properties=["b"], filterset_fields=["c"], search_fields=["d"], bulk_fields=["e"]
    )
    ids = [e.id for e in check_view(view)]
    assert ids == ["powercrud.E001", "powercrud.E002", "powercrud.E003", "powercrud.E004", "powercrud.E005"]


def test_registered_check_finds_defined_views():
    view = broken_view(fields=["nope"])
    found = [e for e in check_views() if e.obj is view]
    assert [e.id for e in found] == ["powercrud.E001"]


# ----- installation checks ------------------------------------------------------------------
def test_installation_passes_with_the_test_settings():
    assert check_installation() == []


@pytest.mark.parametrize(
    "app, package",
    [("django_filters", "django-filter"), ("django_htmx", "django-htmx")]
    + ([("template_partials", "django-template-partials")] if django.VERSION < (6, 0) else []),
)
def test_e007_required_app_missing(app, package):
    with override_settings(INSTALLED_APPS=[a for a in settings.INSTALLED_APPS if a != app]):
        error = only(check_installation())
    assert error.id == "powercrud.E007"
    assert error.level == ERROR
    assert error.msg == f"powercrud needs {app!r} in INSTALLED_APPS."
    assert error.hint == f"Install {package} and add {app!r} to INSTALLED_APPS."


def test_e008_htmx_middleware_missing():
    middleware = [m for m in settings.MIDDLEWARE if "htmx" not in m]
    with override_settings(MIDDLEWARE=middleware):
        error = only(check_installation())
    assert error.id == "powercrud.E008"
    assert error.msg == "powercrud needs django-htmx's middleware."
    assert error.hint == "Add 'django_htmx.middleware.HtmxMiddleware' to MIDDLEWARE."


def test_e011_request_context_processor_missing():
    templates = [
        {
            **engine,
            "OPTIONS": {
                **engine["OPTIONS"],
                "context_processors": [
                    name for name in engine["OPTIONS"]["context_processors"] if not name.endswith(".request")
                ],
            },
        }
        for engine in settings.TEMPLATES
    ]
    with override_settings(TEMPLATES=templates):
        error = only(check_installation())
    assert error.id == "powercrud.E011"
    assert error.msg == "powercrud's templates need the request context processor."
    assert error.hint == (
        "Add 'django.template.context_processors.request' to TEMPLATES[...]['OPTIONS']['context_processors']."
    )


def test_w001_unknown_setting():
    with override_settings(POWERCRUD_SETTINGS={"PAGE_SIZE": 10, "DEFAULT_PAGE_SIZE": 10, "Sort_Param": "o"}):
        warnings = check_installation()
    assert [w.id for w in warnings] == ["powercrud.W001", "powercrud.W001"]
    assert {w.level for w in warnings} == {WARNING}
    assert [w.msg for w in warnings] == [
        "POWERCRUD_SETTINGS has an unknown key 'PAGE_SIZE'; it is ignored.",
        "POWERCRUD_SETTINGS has an unknown key 'Sort_Param'; it is ignored.",
    ]
    assert warnings[0].hint == "See docs/reference/settings.md for the settings powercrud reads."
    assert check_installation() == []  # the override is gone, and so is the warning


def test_checks_are_registered():
    from django.core.checks import registry as check_registry

    registered = check_registry.registry.get_checks()
    assert checks.check_installation in registered
    assert checks.check_views in registered


# ----- async and many-to-many checks --------------------------------------------------------------
def powercrud_view(**attrs: Any) -> type[CRUDView]:
    from powercrud.mixins import PowerCRUDMixin

    return type("BrokenView", (PowerCRUDMixin, CRUDView), {"__module__": __name__, "model": Book, **attrs})


def test_e012_async_without_django_q(monkeypatch):
    real = checks.apps.is_installed
    monkeypatch.setattr(checks.apps, "is_installed", lambda name: name != "django_q" and real(name))
    error = only(check_view(powercrud_view(bulk_fields=["status"], bulk_async=True)))
    assert error.id == "powercrud.E012"
    assert error.msg == "BrokenView.bulk_async is True but django-q2 is not installed."
    assert "Q_CLUSTER" in error.hint


def test_w002_sync_only_override_with_async():
    def persist_bulk_update(self, **kwargs):
        return {"success": True, "success_records": 0, "errors": []}

    warning = only(
        check_view(
            powercrud_view(bulk_fields=["status"], bulk_async=True, persist_bulk_update=persist_bulk_update)
        )
    )
    assert warning.id == "powercrud.W002"
    assert warning.level == WARNING
    assert warning.msg == (
        "BrokenView overrides persist_bulk_update() but sets no bulk_update_persistence_backend_path, "
        "so async runs would not use the override."
    )


def test_w002_is_quiet_when_a_backend_path_is_set():
    def persist_bulk_update(self, **kwargs):
        return {"success": True, "success_records": 0, "errors": []}

    view = powercrud_view(
        bulk_fields=["status"],
        bulk_async=True,
        persist_bulk_update=persist_bulk_update,
        bulk_update_persistence_backend_path="tests.testapp.backends.BookBulkUpdateBackend",
    )
    assert check_view(view) == []


@pytest.mark.urls("tests.checks_urls_no_dashboard")
def test_e014_async_without_the_dashboard_urls():
    error = only(check_view(powercrud_view(bulk_fields=["status"], bulk_async=True)))
    assert error.id == "powercrud.E014"
    assert error.hint == 'Add path("powercrud/", include("powercrud.urls")) to your URLconf.'


def test_e013_many_to_many_with_a_custom_through_model():
    from django.contrib.auth.models import User

    # User.groups uses an auto-created through table; a custom one is simulated by flagging it.
    through = User.groups.through
    view = powercrud_view(model=User, bulk_fields=["groups"])
    assert check_view(view) == []
    original = through._meta.auto_created
    through._meta.auto_created = False
    try:
        error = only(check_view(view))
    finally:
        through._meta.auto_created = original
    assert error.id == "powercrud.E013"
    assert error.msg.startswith("BrokenView.bulk_fields names 'groups', a many-to-many field with a custom")
