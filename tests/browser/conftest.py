"""Fixtures for the browser tests: Debian's Chromium driven by playwright against ``live_server``.

The tests never download a browser. They use ``$POWERCRUD_CHROMIUM`` or ``chromium`` on PATH and
skip, saying so, when neither exists. Screenshots go to ``artifacts/screenshots/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
DESKTOP = {"width": 1366, "height": 900}
MOBILE = {"width": 390, "height": 844}

# Counts htmx settles so a test can wait for exactly the swap its action caused.
SETTLE_COUNTER = """
window.__pcSettled = 0;
document.addEventListener("htmx:afterSettle", function () { window.__pcSettled += 1; });
document.addEventListener("htmx:historyRestore", function () { window.__pcSettled += 1; });
"""


def chromium_executable() -> str | None:
    return os.environ.get("POWERCRUD_CHROMIUM") or shutil.which("chromium")


@pytest.fixture
def browser(live_server: Any, transactional_db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A headless Chromium, started after the live server and database so it stops before them."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    executable = chromium_executable()
    if not executable:
        pytest.skip("no Chromium found: install Debian's `chromium` or set POWERCRUD_CHROMIUM to its path")
    # playwright's sync API keeps an asyncio loop alive in this thread; Django's ORM refuses to run
    # while one exists unless told otherwise. The ORM calls here are plain synchronous test code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def new_page(browser: Any) -> Callable[..., Any]:
    """Open a page in a fresh context: ``new_page(viewport=MOBILE, session=cookie_value)``."""

    def open_page(viewport: dict[str, int] = DESKTOP, session: str | None = None, base_url: str = "") -> Any:
        context = browser.new_context(viewport=viewport, base_url=base_url or None)
        context.set_default_timeout(10_000)
        context.add_init_script(SETTLE_COUNTER)
        if session:
            context.add_cookies([{"name": "sessionid", "value": session, "url": base_url}])
        return context.new_page()

    return open_page


@pytest.fixture
def shoot() -> Callable[[Any, str], Path]:
    """Save a screenshot of ``page`` as ``artifacts/screenshots/<name>.png``."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str, full_page: bool = False) -> Path:
        path = SCREENSHOT_DIR / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take
