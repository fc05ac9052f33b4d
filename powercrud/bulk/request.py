"""``BulkRequest``: what one bulk run is asked to do, as plain data, validated once.

A view builds it from the modal's validated values; the launch stores it on the task record
(``to_dict()``); the worker, the dashboard and the outcomes read it back (``from_dict()``).
It is the only description of a run that crosses layers: nothing downstream reads a raw
dict, and nothing downstream re-checks what ``__post_init__`` has checked.

``context()`` is the one factory for the ``BulkContext`` a backend or service receives, in
both modes, so sync and async runs of the same request get the same context fields.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Literal, get_args

from powercrud.bulk.codec import frozen_json
from powercrud.bulk.importing import ImportSpec
from powercrud.bulk.types import BulkContext, BulkInputError, Mode, Operation, check_run_kind
from powercrud.conf import settings as pc_settings

__all__ = ["FORMAT_VERSION", "BulkRequest", "SourceAction"]

FORMAT_VERSION = 1
"""The version of ``to_dict()``'s form; ``from_dict()`` reads this version and the unversioned
form of earlier releases (the task payload)."""

SourceAction = Literal["apply", "retry", "undo"]
"""How a run follows an earlier one: apply what a check found, retry its failed rows, undo it."""

_MAX_REASON = 500
_SCALARS = (str, int, float, bool, type(None))


def _names(owner: str, value: Sequence[str]) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"BulkRequest.{owner} must be a list of field names, not {value!r}.")
    names = tuple(value)
    for name in names:
        if not isinstance(name, str) or not name:
            raise TypeError(f"BulkRequest.{owner} must hold field names, not {name!r}.")
    return names


@dataclass(frozen=True)
class BulkRequest:
    """One bulk edit or delete, as asked: the operation, the values, the mode.

    ``field_data`` is the JSON form of ``powercrud.bulk.values`` (already validated values,
    related rows by primary key, many-to-many as ``{"op", "ids"}``). ``atomic=True`` is
    all-or-nothing; ``dry_run`` checks without saving. ``backend_path`` names the
    ``BulkUpdatePersistenceBackend`` by dotted path ("" = the default backend); it is
    resolved where the run executes. ``view_name`` says which screen asked (shown on the
    dashboard, passed to services in ``context.extra``). ``reason`` is the user's note for the
    run; ``source_run``/``source_action`` tie a run to the one it applies, retries or undoes.
    """

    operation: Operation
    model_label: str
    fields_to_update: tuple[str, ...] = ()
    field_data: Mapping[str, Any] = field(default_factory=dict, hash=False)
    bulk_fields: tuple[str, ...] = ()
    atomic: bool = True
    dry_run: bool = False
    batch_size: int = field(default_factory=lambda: int(pc_settings.BULK_BATCH_SIZE))
    backend_path: str = ""
    backend_config: Mapping[str, Any] = field(default_factory=dict, hash=False)
    view_name: str = ""
    reason: str = ""
    source_run: int | None = None
    source_action: SourceAction | None = None
    import_data: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        check_run_kind("BulkRequest", self.operation, self.model_label)
        object.__setattr__(self, "model_label", self.model_label.lower())
        for flag in ("atomic", "dry_run"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"BulkRequest.{flag} must be True or False, not {getattr(self, flag)!r}.")
        size = self.batch_size
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"BulkRequest.batch_size must be a whole number of at least 1, not {size!r}.")
        for text in ("backend_path", "view_name", "reason"):
            if not isinstance(getattr(self, text), str):
                raise TypeError(f"BulkRequest.{text} must be text, not {getattr(self, text)!r}.")
        if len(self.reason) > _MAX_REASON:
            raise BulkInputError("reason", f"The reason is too long: at most {_MAX_REASON} characters.")
        if "\x00" in self.reason:  # no text column stores it (PostgreSQL refuses it outright)
            raise BulkInputError("reason", "The reason holds a NUL character (\\u0000); remove it.")
        if (self.source_run is None) != (self.source_action is None):
            raise ValueError("BulkRequest.source_run and source_action go together: set both or neither.")
        if self.source_action is not None and self.source_action not in get_args(SourceAction):
            raise ValueError(
                f"BulkRequest.source_action must be one of {', '.join(get_args(SourceAction))}, "
                f"not {self.source_action!r}."
            )
        object.__setattr__(self, "fields_to_update", _names("fields_to_update", self.fields_to_update))
        object.__setattr__(self, "bulk_fields", _names("bulk_fields", self.bulk_fields))
        object.__setattr__(self, "field_data", frozen_json("BulkRequest.field_data", self.field_data))
        object.__setattr__(
            self, "backend_config", frozen_json("BulkRequest.backend_config", self.backend_config)
        )
        if self.operation == "update":
            self._check_update()
        elif self.fields_to_update or self.field_data:
            raise ValueError(f"A bulk {self.operation} takes no fields_to_update or field_data.")
        if self.operation == "import":
            self._check_import()
        elif self.import_data:
            raise ValueError("Only an import takes import_data.")

    def _check_import(self) -> None:
        """``import_data``: the ``ImportSpec`` (``spec``) and the rows, ``[[line, [values]], ...]``
        with one value per field of the spec, each a JSON scalar or a list of them (a
        many-to-many cell); a run's record keeps the spec and the file's name and column mapping
        without the rows (``without_rows()``). The rows are checked cell by cell and copied,
        the rest goes through ``frozen_json()`` (a JSON round trip of 100,000 rows costs more
        than the import's conversion of a column)."""
        data = dict(self.import_data)
        rows = data.pop("rows", None)
        frozen = dict(frozen_json("BulkRequest.import_data", data))
        if rows is not None:
            frozen["rows"] = self._import_rows(rows)
        object.__setattr__(self, "import_data", MappingProxyType(frozen))

    def _import_rows(self, rows: Any) -> list[list[Any]]:
        if self.source_action == "undo":
            raise ValueError("The undo of an import takes no rows: it works from the import's ledger.")
        spec = ImportSpec.from_data(self.import_data.get("spec") or {})
        if not isinstance(rows, list | tuple):
            raise ValueError("BulkRequest.import_data['rows'] must be a list of [line, [values]].")
        width = len(spec.fields)
        copied = []
        for row in rows:
            if not (isinstance(row, list | tuple) and len(row) == 2 and type(row[0]) is int):
                raise ValueError(f"BulkRequest.import_data['rows'] holds {row!r}, not [line, [values]].")
            line, values = row
            if not isinstance(values, list | tuple) or len(values) != width:
                raise ValueError(f"Line {line} of the import has not one value per field ({width}).")
            for value in values:
                if (
                    type(value) not in _SCALARS or (type(value) is float and not math.isfinite(value))
                ) and not (type(value) is list and all(type(item) in _SCALARS for item in value)):
                    raise TypeError(
                        f"Line {line} of the import holds {value!r}: import values must be JSON "
                        "(text, numbers, true/false, null, or a list of them)."
                    )
            copied.append([line, list(values)])
        return copied

    @property
    def import_spec(self) -> ImportSpec:
        """What an import does (``operation == "import"``)."""
        return ImportSpec.from_data(self.import_data.get("spec") or {})

    def without_rows(self) -> BulkRequest:
        """This import as a run's record keeps it: everything but the rows."""
        kept = {key: value for key, value in self.import_data.items() if key != "rows"}
        return dataclasses.replace(self, import_data=kept)

    @property
    def import_rows(self) -> list[tuple[int, list[Any]]]:
        """The rows an import writes: ``(line, values)`` in the spec's field order."""
        return [(line, values) for line, values in self.import_data.get("rows") or ()]

    def _check_update(self) -> None:
        """The fields: at least one, each once, each allowed, each with a value."""
        if not self.fields_to_update:
            raise BulkInputError(None, "Choose at least one field to change.")
        seen: set[str] = set()
        for name in self.fields_to_update:
            if name in seen:
                raise BulkInputError(name, f"'{name}' is listed twice in fields_to_update.")
            seen.add(name)
        outside = [name for name in self.fields_to_update if name not in self.bulk_fields]
        if outside:
            allowed = ", ".join(self.bulk_fields) or "none"
            raise BulkInputError(
                outside[0],
                f"{', '.join(map(repr, outside))} cannot be changed in bulk here (allowed: {allowed}).",
            )
        extra = sorted(set(self.field_data) - seen)
        if extra:
            raise BulkInputError(
                extra[0], f"field_data has {', '.join(map(repr, extra))}, not being changed."
            )
        missing = [name for name in self.fields_to_update if name not in self.field_data]
        if missing:
            raise BulkInputError(missing[0], f"field_data has no value for '{missing[0]}'.")

    # ----- the context a backend receives --------------------------------------------------

    def context(
        self,
        *,
        mode: Mode,
        user_id: int | str | None,
        selection_size: int,
        task_name: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> BulkContext:
        """The ``BulkContext`` of this request running in ``mode``: the one place it is built."""
        return BulkContext(
            mode=mode,
            model_label=self.model_label,
            user_id=user_id,
            selection_size=selection_size,
            atomic=self.atomic,
            dry_run=self.dry_run,
            task_name=task_name,
            operation=self.operation,
            batch_size=self.batch_size,
            extra={"view_name": self.view_name, **self._source(), **(extra or {})},
        )

    def _source(self) -> dict[str, Any]:
        if self.source_action is None:
            return {}
        return {"source_run": self.source_run, "source_action": self.source_action}

    # ----- stored form ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """This request as JSON-able data, for the task record; ``from_dict()`` reverses it."""
        data: dict[str, Any] = {"version": FORMAT_VERSION}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, MappingProxyType):
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            data[item.name] = value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **defaults: Any) -> BulkRequest:
        """A request from ``to_dict()`` output; raises ``ValueError`` naming what is wrong.

        ``defaults`` fill keys the stored form lacks (a task record passes its ``operation``
        and ``model_label``, which the payloads of earlier releases did not repeat).
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"A stored bulk request must be a dict, not {type(data).__name__}.")
        values = {**defaults, **data}
        version = values.pop("version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise ValueError(
                f"This bulk request was stored in format {version!r}; this release reads "
                f"format {FORMAT_VERSION}."
            )
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"A stored bulk request has unknown keys: {', '.join(unknown)}.")
        for name in ("fields_to_update", "bulk_fields"):
            if isinstance(values.get(name), list):
                values[name] = tuple(values[name])
        try:
            return cls(**values)
        except TypeError as exc:
            raise ValueError(f"A stored bulk request is not valid: {exc}") from None
