#!/usr/bin/env python3
"""Set up and run powercrud on a fresh machine, with nothing but Python 3.11+.

    python3 dev.py demo     install, migrate, seed, then run the demo server and a worker
                            (--port N when 8000 is taken, --books N for the first seed)
    python3 dev.py test     install, then run every check: ruff, Django checks, mypy, the docs
                            build, the whole test suite (SQLite, and PostgreSQL, Redis and
                            Django 6 when this machine has them) and a release build smoke test

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
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_DJ6 = ROOT / ".venv-django6"
RELEASE_DIR = ROOT / "release"


def say(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def warn(message: str) -> None:
    print(f"\n!! {message}", flush=True)


def run(cmd: list[str], **kwargs: object) -> int:
    kwargs.setdefault("cwd", ROOT)
    return subprocess.call(cmd, **kwargs)  # type: ignore[call-overload]


# ----- environments --------------------------------------------------------------------------


def install_digest(requirements: list[str], extras: str) -> str:
    """What an install depends on: pyproject.toml, the extra requirements and the extras."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(" ".join(requirements).encode())
    digest.update(f"[{extras}]".encode())
    return digest.hexdigest()


def stamp_path(venv: Path, extras: str) -> Path:
    """One stamp per kind of install, so demo and test runs do not undo each other."""
    return venv / f".powercrud-installed-{extras.replace(',', '-') or 'runtime'}"


def is_installed(venv: Path, requirements: list[str], extras: str) -> bool:
    stamp = stamp_path(venv, extras)
    return stamp.exists() and stamp.read_text() == install_digest(requirements, extras)


