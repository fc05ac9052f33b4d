"""Uploaded import files kept between the screens of an import (upload, map, check, apply).

The file is read once, at upload; its table (header and rows, as JSON) is kept under
``IMPORT_UPLOAD_DIR`` (default: ``powercrud-imports`` in the system's temporary directory)
by a random token that the next screens carry. A stored table belongs to one user and one
view: ``load()`` refuses it to anyone else. Tables older than ``MAX_AGE`` are removed at the
next upload; an applied import removes its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from powercrud.bulk.codec import to_json
from powercrud.bulk.importfile import ImportTable
from powercrud.bulk.types import BulkInputError
from powercrud.conf import settings as pc_settings

__all__ = ["MAX_AGE", "StoredTable", "discard", "load", "save"]

MAX_AGE = 24 * 3600
"""Seconds an uploaded table is kept when no import applies it."""

_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


@dataclass(frozen=True)
class StoredTable:
    """An uploaded file's table, as the screens after the upload read it."""

    token: str
    name: str
    headers: tuple[str, ...]
    rows: tuple[tuple[int, tuple[Any, ...]], ...]

    def samples(self, column: int, count: int = 3) -> list[Any]:
        return ImportTable(format="", headers=self.headers, rows=self.rows).samples(column, count)


def _folder() -> Path:
    configured = pc_settings.IMPORT_UPLOAD_DIR
    folder = Path(configured) if configured else Path(tempfile.gettempdir()) / "powercrud-imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _expired() -> None:
    cutoff = time.time() - MAX_AGE
    for path in _folder().glob("*.json"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            continue


def save(table: ImportTable, *, name: str, owner: Any, view: str) -> str:
    """Keep ``table`` (read from file ``name``) for ``owner`` on ``view``; returns its token."""
    _expired()
    token = secrets.token_urlsafe(24)
    data = {
        "owner": to_json(owner),
        "view": view,
        "name": name,
        "headers": list(table.headers),
        "rows": [[line, to_json(list(values))] for line, values in table.rows],
    }
    path = _folder() / f"{token}.json"
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.chmod(path, 0o600)
    return token


def load(token: str, *, owner: Any, view: str) -> StoredTable:
    """The table kept under ``token`` for ``owner`` on ``view``; ``BulkInputError`` otherwise."""
    gone = BulkInputError(
        "file", "The uploaded file is no longer here (or was never uploaded): upload it again."
    )
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise gone
    try:
        with open(_folder() / f"{token}.json", encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        raise gone from None
    if data.get("owner") != to_json(owner) or data.get("view") != view:
        raise gone
    return StoredTable(
        token=token,
        name=str(data.get("name") or ""),
        headers=tuple(data["headers"]),
        rows=tuple((int(line), tuple(values)) for line, values in data["rows"]),
    )


def discard(token: str) -> None:
    """Remove the table kept under ``token`` (an applied import needs it no more)."""
    if _TOKEN.fullmatch(token or ""):
        with contextlib.suppress(OSError):
            (_folder() / f"{token}.json").unlink()
