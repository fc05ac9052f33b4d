"""``PowerCRUDMixin``: mix into ``CRUDView`` for the full operational screen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from powercrud.mixins.bulk import BulkMixin
from powercrud.mixins.bulk_api import BulkApiMixin
from powercrud.mixins.export import ExportMixin
from powercrud.mixins.importing import ImportMixin
from powercrud.mixins.inline import InlineEditMixin
from powercrud.mixins.listing import ListMixin
from powercrud.mixins.preferences import ViewPreferencesMixin
from powercrud.mixins.selection import SelectionMixin

if TYPE_CHECKING:
    from powercrud.mixins.contracts import ListFeatures, SelectionFeatures


class PowerCRUDMixin(
    InlineEditMixin,
    ViewPreferencesMixin,
    ExportMixin,
    ImportMixin,
    BulkApiMixin,
    BulkMixin,
    SelectionMixin,
    ListMixin,
):
    """Filtering, search, sorting, page sizes, selection, bulk edit (and its JSON API), inline
    editing, the column chooser, saved views, export and import on ``CRUDView``.

    Use as ``class BookCRUDView(PowerCRUDMixin, CRUDView)``. Each feature lives in its own
    mixin module (``listing``, ``selection``, ``bulk``, ``bulk_api``, ``inline``, ``preferences``,
    ``export``, ``importing``); none depends on mixin order beyond all of them coming before ``CRUDView``.
    What each relies on of the view and of the others is declared in
    ``powercrud.mixins.contracts``.
    """


if TYPE_CHECKING:

    def _honours_contracts(
        listing: ListMixin, selection: SelectionMixin
    ) -> tuple[ListFeatures, SelectionFeatures]:
        """mypy proves ``ListMixin`` and ``SelectionMixin`` provide what the others call."""
        return listing, selection


__all__ = ["PowerCRUDMixin"]
