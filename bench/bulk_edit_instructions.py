"""Instructions of one sync bulk-edit submit against ``QuerySet.update()``, counted by callgrind.

    python -m bench.bulk_edit_instructions                  # N = 10,000, SQLite, 2 rounds
    python -m bench.bulk_edit_instructions --rows 1000 --rounds 3

Wall time on a shared 2-core machine moves by 2x with the other sessions' load; instruction
counts do not. The worker (under ``valgrind --tool=callgrind --instr-atstart=no``) builds the
same throw-away SQLite database as ``bench.bulk_edit`` (N books), warms each path, then for
each round and each path: resets the rows (and selects all for the view), switches
instrumentation on with ``callgrind_control``, makes the one call, switches it off and dumps
the counts. Counted: the ``bulk/edit/`` POST with the run ledger on (``pc_set``) and off
(``pc_set_off``), each through the test client as in ``bench.bulk_edit``, and
``Book.objects.order_by("pk").update(...)`` of every book in ``transaction.atomic()``
(``qs_update``). Each run is checked as ``bench.bulk_edit`` checks it (new values, ledger).
SQLite only: on PostgreSQL the database's work is in another process.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import ROOT

PATHS = ("pc_set", "pc_set_off", "qs_update")


def control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(os.getpid())], check=True, capture_output=True)


def worker(rows: int, rounds: int, db_dir: str) -> None:
    from bench import bulk_edit

    bulk_edit.setup_django("sqlite", str(Path(db_dir) / "bench.sqlite3"))
    bulk_edit.prepare(rows, 0)
    bench = bulk_edit.Bench()
    operations = {key: bench.operation(key) for key in PATHS}
    for round_ in range(rounds):
        for key in PATHS:
            bench.reset(key)
            if key != "qs_update":
                bench.select_all(key)
            control("--zero")
            control("--instr=on")
            operations[key]()
            control("--instr=off")
            control(f"--dump=r{round_}_{key}")
            bench.check(key)


def counts(out_dir: Path) -> dict[str, list[int]]:
    """Instructions per path, one per round, from the dumps' trigger and totals lines."""
    found: dict[str, list[int]] = {key: [] for key in PATHS}
    for part in sorted(out_dir.glob("callgrind.*.*")):
        text = part.read_text(errors="replace")
        trigger = re.search(r"^desc: Trigger: .*?r\d+_(\w+)$", text, re.M)
        total = re.search(r"^totals: (\d+)", text, re.M)
        if trigger and total and trigger.group(1) in found:
            found[trigger.group(1)].append(int(total.group(1)))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bulk_edit_instructions", description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.rows, args.rounds, args.worker)
        return 0
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        print("valgrind (with callgrind_control) is not installed.", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="powercrud-instructions-") as tmp:
        out = Path(tmp)
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}/callgrind.%p",
            sys.executable,
            "-m",
            "bench.bulk_edit_instructions",
            "--rows",
            str(args.rows),
            "--rounds",
            str(args.rounds),
            "--worker",
            tmp,
        ]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        found = counts(out)
    if any(len(values) != args.rounds for values in found.values()):
        print(f"missing dumps: {found}", file=sys.stderr)
        return 1
    base = min(found["qs_update"])
    print(f"SQLite, N = {args.rows:,}: instructions of one call (callgrind), {args.rounds} rounds")
    for key, label in (
        ("pc_set", "submit, run ledger on"),
        ("pc_set_off", "submit, run ledger off"),
        ("qs_update", "QuerySet.update()"),
    ):
        values = found[key]
        shown = ", ".join(f"{value / 1e6:,.1f} M" for value in values)
        print(f"  {label:24} {shown:30} {min(values) / base:6.2f}x update()")
    return 0


if __name__ == "__main__":
    sys.exit(main())
