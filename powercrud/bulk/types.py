"""The contracts of the bulk core: plain, immutable data passed between layers.

``BulkContext`` goes in (it may cross a process boundary to a worker, so it pickles and
round-trips through JSON); ``BulkResult`` comes out (with ``RowError`` and ``RowChange``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, get_args

from powercrud.bulk.codec import JsonPk, frozen_json, json_pk, to_json
from powercrud.bulk.messages import summarise

Mode = Literal["sync", "async"]
Operation = Literal["update", "delete", "import"]

MAX_EXAMPLES = 5

_BACKEND_CONTRACT = (
    "A bulk update backend's persist_bulk_update() must return a BulkResult or a dict "
    "{'success': bool, 'success_records': int, 'errors': [...]}"
)


class BulkInputError(ValueError):
    """The bulk request itself is invalid (unknown field, bad value, bad operation).

    Raised before anything is written. ``field`` names the offending field, or is None
    when the problem is not about one field.
    """

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def check_run_kind(owner: str, operation: Any, model_label: Any) -> None:
    """``ValueError`` naming ``owner``'s field unless it is an update, delete or import of a model label."""
    if operation not in get_args(Operation):
        raise ValueError(f"{owner}.operation must be 'update', 'delete' or 'import', not {operation!r}.")
    if not isinstance(model_label, str) or model_label.count(".") != 1:
        raise ValueError(
            f"{owner}.model_label must be an 'app_label.model_name' label such as "
            f"'library.book', not {model_label!r}."
        )


