"""What each part of ``PowerCRUDMixin`` relies on: the view it is mixed into and its siblings.

Every part inherits a *host* for the type checker only; at run time each host is ``object``,
so the parts' method resolution order is exactly what it would be without them::

    ListHost        CRUDView
    SelectionHost   CRUDView + ListFeatures        (filters and search, from ``ListMixin``)
    BulkHost        CRUDView + SelectionFeatures   (the selection, from ``SelectionMixin``)
    ExportHost      CRUDView + ListFeatures + SelectionFeatures

mypy checks each call a part makes on ``self`` against its host, and ``powercrud.mixins``
checks that ``ListMixin`` and ``SelectionMixin`` honour the features the others rely on.

The view side is ``CRUDView`` itself, not a protocol: the parts extend its list hooks
(``get_list_queryset``, ``get_paginate_by``, ``get_list_context``, ``build_rows``) through
``super()``, and mypy rejects a ``super()`` call that lands on a protocol's stub body
("safe-super", python/mypy#17192). A host also narrows ``model`` to a model class:
``CRUDView.as_view()`` refuses a view without one, so no request reaches a part without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from django.db import models

if TYPE_CHECKING:
    import django_filters

    from powercrud.bulk.selection import Selection
    from powercrud.views import CRUDView


class ListFeatures(Protocol):
    """What ``SelectionMixin`` and ``ExportMixin`` use of ``ListMixin``: a stored list query
    becomes its rows, in the list's order."""

    def get_filterset_class(self) -> type[django_filters.FilterSet] | None: ...

    def apply_search(self, queryset: models.QuerySet[Any], query: str) -> models.QuerySet[Any]: ...

    def apply_sort(self, queryset: models.QuerySet[Any]) -> models.QuerySet[Any]: ...


class SelectionFeatures(Protocol):
    """What ``BulkMixin`` uses of ``SelectionMixin``: the selection, its rows and its bar."""

    def get_selection(self) -> Selection: ...

    def save_selection(self, selection: Selection) -> None: ...

    def get_selection_queryset(self, selection: Selection | None = None) -> models.QuerySet[Any]: ...

    def get_selection_context(self) -> dict[str, Any]: ...


if TYPE_CHECKING:

    class ListHost(CRUDView):
        """``ListMixin`` is mixed into a ``CRUDView``."""

        model: ClassVar[type[models.Model]]

    class SelectionHost(CRUDView, ListFeatures):
        """``SelectionMixin`` is mixed into a ``CRUDView`` that also has ``ListMixin``."""

        model: ClassVar[type[models.Model]]

    class BulkHost(CRUDView, SelectionFeatures):
        """``BulkMixin`` is mixed into a ``CRUDView`` that also has ``SelectionMixin``."""

        model: ClassVar[type[models.Model]]

    class ExportHost(CRUDView, ListFeatures, SelectionFeatures):
        """``ExportMixin`` is mixed into a ``CRUDView`` with ``ListMixin`` and ``SelectionMixin``."""

        model: ClassVar[type[models.Model]]

else:
    ListHost = SelectionHost = BulkHost = ExportHost = object


__all__ = ["BulkHost", "ExportHost", "ListFeatures", "ListHost", "SelectionFeatures", "SelectionHost"]
