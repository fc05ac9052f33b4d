"""The request-free bulk core: contracts, value conversion, and the update/delete services.

Nothing here knows about views or requests; the sync view and the async worker call the
same services with the same plain inputs (usually through
``powercrud.bulk_persistence.run_bulk_update``).
"""

from __future__ import annotations

from powercrud.bulk.delete import BulkDeleteService
from powercrud.bulk.service import BulkUpdateService
from powercrud.bulk.strategies import RowChecks, WriteStrategy, choose_strategy
from powercrud.bulk.types import (
    BulkContext,
    BulkHookError,
    BulkInputError,
    BulkResult,
    RowChange,
    RowError,
)
from powercrud.bulk.values import M2MChange, from_field_data, to_field_data

__all__ = [
    "BulkContext",
    "BulkDeleteService",
    "BulkHookError",
    "BulkInputError",
    "BulkResult",
    "BulkUpdateService",
    "M2MChange",
    "RowChange",
    "RowChecks",
    "RowError",
    "WriteStrategy",
    "choose_strategy",
    "from_field_data",
    "to_field_data",
]