@dataclass(frozen=True)
class BulkContext:
    """Everything a bulk service may need to know about the run, as plain data.

    ``atomic=True`` is all-or-nothing; ``atomic=False`` commits valid rows batch by batch
    and reports the rest. ``extra`` is read-only JSON-able data for application services.
    """

    mode: Mode
    model_label: str
    user_id: int | str | None
    selection_size: int
    atomic: bool = True
    dry_run: bool = False
    task_name: str | None = None
    operation: Operation = "update"
    batch_size: int = 1000
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False, compare=True)

    def __post_init__(self) -> None:
        if self.mode not in get_args(Mode):
            raise ValueError(f"BulkContext.mode must be 'sync' or 'async', not {self.mode!r}.")
        check_run_kind("BulkContext", self.operation, self.model_label)
        for name in ("selection_size", "batch_size"):
            number = getattr(self, name)
            if not isinstance(number, int) or isinstance(number, bool) or number < 0:
                raise ValueError(f"BulkContext.{name} must be a non-negative integer, not {number!r}.")
        if self.batch_size < 1:
            raise ValueError("BulkContext.batch_size must be at least 1.")
        if self.user_id is not None and not isinstance(self.user_id, int | str):
            raise ValueError(f"BulkContext.user_id must be an int, a str or None, not {self.user_id!r}.")
        object.__setattr__(self, "model_label", self.model_label.lower())
        object.__setattr__(self, "extra", frozen_json("BulkContext.extra", self.extra))

    def to_dict(self) -> dict[str, Any]:
        """This context as JSON-able data; ``BulkContext.from_dict`` reverses it."""
        return {
            "mode": self.mode,
            "model_label": self.model_label,
            "user_id": self.user_id,
            "selection_size": self.selection_size,
            "atomic": self.atomic,
            "dry_run": self.dry_run,
            "task_name": self.task_name,
            "operation": self.operation,
            "batch_size": self.batch_size,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BulkContext:
        """Rebuild a context from ``to_dict()`` output."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"BulkContext.from_dict() got unknown keys: {', '.join(unknown)}.")
        return cls(**data)

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        # MappingProxyType does not pickle; the JSON form does.
        return (_context_from_dict, (self.to_dict(),))


def _context_from_dict(data: dict[str, Any]) -> BulkContext:
    return BulkContext.from_dict(data)


@dataclass(frozen=True)
class RowError:
    """Why one row failed. ``pk`` is None only for errors that belong to no single row."""

    pk: JsonPk | None
    field: str | None
    messages: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.pk is not None:
            object.__setattr__(self, "pk", json_pk(self.pk))
        if isinstance(self.messages, str):
            object.__setattr__(self, "messages", (self.messages,))
        else:
            object.__setattr__(self, "messages", tuple(str(m) for m in self.messages))

    def to_dict(self) -> dict[str, Any]:
        """This error as JSON-able data."""
        return {"pk": self.pk, "field": self.field, "messages": list(self.messages)}

    def __str__(self) -> str:
        where = f"row {self.pk}" if self.pk is not None else "all rows"
        if self.field:
            where += f", field '{self.field}'"
        return f"{where}: {' '.join(self.messages)}"


@dataclass(frozen=True)
class RowChange:
    """One row's values before and after, for the fields being updated.

    For many-to-many fields ``old`` and ``new`` hold sorted tuples of related primary keys.
    """

    pk: Any
    old: Mapping[str, Any] = field(hash=False)
    new: Mapping[str, Any] = field(hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "old", MappingProxyType(dict(self.old)))
        object.__setattr__(self, "new", MappingProxyType(dict(self.new)))

    @property
    def changed_fields(self) -> tuple[str, ...]:
        """Names of the fields whose value differs between ``old`` and ``new``."""
        return tuple(name for name in self.new if self.old.get(name) != self.new[name])

    def to_dict(self) -> dict[str, Any]:
        """This change as JSON-able data."""
        return {"pk": json_pk(self.pk), "old": to_json(self.old), "new": to_json(self.new)}


class BulkHookError(Exception):
    """Raised by a hook to fail specific rows; each ``RowError`` names a row and a reason.

    A ``RowError`` whose ``pk`` is None fails every row of the batch.
    """

    def __init__(self, errors: Iterable[RowError], message: str | None = None) -> None:
        self.errors = tuple(errors)
        for error in self.errors:
            if not isinstance(error, RowError):
                raise TypeError(f"BulkHookError takes RowError objects, not {error!r}.")
        super().__init__(message or "; ".join(str(e) for e in self.errors) or "Rows rejected.")


@dataclass(frozen=True)
class BulkResult:
    """The outcome of one bulk run.

    ``success`` is True only when every selected row was handled without error.
    ``success_records`` counts rows written (or, in a dry run, rows that would be);
    ``changed`` counts rows whose stored values actually differ afterwards.
    """

    success: bool
    success_records: int
    errors: tuple[RowError, ...] = ()
    total: int = 0
    changed: int = 0
    dry_run: bool = False
    examples: tuple[RowChange, ...] = ()
    message: str = ""
    failed: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "errors", tuple(self.errors))
        object.__setattr__(self, "examples", tuple(self.examples)[:MAX_EXAMPLES])
        listed = self.errors_listed
        if self.failed is None:  # not counted by the run: the rows the errors name
            object.__setattr__(self, "failed", listed)
        elif not isinstance(self.failed, int) or isinstance(self.failed, bool) or self.failed < listed:
            raise ValueError(
                f"BulkResult.failed must be a whole number of at least the {listed} rows errors names, "
                f"not {self.failed!r}."
            )

    @property
    def failed_records(self) -> int:
        """How many distinct rows failed, as the run counted them (a service may list fewer
        errors than rows failed; without a count, the rows ``errors`` names)."""
        return self.failed or 0

    @property
    def passed(self) -> int:
        """Rows that did not fail (every row is checked, in all-or-nothing mode too)."""
        return max(0, self.total - self.failed_records)

    @property
    def errors_listed(self) -> int:
        """How many distinct failed rows ``errors`` names (at most ``failed_records``)."""
        return len({e.pk for e in self.errors if e.pk is not None})

    def to_dict(self) -> dict[str, Any]:
        """This result as JSON-able data; ``BulkResult.coerce`` accepts it back."""
        return {
            "success": self.success,
            "success_records": self.success_records,
            "errors": [e.to_dict() for e in self.errors],
            "total": self.total,
            "changed": self.changed,
            "dry_run": self.dry_run,
            "examples": [c.to_dict() for c in self.examples],
            "message": self.message,
            "failed": self.failed_records,
        }

    @classmethod
    def coerce(cls, value: Any, *, atomic: bool = True, verb: str = "Updated") -> BulkResult:
        """A ``BulkResult`` from a ``BulkResult`` or from the plain dict form a backend returns.

        ``atomic`` and ``verb`` word the summary of a dict that brings no ``message``.
        """
        if isinstance(value, BulkResult):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(f"{_BACKEND_CONTRACT}; got {type(value).__name__}.")
        missing = [key for key in ("success", "success_records") if key not in value]
        if missing:
            raise TypeError(f"{_BACKEND_CONTRACT}; the dict has no {' or '.join(map(repr, missing))}.")
        success = value["success"]
        if not isinstance(success, bool):
            raise TypeError(f"{_BACKEND_CONTRACT}; 'success' must be a bool, got {success!r}.")
        success_records = _count(value, "success_records")
        raw_errors = value.get("errors") or []
        if isinstance(raw_errors, str | bytes | Mapping) or not isinstance(raw_errors, Sequence):
            raise TypeError(f"{_BACKEND_CONTRACT}; 'errors' must be a list, got {raw_errors!r}.")
        errors = tuple(_coerce_error(i, item) for i, item in enumerate(raw_errors))
        listed = len({e.pk for e in errors if e.pk is not None})
        failed = _count(value, "failed") if "failed" in value else listed
        if failed < listed:
            raise TypeError(
                f"{_BACKEND_CONTRACT}; 'failed' ({failed}) is less than the rows 'errors' names ({listed})."
            )
        total = _count(value, "total") if "total" in value else success_records + failed
        changed = _count(value, "changed") if "changed" in value else success_records
        dry_run = bool(value.get("dry_run", False))
        examples = tuple(
            RowChange(pk=item["pk"], old=item.get("old", {}), new=item.get("new", {}))
            for item in value.get("examples") or ()
            if isinstance(item, Mapping) and "pk" in item
        )
        message = value.get("message")
        if not isinstance(message, str) or not message:
            general = next((" ".join(e.messages) for e in errors if e.pk is None), None)
            message = summarise(
                success=success,
                success_records=success_records,
                failed=failed,
                total=total,
                changed=changed,
                dry_run=dry_run,
                atomic=atomic,
                verb=verb,
                general=general,
            )
        return cls(
            success=success,
            success_records=success_records,
            errors=errors,
            total=total,
            changed=changed,
            dry_run=dry_run,
            examples=examples,
            message=message,
            failed=failed,
        )


def _count(value: Mapping[str, Any], key: str) -> int:
    number = value[key]
    if not isinstance(number, int) or isinstance(number, bool) or number < 0:
        raise TypeError(f"{_BACKEND_CONTRACT}; {key!r} must be a non-negative int, got {number!r}.")
    return number


def _coerce_error(index: int, item: Any) -> RowError:
    if isinstance(item, RowError):
        return item
    if isinstance(item, str):
        return RowError(pk=None, field=None, messages=(item,))
    if isinstance(item, Mapping):
        pk = item.get("pk")
        if pk is not None and not isinstance(pk, int | str | uuid.UUID):
            raise TypeError(
                f"{_BACKEND_CONTRACT}; errors[{index}]['pk'] must be an int or a str, got {pk!r}."
            )
        field_name = item.get("field")
        if field_name is not None and not isinstance(field_name, str):
            raise TypeError(
                f"{_BACKEND_CONTRACT}; errors[{index}]['field'] must be a str or None, got {field_name!r}."
            )
        if "messages" in item:
            messages = item["messages"]
            if isinstance(messages, str):
                messages = [messages]
            if not isinstance(messages, Sequence) or not all(isinstance(m, str) for m in messages):
                raise TypeError(
                    f"{_BACKEND_CONTRACT}; errors[{index}]['messages'] must be a list of "
                    f"strings, got {messages!r}."
                )
            return RowError(pk=_pk_or_none(pk), field=field_name, messages=tuple(messages))
        if isinstance(item.get("message"), str):
            return RowError(pk=_pk_or_none(pk), field=field_name, messages=(item["message"],))
        raise TypeError(
            f"{_BACKEND_CONTRACT}; errors[{index}] needs 'messages' (a list of strings) or "
            f"'message' (a string), got {dict(item)!r}."
        )
    raise TypeError(
        f"{_BACKEND_CONTRACT}; errors[{index}] must be a dict "
        f"{{'pk', 'field', 'messages'}} or a string, got {type(item).__name__}."
    )


def _pk_or_none(pk: Any) -> JsonPk | None:
    return None if pk is None else json_pk(pk)
