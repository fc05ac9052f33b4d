"""The package's imports run one way: views -> bulk core; jobs -> bulk core; dashboard -> jobs.

Read from the source (not by importing), so a back-edge fails here before it becomes a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "powercrud"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every ``powercrud``/``sample``/``tests`` module ``path`` imports, at any depth of the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.split(".")[0] in ("powercrud", "sample", "tests")}


MODULES = {module_name(path): imported(path) for path in PACKAGE.rglob("*.py")}


def importers_of(prefixes: tuple[str, ...], within: str) -> dict[str, list[str]]:
    """Modules under ``within`` that import a module under one of ``prefixes``."""
    found = {}
    for module, names in MODULES.items():
        if module == within or module.startswith(within + "."):
            bad = sorted(name for name in names if name.startswith(prefixes))
            if bad:
                found[module] = bad
    return found


def test_the_modules_were_found() -> None:
    assert {"powercrud.bulk.request", "powercrud.jobs.worker", "powercrud.dashboard.views"} <= set(MODULES)


def test_the_package_never_imports_the_demo_or_the_tests() -> None:
    assert importers_of(("sample", "tests"), "powercrud") == {}


@pytest.mark.parametrize(
    ("within", "forbidden"),
    [
        # The bulk core is request-free and knows nothing of the async side or the screens.
        (
            "powercrud.bulk",
            (
                "powercrud.jobs",
                "powercrud.models",
                "powercrud.views",
                "powercrud.mixins",
                "powercrud.dashboard",
                "powercrud.bulk_persistence",
                "powercrud.params",
            ),
        ),
        (
            "powercrud.bulk_persistence",
            ("powercrud.jobs", "powercrud.models", "powercrud.views", "powercrud.mixins"),
        ),
        # The async side calls into the core, never back into the screens.
        (
            "powercrud.jobs",
            ("powercrud.views", "powercrud.mixins", "powercrud.dashboard", "powercrud.params"),
        ),
        (
            "powercrud.models",
            ("powercrud.jobs", "powercrud.views", "powercrud.mixins", "powercrud.dashboard"),
        ),
        # Views and mixins do not reach into the dashboard that is built from them.
        ("powercrud.views", ("powercrud.dashboard", "powercrud.mixins")),
        ("powercrud.mixins", ("powercrud.dashboard",)),
    ],
)
def test_imports_run_one_way(within: str, forbidden: tuple[str, ...]) -> None:
    assert importers_of(forbidden, within) == {}


def test_nothing_in_the_package_uses_the_deprecated_tasks_alias() -> None:
    users = [
        module for module, names in MODULES.items() if any(n.startswith("powercrud.tasks") for n in names)
    ]
    assert users == []
