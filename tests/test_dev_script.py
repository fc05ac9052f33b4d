"""``dev.py``: the demo and test commands. (The demo settings a fresh clone starts from are
tested in tests/demo/test_project.py.)

Nothing here installs anything: pip, the phases and the network are replaced with fakes.
"""

from __future__ import annotations

import shutil
import socket
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dev

REPO = Path(dev.__file__).resolve().parent

GOOD_WHEEL = [
    *dev.WHEEL_MUST_HAVE,
    "powercrud/__init__.py",
    "powercrud/templates/powercrud/object_list.html",
    "powercrud-0.1.0.dist-info/METADATA",
]


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something is listening on, for as long as the test runs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ----- the port check ----------------------------------------------------------------------


def test_a_port_in_use_is_reported_with_its_number(listening: int):
    assert dev.port_problem("127.0.0.1", listening) == f"port {listening} on 127.0.0.1 is already in use"


def test_a_free_port_is_fine():
    assert dev.port_problem("127.0.0.1", free_port()) is None


def test_demo_on_a_busy_port_stops_before_installing_anything(
    listening: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    def no_install(*args: Any, **kwargs: Any) -> Path:
        raise AssertionError("the port check must come before the install")

    monkeypatch.setattr(dev, "ensure_venv", no_install)
    assert dev.main(["demo", "--port", str(listening)]) != 0
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert f"port {listening} on 127.0.0.1 is already in use" in err
    assert "--port N" in err


@pytest.mark.parametrize("value", ["0", "65536", "eighty"])
def test_port_must_be_a_port_number(value: str, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exit_info:
        dev.build_parser().parse_args(["demo", "--port", value])
    assert exit_info.value.code == 2
    assert "is not a port number" in capsys.readouterr().err


def test_port_defaults_to_8000():
    assert dev.build_parser().parse_args(["demo"]).port == 8000


# ----- installs and their stamps -------------------------------------------------------------


class FakePip:
    """Stands in for subprocess.check_call: records pip installs of the project."""

    def __init__(self) -> None:
        self.installs: list[str] = []

    def __call__(self, cmd: list[str], **kwargs: Any) -> int:
        if "-e" in cmd:
            self.installs.append(cmd[cmd.index("-e") + 1])
        return 0


@pytest.fixture
def fake_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, FakePip]:
    """A project root with a pyproject.toml, a venv that already exists, and a fake pip."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    pip = FakePip()
    monkeypatch.setattr(dev, "ROOT", root)
    monkeypatch.setattr(dev.subprocess, "check_call", pip)
    return venv, pip


def demo_install(venv: Path) -> None:
    dev.ensure_venv(venv, "python3", dev.DJANGO_52, extras="", satisfied_by=("dev",))


def test_the_demo_installs_runtime_dependencies_only(fake_project: tuple[Path, FakePip]):
    venv, pip = fake_project
    demo_install(venv)
    assert pip.installs == ["."]
    demo_install(venv)
    assert pip.installs == ["."], "a second demo run must not reinstall"


def test_the_test_command_installs_the_dev_extras_after_a_demo(fake_project: tuple[Path, FakePip]):
    venv, pip = fake_project
    demo_install(venv)
    dev.ensure_venv(venv, "python3", dev.DJANGO_52, extras="dev")
    dev.ensure_venv(venv, "python3", dev.DJANGO_52, extras="dev")
    assert pip.installs == [".", ".[dev]"]


def test_a_dev_install_serves_the_demo_too(fake_project: tuple[Path, FakePip]):
    venv, pip = fake_project
    dev.ensure_venv(venv, "python3", dev.DJANGO_52, extras="dev")
    demo_install(venv)
    assert pip.installs == [".[dev]"]


def test_editing_pyproject_reinstalls(fake_project: tuple[Path, FakePip]):
    venv, pip = fake_project
    dev.ensure_venv(venv, "python3", dev.DJANGO_52, extras="dev")
    pyproject = dev.ROOT / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n# changed\n")
    demo_install(venv)
    dev.ensure_venv(venv, "python3", dev.DJANGO_52, extras="dev")
    assert pip.installs == [".[dev]", ".", ".[dev]"]


def test_the_install_shows_its_steps(fake_project: tuple[Path, FakePip], capsys: pytest.CaptureFixture[str]):
    venv, _ = fake_project
    demo_install(venv)
    out = capsys.readouterr().out
    assert "[1/2] upgrading pip" in out
    assert "[2/2] pip install -e ." in out


def test_the_demo_on_postgres_installs_psycopg(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("POWERCRUD_DB", raising=False)
    assert dev.demo_extras() == "xlsx"
    monkeypatch.setenv("POWERCRUD_DB", "postgres")
    assert dev.demo_extras() == "postgres,xlsx"


def test_the_dev_extras_carry_the_release_and_docs_tools():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    dev_extras = project["optional-dependencies"]["dev"]
    names = {requirement.split(">")[0].split("[")[0] for requirement in dev_extras}
    assert {"build", "twine", "mkdocs", "mypy"} <= names


# ----- the test command's phases -------------------------------------------------------------


def test_pytest_collecting_nothing_is_a_failure(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(dev, "run", lambda *args, **kwargs: 5)
    assert dev.pytest_phase(Path("python"), "label", {}, []) is False


def test_the_docs_build_is_skipped_without_mkdocs_yml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setattr(dev, "ROOT", tmp_path)
    monkeypatch.setattr(dev, "run", lambda *args, **kwargs: pytest.fail("nothing should run"))
    assert dev.docs_phase(Path("python")) is None
    assert "No mkdocs.yml" in capsys.readouterr().out


def test_the_docs_build_is_strict_into_a_temporary_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "mkdocs.yml").write_text("site_name: x\n")
    commands: list[list[str]] = []
    monkeypatch.setattr(dev, "ROOT", tmp_path)
    monkeypatch.setattr(dev, "run", lambda cmd, **kwargs: commands.append(cmd) or 1)
    assert dev.docs_phase(Path("python")) is False
    [cmd] = commands
    assert cmd[1:5] == ["-m", "mkdocs", "build", "--strict"]
    site = Path(cmd[cmd.index("--site-dir") + 1])
    assert not site.is_relative_to(tmp_path) and not site.exists()


@pytest.fixture
def quiet_phases(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool | None]:
    """Every phase of cmd_test replaced by an outcome the test can set."""
    outcomes: dict[str, bool | None] = {"lint": True, "mypy": True, "docs": None, "release": True}
    monkeypatch.setattr(dev, "ensure_venv", lambda *args, **kwargs: Path("python"))
    monkeypatch.setattr(dev, "ensure_chromium", lambda: "/usr/bin/chromium")
    monkeypatch.setattr(dev, "reachable", lambda host, port: False)
    monkeypatch.setattr(dev, "find_python312", lambda: None)
    monkeypatch.setattr(dev, "pytest_phase", lambda *args: True)
    for name in ("lint", "mypy", "docs", "release"):
        monkeypatch.setattr(dev, f"{name}_phase", lambda python, name=name: outcomes[name])
    return outcomes


def summary(out: str) -> dict[str, str]:
    lines = out.split("==> Summary", 1)[1].strip().splitlines()
    return dict(line.split() for line in lines)


def test_the_summary_has_a_line_per_phase(quiet_phases: dict[str, bool | None], capsys: Any):
    assert dev.cmd_test([]) == 0
    assert summary(capsys.readouterr().out) == {
        "lint": "ok",
        "mypy": "ok",
        "docs": "skipped",
        "sqlite": "ok",
        "postgres": "skipped",
        "django6": "skipped",
        "release": "ok",
    }


@pytest.mark.parametrize("phase", ["mypy", "docs", "release"])
def test_a_failed_phase_fails_the_command(phase: str, quiet_phases: dict[str, bool | None], capsys: Any):
    quiet_phases[phase] = False
    assert dev.cmd_test([]) == 1
    assert summary(capsys.readouterr().out)[phase] == "FAILED"


# ----- the release checks --------------------------------------------------------------------


def test_a_complete_wheel_has_no_problems():
    assert dev.wheel_problems(GOOD_WHEEL) == []


def test_a_wheel_without_templates_or_static_files_is_refused():
    names = [name for name in GOOD_WHEEL if "/templates/" not in name and "/static/" not in name]
    problems = dev.wheel_problems(names)
    assert "missing powercrud/templates/powercrud/base.html" in problems
    assert "missing powercrud/static/powercrud/favicon.svg" in problems
    assert "has no powercrud/templates/" in problems
    assert "has no powercrud/static/" in problems


@pytest.mark.parametrize("folder", ["sample", "tests", "bench", "release"])
def test_a_wheel_shipping_the_repository_extras_is_refused(folder: str):
    problems = dev.wheel_problems([*GOOD_WHEEL, f"{folder}/__init__.py", f"{folder}/x.py"])
    assert problems == [f"ships {folder}/ (2 files, e.g. {folder}/__init__.py)"]


def test_the_smoke_project_is_outside_the_package_and_linted():
    assert (REPO / "release" / "smoke.py").exists()
    assert "release" in dev.LINT_PATHS
    assert not (REPO / "powercrud" / "smoke.py").exists()


def test_the_smoke_run_cannot_see_the_checkout(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.settings")
    env = dev.clean_env()
    assert "PYTHONPATH" not in env and "DJANGO_SETTINGS_MODULE" not in env


def test_the_sdist_must_not_carry_the_demo_or_the_tests() -> None:
    top = "powercrud-0.1.0"
    good = [top, f"{top}/pyproject.toml", *(f"{top}/{name}" for name in GOOD_WHEEL)]
    assert dev.sdist_problems(good) == []
    problems = dev.sdist_problems([*good, f"{top}/tests/test_views.py", f"{top}/sample/models.py"])
    assert problems == [
        "ships sample/ (1 files, e.g. sample/models.py)",
        "ships tests/ (1 files, e.g. tests/test_views.py)",
    ]