def ensure_venv(
    venv: Path,
    python: str,
    requirements: list[str],
    extras: str = "dev",
    satisfied_by: tuple[str, ...] = (),
) -> Path:
    """Create ``venv`` with ``python`` and install powercrud (editable) with ``extras``.

    Nothing is installed when the stamp for ``extras`` (or for one of ``satisfied_by``, a
    superset such as ``dev``) matches the current inputs.
    """
    bin_python = venv / "bin" / "python"
    if not bin_python.exists():
        say(f"Creating {venv.name} with {python}")
        subprocess.check_call([python, "-m", "venv", str(venv)])
    if any(is_installed(venv, requirements, e) for e in (extras, *satisfied_by)):
        return bin_python
    target = f".[{extras}]" if extras else "."
    what = f"with its {extras} extras" if extras else "and its runtime dependencies"
    say(f"Installing powercrud {what} into {venv.name} (up to a minute the first time)")
    started = time.monotonic()
    pip = [str(bin_python), "-m", "pip", "install", "--disable-pip-version-check"]
    print("  [1/2] upgrading pip", flush=True)
    subprocess.check_call([*pip, "-q", "--upgrade", "pip"])
    print(f"  [2/2] pip install -e {target} {' '.join(requirements)}", flush=True)
    subprocess.check_call([*pip, "-e", target, *requirements], cwd=ROOT)
    stamp_path(venv, extras).write_text(install_digest(requirements, extras))
    print(f"  installed in {time.monotonic() - started:.0f} s", flush=True)
    return bin_python


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def port_problem(host: str, port: int) -> str | None:
    """Why the demo server could not listen on ``host:port``, or None when it could.

    Binds the way ``runserver`` does (with SO_REUSEADDR, so a recently closed port is fine).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except PermissionError:
            return f"port {port} on {host} needs more privileges than this user has"
        except OSError:
            return f"port {port} on {host} is already in use"
    return None


def port_number(text: str) -> int:
    """argparse type for --port: an integer from 1 to 65535."""
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1 to 65535)")
    return port


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


# ----- test phases ---------------------------------------------------------------------------


DJANGO_52 = ["Django>=5.2,<6.0"]
LINT_PATHS = ["powercrud", "sample", "tests", "bench", "release", "dev.py"]


def lint_phase(python: Path) -> bool:
    say("Static checks: ruff, Django system checks, migrations up to date")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    paths = [p for p in LINT_PATHS if (ROOT / p).exists()]
    return (
        run([str(python), "-m", "ruff", "check", *paths]) == 0
        and run([str(python), "manage.py", "check", "--fail-level", "WARNING"], env=env) == 0
        and run([str(python), "manage.py", "makemigrations", "--check", "--dry-run"], env=env) == 0
    )


def mypy_phase(python: Path) -> bool:
    say("Static checks: mypy (configured in pyproject.toml)")
    return run([str(python), "-m", "mypy"]) == 0


def docs_phase(python: Path) -> bool | None:
    if not (ROOT / "mkdocs.yml").exists():
        warn("No mkdocs.yml at the repository root: the docs build is skipped.")
        return None
    say("Docs: mkdocs build --strict")
    with tempfile.TemporaryDirectory(prefix="powercrud-site-") as site:
        return run([str(python), "-m", "mkdocs", "build", "--strict", "--site-dir", site]) == 0


def pytest_phase(python: Path, label: str, env: dict[str, str], args: list[str]) -> bool:
    say(f"Tests: {label}")
    code = run([str(python), "-m", "pytest", *args], env={**os.environ, **env})
    if code == 5:
        print(f"!! {label}: pytest collected no tests; that is a failure here.")
    return code == 0


# ----- release phase -------------------------------------------------------------------------


# Files the wheel must ship, and top-level folders it must not.
WHEEL_MUST_HAVE = (
    "powercrud/py.typed",
    "powercrud/migrations/__init__.py",
    "powercrud/templates/powercrud/base.html",
    "powercrud/static/powercrud/powercrud.css",
    "powercrud/static/powercrud/powercrud.js",
    "powercrud/static/powercrud/vendor/htmx.min.js",
    "powercrud/static/powercrud/vendor/tom-select/tom-select.complete.min.js",
    "powercrud/static/powercrud/vendor/tom-select/LICENSE",
    "powercrud/static/powercrud/relations.js",
    "powercrud/static/powercrud/favicon.svg",
)
WHEEL_MUST_NOT_HAVE = ("sample", "tests", "bench", "release", "docs")
# Variables that could make the smoke run import something other than the installed wheel.
LEAKY_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV")


def wheel_problems(names: Iterable[str]) -> list[str]:
    """What is wrong with a wheel whose archive holds ``names`` (empty when nothing is)."""
    names = list(names)
    problems = [f"missing {name}" for name in WHEEL_MUST_HAVE if name not in names]
    for folder in WHEEL_MUST_NOT_HAVE:
        shipped = [name for name in names if name.startswith(f"{folder}/")]
        if shipped:
            problems.append(f"ships {folder}/ ({len(shipped)} files, e.g. {shipped[0]})")
    for kind in ("templates", "static"):
        if not any(name.startswith(f"powercrud/{kind}/") for name in names):
            problems.append(f"has no powercrud/{kind}/")
    return problems


def build_dists(python: Path, outdir: Path) -> list[Path]:
    """Build the sdist and, from it, the wheel into ``outdir``; [] when the build fails."""
    print("  [1/5] python -m build (sdist, then the wheel from the sdist)", flush=True)
    if run([str(python), "-m", "build", "-q", "--outdir", str(outdir), str(ROOT)]) != 0:
        return []
    return sorted(outdir.glob("*.whl")) + sorted(outdir.glob("*.tar.gz"))


def sdist_problems(names: Iterable[str]) -> list[str]:
    """What is wrong with an sdist whose archive holds ``names`` (its top folder stripped)."""
    inner = [name.split("/", 1)[1] for name in names if "/" in name]
    return [problem for problem in wheel_problems(inner) if problem.startswith("ships")]


def check_dists(wheel: Path, sdist: Path) -> bool:
    print(f"  [3/5] contents of {wheel.name} and {sdist.name}", flush=True)
    with zipfile.ZipFile(wheel) as archive:
        problems = [f"the wheel {problem}" for problem in wheel_problems(archive.namelist())]
    with tarfile.open(sdist) as archive:
        problems += [f"the sdist {problem}" for problem in sdist_problems(archive.getnames())]
    for problem in problems:
        print(f"  !! {problem}")
    return not problems


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in LEAKY_ENV}


def install_wheel(wheel: Path, venv: Path) -> Path | None:
    """A fresh venv with only ``wheel`` and its declared dependencies; its python, or None."""
    print("  [4/5] a clean venv with only the wheel and its declared dependencies", flush=True)
    if run([sys.executable, "-m", "venv", str(venv)], env=clean_env()) != 0:
        return None
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "--disable-pip-version-check"]
    if run([*pip, "install", "-q", str(wheel)], env=clean_env()) != 0:
        return None
    if run([*pip, "check"], env=clean_env()) != 0:
        return None
    return python


def serve_one_screen(python: Path, workdir: Path) -> bool:
    """Run release/smoke.py from a copy outside the checkout, with the clean venv's python."""
    print("  [5/5] a throw-away project: migrate, then GET the task list as a superuser", flush=True)
    project = workdir / "project"
    shutil.copytree(RELEASE_DIR, project, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3"))
    env = {**clean_env(), "POWERCRUD_SMOKE_DIR": str(project)}
    return run([str(python), "smoke.py"], cwd=project, env=env) == 0


def release_steps(python: Path, workdir: Path) -> bool:
    dists = build_dists(python, workdir / "dist")
    wheels = [d for d in dists if d.suffix == ".whl"]
    if len(wheels) != 1 or len(dists) != 2:
        print(f"  !! expected one wheel and one sdist, got {[d.name for d in dists]}")
        return False
    print(f"  [2/5] twine check --strict {' '.join(d.name for d in dists)}", flush=True)
    if run([str(python), "-m", "twine", "check", "--strict", *map(str, dists)]) != 0:
        return False
    sdist = next(d for d in dists if d.suffix != ".whl")
    if not check_dists(wheels[0], sdist):
        return False
    clean_python = install_wheel(wheels[0], workdir / "venv")
    return clean_python is not None and serve_one_screen(clean_python, workdir)


def release_phase(python: Path) -> bool:
    say("Release: build, twine check, wheel contents, install in a clean venv, serve one screen")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="powercrud-release-") as tmp:
        ok = release_steps(python, Path(tmp))
    print(f"  release phase: {'ok' if ok else 'FAILED'} in {time.monotonic() - started:.0f} s")
    return ok


