"""What the benchmarks share: the PostgreSQL server they use, each benchmark's own database
on it (created fresh and dropped afterwards), and a worker process that reports in JSON."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def postgres_reachable() -> bool:
    """Whether the PostgreSQL server answers and lets ``PG_USER`` in."""
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            pass
    except OSError:
        return False
    try:
        import psycopg

        with psycopg.connect(dbname="postgres", connect_timeout=2, host=PG_HOST, port=PG_PORT, user=PG_USER):
            return True
    except Exception:  # any failure means "not usable here"
        return False


def recreate_pg_database(name: str, drop_only: bool = False) -> None:
    """Drop database ``name`` (closing its connections) and, unless ``drop_only``, create it empty."""
    import psycopg

    with psycopg.connect(
        dbname="postgres", autocommit=True, host=PG_HOST, port=PG_PORT, user=PG_USER
    ) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if not drop_only:
            conn.execute(f"CREATE DATABASE {name}")


def run_json_worker(module: str, engine: str, options: list[str], *, label: str, pg_database: str) -> Any:
    """Run ``python -m <module> --worker --engine <engine> <options> --out <file>`` and return the
    JSON it wrote; on PostgreSQL in a fresh ``pg_database``, dropped afterwards."""
    if engine == "postgres":
        recreate_pg_database(pg_database)
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = handle.name
    cmd = [sys.executable, "-m", module, "--worker", "--engine", engine, *options, "--out", out]
    try:
        code = subprocess.call(cmd, cwd=ROOT)
        if code:
            raise SystemExit(f"the {label} worker failed (exit {code})")
        return json.loads(Path(out).read_text())
    finally:
        os.unlink(out)
        if engine == "postgres":
            recreate_pg_database(pg_database, drop_only=True)
