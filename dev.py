#!/usr/bin/env python3
"""Set up and run powercrud on a fresh machine, with nothing but Python 3.11+.

    python3 dev.py demo     install, migrate, seed, then run the demo server and a worker
    python3 dev.py test     install, then run the whole test suite (SQLite, and PostgreSQL,
                            Redis and Django 6 when this machine has them)

Everything is installed into ./.venv (and ./.venv-django6 for the Django 6 run).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_DJ6 = ROOT / ".venv-django6"


def say(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def run(cmd: list[str], **kwargs: object) -> int:
    return subprocess.call(cmd, cwd=ROOT, **kwargs)  # type: ignore[arg-type]


def ensure_venv(venv: Path, python: str, extra_requirements: list[str]) -> Path:
    """Create ``venv`` with ``python`` and install the project (again only when inputs changed)."""
    bin_python = venv / "bin" / "python"
    if not bin_python.exists():
        say(f"Creating {venv.name} with {python}")
        subprocess.check_call([python, "-m", "venv", str(venv)])
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(" ".join(extra_requirements).encode())
    stamp = venv / ".powercrud-installed"
    if not stamp.exists() or stamp.read_text() != digest.hexdigest():
        say(f"Installing powercrud and its dev dependencies into {venv.name}")
        pip = [str(bin_python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        subprocess.check_call([*pip, "--upgrade", "pip"])
        subprocess.check_call([*pip, "-e", ".[dev]", *extra_requirements], cwd=ROOT)
        stamp.write_text(digest.hexdigest())
    return bin_python


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def find_python312() -> str | None:
    for candidate in ("python3.12", "python3.13"):
        found = shutil.which(candidate)
        if found and subprocess.call([found, "-c", "import venv"], stderr=subprocess.DEVNULL) == 0:
            return found
    for pattern in ("3.12*", "3.13*"):
        for path in sorted((Path.home() / ".pyenv" / "versions").glob(pattern)):
            exe = path / "bin" / "python3"
            if exe.exists():
                return str(exe)
    return None


def ensure_chromium() -> str | None:
    """Debian's Chromium for the browser tests; installed with apt-get when we are root."""
    found = shutil.which("chromium")
    if found:
        return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        say("Installing Debian's chromium for the browser tests (apt-get)")
        subprocess.call(["apt-get", "update", "-qq"])
        subprocess.call(["apt-get", "install", "-y", "-qq", "chromium"])
    return shutil.which("chromium")


def pytest_phase(python: Path, label: str, env: dict[str, str], args: list[str]) -> bool:
    say(f"Tests: {label}")
    code = run([str(python), "-m", "pytest", *args], env={**os.environ, **env})
    if code == 5:
        print(f"!! {label}: pytest collected no tests; that is a failure here.")
    return code == 0


DJANGO_52 = ["Django>=5.2,<6.0"]
LINT_PATHS = ["powercrud", "sample", "tests", "bench", "dev.py"]


def cmd_test(extra: list[str]) -> int:
    python = ensure_venv(VENV, sys.executable, DJANGO_52)
    results: dict[str, bool] = {}
    say("Static checks: ruff, Django system checks, migrations up to date")
    results["lint"] = (
        run([str(python), "-m", "ruff", "check", *[p for p in LINT_PATHS if (ROOT / p).exists()]]) == 0
        and run(
            [str(python), "manage.py", "check", "--fail-level", "WARNING"],
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        )
        == 0
        and run(
            [str(python), "manage.py", "makemigrations", "--check", "--dry-run"],
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        )
        == 0
    )
    browser_env: dict[str, str] = {}
    chromium = ensure_chromium()
    if chromium:
        browser_env["POWERCRUD_CHROMIUM"] = chromium
    elif os.environ.get("CI"):
        print("!! Chromium is missing and could not be installed; browser tests cannot run.")
        results["chromium"] = False
    else:
        print("!! Chromium not found: browser tests will be skipped (apt-get install chromium).")
    results["sqlite"] = pytest_phase(python, "SQLite, Django 5.2", browser_env, extra)
    if reachable("127.0.0.1", 5432):
        env = {"POWERCRUD_TEST_DB": "postgres"}
        if reachable("127.0.0.1", 6379):
            env["POWERCRUD_TEST_REDIS"] = "redis://127.0.0.1:6379/15"
        results["postgres"] = pytest_phase(
            python,
            "PostgreSQL" + (" + Redis" if len(env) > 1 else ""),
            env,
            ["-m", "not browser", *extra],
        )
    else:
        print("\n!! PostgreSQL is not reachable on 127.0.0.1:5432: its run is skipped.")
    newer = find_python312()
    if newer:
        dj6 = ensure_venv(VENV_DJ6, newer, ["Django>=6.0,<6.2"])
        results["django6"] = pytest_phase(
            dj6, f"SQLite, Django 6 ({newer})", {}, ["-m", "not browser", *extra]
        )
    else:
        print("\n!! No Python 3.12+ found: the Django 6 run is skipped.")
    say("Summary")
    for name, ok in results.items():
        print(f"  {name:10} {'ok' if ok else 'FAILED'}")
    return 0 if all(results.values()) else 1


def cmd_demo(books: int, port: int) -> int:
    python = ensure_venv(VENV, sys.executable, DJANGO_52)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "sample.settings"}
    (ROOT / "db").mkdir(exist_ok=True)
    say("Preparing the demo database (SQLite in ./db)")
    subprocess.check_call([str(python), "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env)
    subprocess.check_call([str(python), "manage.py", "setup_demo", "--books", str(books)], cwd=ROOT, env=env)
    say("Starting a django-q2 worker (ORM broker)")
    worker = subprocess.Popen([str(python), "manage.py", "qcluster"], cwd=ROOT, env=env)
    print(f"\n  Demo: http://127.0.0.1:{port}/   sign in as admin / admin (or viewer / viewer)\n", flush=True)
    try:
        return subprocess.call(
            [str(python), "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], cwd=ROOT, env=env
        )
    except KeyboardInterrupt:
        return 0
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()


def main() -> int:
    if sys.version_info < (3, 11):  # noqa: UP036  (this script may be started by an older python3)
        sys.exit("powercrud needs Python 3.11 or newer.")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the demo server and worker")
    demo.add_argument("--books", type=int, default=2000, help="books to seed on first run")
    demo.add_argument("--port", type=int, default=8000)
    test = sub.add_parser("test", help="run the whole test suite")
    test.add_argument("pytest_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.command == "demo":
        return cmd_demo(args.books, args.port)
    return cmd_test(args.pytest_args)


if __name__ == "__main__":
    sys.exit(main())
