"""``PowerCRUDMixin``: mix into ``CRUDView`` for the full operational screen."""

from __future__ import annotations

from powercrud.mixins.bulk import BulkMixin
from powercrud.mixins.listing import ListMixin
from powercrud.mixins.selection import SelectionMixin


class PowerCRUDMixin(BulkMixin, SelectionMixin, ListMixin):
    """Filtering, search, sorting, page sizes, selection and bulk edit on ``CRUDView``.

    Use as ``class BookCRUDView(PowerCRUDMixin, CRUDView)``. Each feature lives in its own
    mixin module (``listing``, ``selection``, ``bulk``); none depends on mixin order beyond
    all of them coming before ``CRUDView``.
    """


__all__ = ["PowerCRUDMixin"]
