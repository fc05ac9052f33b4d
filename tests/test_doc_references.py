"""Every test the docs cite as proof (``tests/...py::test_name``) exists where they say."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CITED = re.compile(r"(tests/[\w/]+\.py)::(\w+)")
SHORT = re.compile(r"`(test_[\w]+\.py)::(\w+)")  # a file named without its folder


def _cited() -> list[tuple[str, str, str]]:
    found = []
    for page in sorted((ROOT / "docs").rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for pattern in (CITED, SHORT):
            found += [(page.name, path, name) for path, name in pattern.findall(text)]
    return found


def _defines(path: Path, name: str) -> bool:
    return re.search(rf"^(async )?def {name}\(", path.read_text(encoding="utf-8"), re.M) is not None


def test_the_docs_cite_tests() -> None:
    assert len(_cited()) > 20  # the pattern still finds the docs' citations


def test_every_cited_test_exists() -> None:
    missing = []
    for page, path, name in _cited():
        # "tests/x.py::name" names its file; "test_x.py::name" is somewhere under tests/
        candidates = [ROOT / path] if path.startswith("tests/") else list((ROOT / "tests").rglob(path))
        if not any(candidate.exists() and _defines(candidate, name) for candidate in candidates):
            missing.append(f"{page}: {path}::{name}")
    assert not missing, "docs cite tests that do not exist:\n" + "\n".join(missing)
