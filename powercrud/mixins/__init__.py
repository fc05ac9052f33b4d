"""``PowerCRUDMixin``: mix into ``CRUDView`` for the full operational screen."""

from __future__ import annotations

from powercrud.mixins.listing import ListMixin


class PowerCRUDMixin(ListMixin):
    """Filtering, search, sorting and page sizes on top of ``CRUDView``'s roles.

    Use as ``class BookCRUDView(PowerCRUDMixin, CRUDView)``.
    """


__all__ = ["PowerCRUDMixin"]
