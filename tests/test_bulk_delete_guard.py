"""A view's own ``persist_bulk_delete()`` runs inside the same guard as the default one."""

from __future__ import annotations

from typing import Any

import pytest

from powercrud.bulk import BulkResult
from powercrud.mixins import PowerCRUDMixin
from powercrud.views import CRUDView
from tests.bulk_urls import select
from tests.bulk_urls import urlpatterns as bulk_urlpatterns
from tests.testapp.models import Genre


class CarelessDeleteView(PowerCRUDMixin, CRUDView):
    """Deletes the whole selection whatever the context says, then reports ``answer``."""

    model = Genre
    url_base = "careless-genres"
    fields = ["name"]
    bulk_delete = True
    answer = True

    def persist_bulk_delete(self, *, queryset: Any, progress_callback: Any = None) -> BulkResult:
        count = queryset.count()
        queryset.delete()
        return BulkResult(
            success=self.answer,
            success_records=count if self.answer else 0,
            errors=(),
            total=count,
            changed=count,
            dry_run=False,
            examples=(),
            message="done",
        )


class RefusingDeleteView(CarelessDeleteView):
    url_base = "refusing-genres"
    answer = False


urlpatterns = [*bulk_urlpatterns, *CarelessDeleteView.get_urls(), *RefusingDeleteView.get_urls()]
pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


@pytest.fixture
def genres(db: None) -> list[Genre]:
    return [Genre.objects.create(name=name) for name in ("Crime", "Poetry", "Travel")]


def test_a_dry_run_through_an_override_that_ignores_it_deletes_nothing(htmx_client, genres):
    select(htmx_client, "careless-genres", [g.pk for g in genres])
    response = htmx_client.post("/careless-genres/bulk/delete/", {"dry_run": "1"})
    assert response.status_code == 200
    assert Genre.objects.count() == 3


def test_an_override_that_deletes_then_fails_leaves_every_row_in_all_or_nothing_mode(htmx_client, genres):
    select(htmx_client, "refusing-genres", [g.pk for g in genres])
    response = htmx_client.post("/refusing-genres/bulk/delete/")
    assert response.status_code == 200
    assert "Nothing was deleted" in response.content.decode()
    assert Genre.objects.count() == 3


def test_a_successful_override_deletes(htmx_client, genres):
    select(htmx_client, "careless-genres", [g.pk for g in genres[:2]])
    response = htmx_client.post("/careless-genres/bulk/delete/")
    assert response.status_code == 204
    assert list(Genre.objects.values_list("name", flat=True)) == ["Travel"]