# ----- commands ------------------------------------------------------------------------------


def print_summary(results: dict[str, bool | None]) -> None:
    """One line per phase: True passed, False failed, None skipped (a notice said why)."""
    say("Summary")
    for name, outcome in results.items():
        print(f"  {name:10} {'skipped' if outcome is None else 'ok' if outcome else 'FAILED'}")


def cmd_test(extra: list[str]) -> int:
    python = ensure_venv(VENV, sys.executable, DJANGO_52, extras="dev")
    results: dict[str, bool | None] = {}
    results["lint"] = lint_phase(python)
    results["mypy"] = mypy_phase(python)
    results["docs"] = docs_phase(python)
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
        warn("PostgreSQL is not reachable on 127.0.0.1:5432: its run is skipped.")
        results["postgres"] = None
    newer = find_python312()
    if newer:
        dj6 = ensure_venv(VENV_DJ6, newer, ["Django>=6.0,<6.2"], extras="dev")
        results["django6"] = pytest_phase(
            dj6, f"SQLite, Django 6 ({newer})", {}, ["-m", "not browser", *extra]
        )
    else:
        warn("No Python 3.12+ found: the Django 6 run is skipped.")
        results["django6"] = None
    results["release"] = release_phase(python)
    print_summary(results)
    return 0 if all(outcome is not False for outcome in results.values()) else 1


def demo_extras() -> str:
    """The demo needs powercrud's runtime dependencies, openpyxl for its Excel export, and psycopg
    on PostgreSQL."""
    return "postgres,xlsx" if os.environ.get("POWERCRUD_DB") == "postgres" else "xlsx"


def cmd_demo(books: int, port: int) -> int:
    problem = port_problem("127.0.0.1", port)
    if problem:
        print(f"dev.py demo: {problem}; pass --port N to use another one.", file=sys.stderr)
        return 2
    python = ensure_venv(VENV, sys.executable, DJANGO_52, extras=demo_extras(), satisfied_by=("dev",))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "sample.settings"}
    say("Preparing the demo database (SQLite in ./db unless POWERCRUD_DATA_DIR says otherwise)")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the demo server and worker")
    demo.add_argument("--books", type=int, default=2000, help="books to seed on first run")
    demo.add_argument("--port", type=port_number, default=8000, help="port for the server (default 8000)")
    test = sub.add_parser("test", help="run every check and the whole test suite")
    test.add_argument("pytest_args", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036  (this script may be started by an older python3)
        sys.exit("powercrud needs Python 3.11 or newer.")
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        return cmd_demo(args.books, args.port)
    return cmd_test(args.pytest_args)


if __name__ == "__main__":
    sys.exit(main())
