"""``powercrud.conf.settings``: defaults, ``override_settings`` reloads, unknown names fail loudly."""

from __future__ import annotations

import pytest
from django.test import override_settings

from powercrud.conf import DEFAULTS, settings
from powercrud.mixins import PowerCRUDMixin
from powercrud.views import CRUDView
from tests.testapp.models import Author, Genre
from tests.testapp.urls import urlpatterns as app_urlpatterns


def test_documented_defaults():
    assert settings.BASE_TEMPLATE == "powercrud/base.html"
    assert tuple(settings.PAGE_SIZE_OPTIONS) == (10, 25, 50, 100)
    assert settings.DEFAULT_PAGE_SIZE == 25
    assert settings.SORT_PARAM == "sort"
    assert settings.SEARCH_PARAM == "q"
    assert settings.PAGE_SIZE_PARAM == "page_size"
    assert settings.SELECTION_ID_CAP == 100_000
    assert settings.BULK_BATCH_SIZE == 1000
    assert settings.BULK_MIN_ASYNC_RECORDS == 1000


def test_every_default_is_readable():
    for name, value in DEFAULTS.items():
        assert getattr(settings, name) == value


def test_override_settings_reloads():
    assert settings.DEFAULT_PAGE_SIZE == 25  # fills the cache
    with override_settings(POWERCRUD_SETTINGS={"DEFAULT_PAGE_SIZE": 7, "SORT_PARAM": "o"}):
        assert settings.DEFAULT_PAGE_SIZE == 7
        assert settings.SORT_PARAM == "o"
        assert settings.SEARCH_PARAM == "q"  # keys not given keep their default
        with override_settings(POWERCRUD_SETTINGS={"DEFAULT_PAGE_SIZE": 9}):
            assert settings.DEFAULT_PAGE_SIZE == 9
            assert settings.SORT_PARAM == "sort"
        assert settings.DEFAULT_PAGE_SIZE == 7
    assert settings.DEFAULT_PAGE_SIZE == 25
    assert settings.SORT_PARAM == "sort"


def test_other_settings_do_not_disturb_the_cache():
    with override_settings(POWERCRUD_SETTINGS={"DEFAULT_PAGE_SIZE": 7}):
        assert settings.DEFAULT_PAGE_SIZE == 7
        with override_settings(DEBUG=True):
            assert settings.DEFAULT_PAGE_SIZE == 7


@pytest.mark.parametrize("value", [None, {}])
def test_empty_or_none_means_defaults(value):
    with override_settings(POWERCRUD_SETTINGS=value):
        assert settings.DEFAULT_PAGE_SIZE == 25
        assert settings.unknown_names() == []


@pytest.mark.parametrize("name", ["NOPE", "default_page_size", "_cache_", "_user_settings_x"])
def test_unknown_name_raises_attribute_error(name):
    with pytest.raises(AttributeError) as excinfo:
        getattr(settings, name)
    assert str(excinfo.value) == f"powercrud has no setting named {name!r}."
    assert not hasattr(settings, name)


def test_unknown_keys_are_not_readable_and_are_listed():
    with override_settings(POWERCRUD_SETTINGS={"ZED": 1, "ALPHA": 2, "SORT_PARAM": "o"}):
        with pytest.raises(AttributeError, match="powercrud has no setting named 'ZED'."):
            _ = settings.ZED
        assert settings.unknown_names() == ["ALPHA", "ZED"]
    assert settings.unknown_names() == []


# ----- the settings reach the views --------------------------------------------------------
class PlainGenreView(PowerCRUDMixin, CRUDView):
    """No base_template_path and no paginate_by: both come from settings."""

    model = Genre
    url_base = "plain-genres"
    fields = ["name"]


urlpatterns = [*app_urlpatterns, *PlainGenreView.get_urls()]


@pytest.mark.django_db
def test_query_parameter_names_and_page_sizes_come_from_settings(admin_client, catalogue):
    custom = {
        "SORT_PARAM": "o",
        "SEARCH_PARAM": "search",
        "PAGE_SIZE_PARAM": "n",
        "PAGE_SIZE_OPTIONS": (5, 15),
    }
    with override_settings(POWERCRUD_SETTINGS=custom):
        response = admin_client.get("/book/?o=-title&search=calvino&n=5&sort=title&q=achebe&page_size=10")
        rows = [row["object"] for row in response.context_data["rows"]]
        assert [b.title for b in rows] == ["Book 28", "Book 25", "Book 22", "Book 19", "Book 16"]
        assert response.context_data["page_size_options"] == [5, 15, 25]  # 25: the view's paginate_by
        page = response.content.decode()
        assert 'name="search" value="calvino"' in page
        assert 'name="n"' in page
        assert "?o=title&amp;search=calvino&amp;n=5" in page  # the sort link flips the direction
    default = admin_client.get("/book/?o=-title&search=calvino&n=5")
    assert len(default.context_data["rows"]) == 25
    assert default.context_data["rows"][0]["object"].title == "Book 00"


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_default_page_size_and_base_template_come_from_settings(admin_client):
    for i in range(5):
        Genre.objects.create(name=f"Genre {i}")
    plain = admin_client.get("/plain-genres/")
    assert len(plain.context_data["rows"]) == 5
    assert "powercrud test app" not in plain.content.decode()
    with override_settings(POWERCRUD_SETTINGS={"DEFAULT_PAGE_SIZE": 2, "BASE_TEMPLATE": "testapp/base.html"}):
        response = admin_client.get("/plain-genres/")
        assert [r["object"].name for r in response.context_data["rows"]] == ["Genre 0", "Genre 1"]
        assert response.context_data["page_obj"].paginator.num_pages == 3
        assert "powercrud test app" in response.content.decode()
        # A view's own base_template_path still wins over the setting.
        Author.objects.create(name="Solo")
        assert "powercrud test app" in admin_client.get("/author/").content.decode()
