"""Row errors from database errors, in the model's own words where the database names them.

When the database refuses a row for one of the model's ``Meta.constraints`` or for a unique
column, the error says what Django's own validation would have said ("Only credits can go
below zero.", "Asset with this Code already exists.") and names the field where there is
one. Anything else (a trigger, a foreign key, a type the column cannot hold) keeps the first
line of the database's message, prefixed "The database rejected the change:".

Which errors belong to a row at all is ``is_run_error``'s answer: any database error raised
by a row's write is that row's refusal (PostgreSQL gives a trigger's plain ``RAISE
EXCEPTION`` as a ``ProgrammingError``, an ``ASSERT`` too), except the errors that say
nothing about the row: the connection or the database itself failing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, InterfaceError, NotSupportedError, OperationalError, models

__all__ = ["DatabaseRefusal", "describe_db_error", "explain_db_error", "is_run_error"]

_SQLITE_UNIQUE = re.compile(r"^UNIQUE constraint failed: (?P<columns>.+)$")
_SQLITE_NAMED = re.compile(r"^(?:CHECK|UNIQUE) constraint failed: (?P<name>\w+)$")
_POSTGRES_KEY = re.compile(r"^Key \((?P<columns>[^)]+)\)=")
_POSTGRES_UNIQUE_VIOLATION = "23505"
# SQLSTATE classes about the session, not the row: 08 connection exception, 25 invalid
# transaction state (a read-only or aborted transaction), 53 insufficient resources,
# 57 operator intervention (a terminated backend, a cancelled query), 58 system error.
_RUN_SQLSTATE_CLASSES = ("08", "25", "53", "57", "58")
_RUN_ERRORS: tuple[type[BaseException], ...] = (InterfaceError, OperationalError, NotSupportedError)


def is_run_error(exc: BaseException) -> bool:
    """True when ``exc``, raised while writing a row, is about the run rather than the row.

    Those are: a lost or closed connection (``InterfaceError``), ``OperationalError`` (a
    terminated backend, a timeout, a deadlock, SQLite's busy database, a missing table),
    ``NotSupportedError``, and any error whose SQLSTATE class is about the session rather
    than the row. Every other database error is the row's own refusal (a constraint, a
    trigger, a value the column cannot hold) and is reported as that row's error.
    """
    if isinstance(exc, _RUN_ERRORS):
        return True
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate[:2] in _RUN_SQLSTATE_CLASSES


@dataclass(frozen=True)
class DatabaseRefusal:
    """Why the database refused a row: a readable ``message``, and the ``field`` when known."""

    message: str
    field: str | None = None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _diagnostics(exc: BaseException) -> Any:
    """psycopg's ``diag`` (constraint name, detail) of the error behind ``exc``, if any."""
    return getattr(exc.__cause__, "diag", None)


def _constraint_named(model: type[models.Model], name: str) -> models.BaseConstraint | None:
    return next((c for c in model._meta.constraints if c.name == name), None)


def _unique_message(model: type[models.Model], fields: tuple[str, ...]) -> DatabaseRefusal:
    error = model().unique_error_message(model, fields)
    return DatabaseRefusal(" ".join(error.messages), fields[0] if len(fields) == 1 else None)


def _fields_for_columns(model: type[models.Model], columns: list[str]) -> tuple[str, ...] | None:
    by_column = {f.column: f.name for f in model._meta.concrete_fields}
    names = tuple(by_column.get(column.strip().strip('"')) for column in columns)
    return None if None in names or not names else names  # type: ignore[return-value]


def _from_constraint(model: type[models.Model], name: str) -> DatabaseRefusal | None:
    constraint = _constraint_named(model, name)
    if constraint is None:
        return None
    fields = tuple(getattr(constraint, "fields", ()) or ())
    default = type(constraint).default_violation_error_message
    unique = isinstance(constraint, models.UniqueConstraint) and fields
    if unique and constraint.violation_error_message == default:  # Django's own wording
        return _unique_message(model, fields)
    message = constraint.get_violation_error_message()
    return DatabaseRefusal(str(message), fields[0] if len(fields) == 1 else None)


def _from_unique_columns(model: type[models.Model], exc: BaseException) -> DatabaseRefusal | None:
    columns: list[str] = []
    sqlite = _SQLITE_UNIQUE.match(_first_line(exc))
    if sqlite:  # "UNIQUE constraint failed: sample_asset.code, sample_asset.kind"
        table = model._meta.db_table
        qualified = [part.strip() for part in sqlite["columns"].split(",")]
        if not all(part.startswith(f"{table}.") for part in qualified):
            return None
        columns = [part[len(table) + 1 :] for part in qualified]
    elif getattr(exc.__cause__, "sqlstate", None) == _POSTGRES_UNIQUE_VIOLATION:
        detail = getattr(_diagnostics(exc), "message_detail", None) or ""
        postgres = _POSTGRES_KEY.match(detail)  # "Key (code)=(SAME) already exists."
        if postgres:
            columns = postgres["columns"].split(",")
    names = _fields_for_columns(model, columns) if columns else None
    return _unique_message(model, names) if names else None


def explain_db_error(exc: BaseException, model: type[models.Model] | None = None) -> DatabaseRefusal:
    """Why the database (or a save) refused a row of ``model``, as a user can read it."""
    if isinstance(exc, ValidationError):
        return DatabaseRefusal(" ".join(exc.messages))
    if model is not None and isinstance(exc, IntegrityError):
        name = getattr(_diagnostics(exc), "constraint_name", None)
        if not name:
            named = _SQLITE_NAMED.match(_first_line(exc))
            name = named["name"] if named else None
        found = _from_constraint(model, name) if name else None
        found = found or _from_unique_columns(model, exc)
        if found is not None:
            return found
    return DatabaseRefusal(f"The database rejected the change: {_first_line(exc)}")


def describe_db_error(exc: BaseException, model: type[models.Model] | None = None) -> str:
    """A readable one-line reason for a database or save-time error."""
    return explain_db_error(exc, model).message
