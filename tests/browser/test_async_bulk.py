"""An async bulk edit in a real browser, against a real ``runserver`` and a real ``qcluster``.

The module starts both as subprocesses on a file-based SQLite database in WAL mode in a
temporary directory (tests/browser/settings_live.py), seeds it with ``seed_books`` and
``setup_demo``, signs in through the login form, selects all matching books, applies a bulk
edit large enough to run on the worker, and watches the task: the progress bar in the modal
and on the task dashboard must move before the task ends "Succeeded" with its counts.

Run with ``pytest -m browser``. Screenshots land in ``artifacts/screenshots/async-*.png``.
``POWERCRUD_LIVE_BOOKS`` and ``POWERCRUD_LIVE_BATCH_SIZE`` change the size of the run.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import (
    CHROMIUM_ARGS,
    DESKTOP,
    SCREENSHOT_DIR,
    SETTLE_COUNTER,
    chromium_executable,
)
from tests.browser.helpers import record_failures

pytestmark = [pytest.mark.browser, pytest.mark.demo]  # the demo in a real runserver and qcluster

ROOT = Path(__file__).resolve().parents[2]
# 30,000 books in batches of one: 30,000 batches, about seven seconds on the worker (far
# smaller batches than a real site would use, so that the progress has time to move: with
# batches of two the run took four seconds and the dashboard, which polls every two, once saw
# only one value between 0 and 100).
BOOKS = int(os.environ.get("POWERCRUD_LIVE_BOOKS", "30000"))
BATCH_SIZE = int(os.environ.get("POWERCRUD_LIVE_BATCH_SIZE", "1"))
TASK_TIMEOUT = 30.0
"""Seconds the task may take from submit to its end before the test gives up."""

PREPARE = f"""
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
call_command("seed_books", books={BOOKS}, quiet=True)
call_command("setup_demo", books=0)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveSite:
    """A scratch database with a web server and a worker on it, each in its own process group."""

    work_dir: Path
    port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database(self) -> Path:
        return self.work_dir / "live.sqlite3"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.browser.settings_live",
            "POWERCRUD_LIVE_DIR": str(self.work_dir),
            "POWERCRUD_LIVE_CLUSTER": f"powercrud-live-{os.getpid()}-{self.port}",
            "POWERCRUD_LIVE_BATCH_SIZE": str(BATCH_SIZE),
            "PYTHONUNBUFFERED": "1",
        }

    def prepare(self) -> None:
        done = subprocess.run(
            [sys.executable, "-c", PREPARE],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode:
            raise AssertionError(f"preparing the database failed:\n{done.stdout}\n{done.stderr}")

    def start(self, name: str, *args: str) -> None:
        log = (self.work_dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: qcluster forks its workers
        )

    def wait_until_serving(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.processes["web"].poll() is not None:
                raise AssertionError(f"runserver exited:\n{self.logs()}")
            try:
                with urllib.request.urlopen(f"{self.url}/accounts/login/", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"runserver did not answer within {timeout} s:\n{self.logs()}")

    def stop(self) -> None:
        """SIGTERM each leader (qcluster stops its own workers), then SIGKILL what is left."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # stragglers in its group, if any
            process.wait(5)
        self.processes.clear()

    def logs(self) -> str:
        parts = []
        for path in sorted(self.work_dir.glob("*.log")):
            parts.append(f"--- {path.name} ---\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read the shared database directly, as a third process would."""
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=10) as db:
            return db.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def live_site() -> Iterator[LiveSite]:
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    if not chromium_executable():
        pytest.skip("no Chromium found: install Debian's `chromium` or set POWERCRUD_CHROMIUM to its path")
    site = LiveSite(Path(tempfile.mkdtemp(prefix="powercrud-live-")))
    began = time.monotonic()
    try:
        site.prepare()
        prepared = time.monotonic()
        site.start("web", "runserver", f"127.0.0.1:{site.port}", "--noreload", "--insecure")
        site.start("worker", "qcluster")
        site.wait_until_serving()
        up = time.monotonic() - prepared
        print(f"live site: data {prepared - began:.1f} s, server up {up:.1f} s later")
        yield site
    finally:
        stopping = time.monotonic()
        site.stop()
        shutil.rmtree(site.work_dir, ignore_errors=True)
        print(f"live site stopped in {time.monotonic() - stopping:.1f} s")


@pytest.fixture
def chromium(live_site: LiveSite) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def shoot(page: Any, name: str) -> None:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / f"{name}.png"))


def progress_state(page: Any, selector: str) -> list[Any] | None:
    """[value, status] of the progress bar ``selector`` on ``page``, or None while there is none."""
    return page.evaluate(  # type: ignore[no-any-return]
        """sel => {
            const bar = document.querySelector(sel);
            if (!bar) return null;
            const found = bar.className.match(/pc-progress-(queued|running|succeeded|failed|cancelled)/);
            return [Number(bar.value), found ? found[1] : ""];
        }""",
        selector,
    )


def test_async_bulk_edit_shows_live_progress(live_site: LiveSite, chromium: Any) -> None:
    started = time.monotonic()
    context = chromium.new_context(viewport=DESKTOP, base_url=live_site.url)
    context.set_default_timeout(15_000)
    context.add_init_script(SETTLE_COUNTER)
    page = context.new_page()
    errors = record_failures(page)

    # Sign in through the login form.
    page.goto("/book/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin")
    page.click("button[type=submit]:has-text('Sign in')")
    page.wait_for_url(f"{live_site.url}/book/")

    # Select all matching (no filter: every book), then open the bulk-edit modal.
    page.click("[data-pc-select-all]")
    page.wait_for_function(
        "n => (document.querySelector('#pc-selection .pc-selection-count strong') || {}).textContent === n",
        arg=f"{BOOKS:,}",
    )
    page.click("#pc-selection a:has-text('Edit selected')")
    dialog = page.locator("#pc-modal")
    dialog.locator("#bulk_status").wait_for()
    assert "Runs in the background" in dialog.inner_text()
    dialog.locator("#bulk_status").select_option("archived")
    assert dialog.locator("#bulk_change_status").is_checked()
    shoot(page, "async-01-modal")

    # Apply: the modal turns into the task's live progress.
    assert dialog.locator("#pc-modal-title").inner_text() == f"Edit {BOOKS:,} books"
    dialog.locator(f"button:has-text('Apply to {BOOKS:,} rows')").click()
    progress = dialog.locator(".pc-task-progress")
    progress.wait_for()
    task_id = int((progress.get_attribute("id") or "").rsplit("-", 1)[-1])
    submitted = time.monotonic()
    modal_bar = "#pc-modal progress.pc-progress"
    dashboard_row = f"tr.pc-task-row:has(a.pc-task-id[href$='/tasks/{task_id}/'])"
    dashboard_bar = f"{dashboard_row} progress.pc-progress"

    # Watch it: the modal polls every second, the dashboard list every two.
    dashboard = context.new_page()
    dashboard.goto("/powercrud/tasks/")
    modal_seen: list[tuple[float, int, str]] = []
    dashboard_seen: list[tuple[float, int, str]] = []
    shots: set[str] = set()
    while time.monotonic() - submitted < TASK_TIMEOUT:
        now = time.monotonic() - submitted
        watched = ((page, modal_bar, modal_seen), (dashboard, dashboard_bar, dashboard_seen))
        for target, selector, seen in watched:
            state = progress_state(target, selector)
            if state is not None:
                seen.append((round(now, 2), *state))
        value, status = modal_seen[-1][1:] if modal_seen else (0, "")
        if status == "running" and 20 <= value <= 80 and "modal" not in shots:
            shoot(page, "async-02-modal-running")
            shots.add("modal")
        on_dashboard = dashboard_seen[-1][1:] if dashboard_seen else (0, "")
        if on_dashboard[1] == "running" and on_dashboard[0] > 0 and "dash" not in shots:
            shoot(dashboard, "async-03-dashboard-running")
            shots.add("dash")
        if status in ("succeeded", "failed", "cancelled"):
            break
        page.wait_for_timeout(250)
    elapsed = time.monotonic() - submitted
    print(f"task #{task_id} ended after {elapsed:.1f} s\n modal: {modal_seen}\n dashboard: {dashboard_seen}")
    assert modal_seen and modal_seen[-1][2] == "succeeded", (
        f"the task did not succeed within {TASK_TIMEOUT} s: {modal_seen[-3:]}\n{live_site.logs()}"
    )

    # The modal's bar moved: several values between 0 and 100, never backwards, then 100.
    values = [v for _, v, _ in modal_seen]
    assert values == sorted(values), f"the progress went backwards: {values}"
    moving = {v for _, v, s in modal_seen if s == "running" and 0 < v < 100}
    assert len(moving) >= 3, f"the modal's progress bar did not move: {modal_seen}"
    assert values[-1] == 100
    # So did the dashboard's, while the task ran.
    dashboard_moving = {v for _, v, s in dashboard_seen if s == "running" and 0 < v < 100}
    assert len(dashboard_moving) >= 2, f"the dashboard's progress bar did not move: {dashboard_seen}"

    # The end: "Succeeded" with the counts, in the modal, and the list behind it refreshed.
    assert progress.locator(".pc-badge").inner_text() == "Succeeded"
    counted = {
        label: int(number.replace(",", ""))
        for label, number in re.findall(r"(Changed|Unchanged|Failed)\s+([\d,]+)", progress.inner_text())
    }
    assert counted["Changed"] + counted["Unchanged"] == BOOKS and counted["Failed"] == 0, counted
    assert f"{BOOKS:,} of {BOOKS:,} rows processed" in " ".join(progress.inner_text().split())
    assert not dialog.locator(".pc-task-note").is_visible(), "“the task keeps going” outlived the task"
    page.wait_for_function(
        "() => [...document.querySelectorAll('#pc-content tbody tr')]"
        ".every(row => row.textContent.includes('Archived'))"
    )
    shoot(page, "async-04-modal-succeeded")
    page.locator("#pc-modal .pc-close").click()
    page.wait_for_function("!document.getElementById('pc-modal').open")
    shoot(page, "async-05-list-after")

    # The dashboard: the list stops polling at the end and shows the same outcome.
    row = dashboard.locator(dashboard_row)
    row.locator(".pc-badge-succeeded").wait_for(timeout=10_000)
    assert progress_state(dashboard, dashboard_bar) == [100, "succeeded"]
    assert f"✓ {BOOKS:,}" in " ".join(row.locator(".pc-col-result").inner_text().split())
    shoot(dashboard, "async-06-dashboard-succeeded")
    row.locator("a.pc-task-id").click()
    dashboard.wait_for_url(f"**/powercrud/tasks/{task_id}/")
    assert "Succeeded" in dashboard.locator("main").inner_text()
    shoot(dashboard, "async-07-task-detail")

    # The database agrees: every book archived, the task succeeded, no lock left behind.
    statuses = live_site.query("SELECT status, COUNT(*) FROM sample_book GROUP BY status")
    assert statuses == [("archived", BOOKS)]
    task = live_site.query(
        "SELECT status, total, done, success_count, failure_count FROM powercrud_bulktask WHERE id = ?",
        (task_id,),
    )
    assert task == [("succeeded", BOOKS, BOOKS, BOOKS, 0)]
    assert live_site.query("SELECT COUNT(*) FROM powercrud_rowlock") == [(0,)]
    assert not errors, f"JavaScript errors or failed requests: {errors}"
    context.close()
    print(f"whole test: {time.monotonic() - started:.1f} s (task {elapsed:.1f} s)")


IMPORTED = 1_500
"""Rows of the background import: above the demo's BULK_MIN_ASYNC_RECORDS (1,000)."""


def test_a_large_import_runs_on_the_worker_and_its_page_shows_it_to_the_end(
    live_site: LiveSite, chromium: Any, tmp_path: Path
) -> None:
    """Upload, match, apply: the import goes to the worker; its run page follows it to
    "Succeeded" with every row created; Undo deletes them again."""
    unique = "SELECT name FROM sample_author GROUP BY name HAVING COUNT(*) = 1 ORDER BY name LIMIT 1"
    ((author,),) = live_site.query(unique)  # found by name: a name two authors share is ambiguous
    data = tmp_path / "many-books.csv"
    lines = ["Title,Author,Status,Price"]
    lines += [f"Background import {i:05d},{author},draft,{i % 90 + 5}.50" for i in range(IMPORTED)]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    context = chromium.new_context(viewport=DESKTOP, base_url=live_site.url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors = record_failures(page)
    page.goto("/book/")
    if "/accounts/login/" in page.url:
        page.fill("#id_username", "admin")
        page.fill("#id_password", "admin")
        page.click("button[type=submit]:has-text('Sign in')")
        page.wait_for_url(f"{live_site.url}/book/")

    page.get_by_role("link", name="Import").click()
    modal = page.locator("#pc-modal-body")
    modal.get_by_label("File").set_input_files(str(data))
    modal.get_by_label("Find author by").select_option("name")
    modal.get_by_role("button", name="Upload").click()
    page.wait_for_selector("#pc-modal-body .pc-import-map")
    assert f"{IMPORTED:,} rows in the file" in " ".join(modal.inner_text().split())
    modal.get_by_role("button", name="Import").click()
    page.wait_for_url("**/powercrud/tasks/*/")
    task_id = int(page.url.rstrip("/").rsplit("/", 1)[-1])

    seen: list[tuple[int, str]] = []
    deadline = time.monotonic() + TASK_TIMEOUT
    while time.monotonic() < deadline:
        state = progress_state(page, "progress.pc-progress")
        if state is not None and (not seen or tuple(state) != seen[-1]):
            seen.append((int(state[0]), str(state[1])))
        if seen and seen[-1][1] in ("succeeded", "failed", "cancelled"):
            break
        page.wait_for_timeout(200)
    print(f"import #{task_id}: {seen}")
    why = live_site.query("SELECT message, errors FROM powercrud_bulktask WHERE id = ?", (task_id,))
    assert seen and seen[-1] == (100, "succeeded"), f"{seen} {str(why)[:600]}\n{live_site.logs()}"
    assert seen[0][1] in ("queued", "running"), f"the page did not show the run before its end: {seen}"
    page.wait_for_function("() => document.body.innerText.includes('Created')")
    assert f"Created {IMPORTED:,}" in " ".join(page.inner_text("main").split())
    shoot(page, "async-08-import-succeeded")
    count = "SELECT COUNT(*) FROM sample_book WHERE title LIKE 'Background import %'"
    assert live_site.query(count) == [(IMPORTED,)]
    task = live_site.query("SELECT kind, mode, status FROM powercrud_bulktask WHERE id = ?", (task_id,))
    assert task == [("import", "async", "succeeded")]

    page.get_by_role("button", name="Undo this run").click()
    page.wait_for_url(lambda url: url.rstrip("/").rsplit("/", 1)[-1] != str(task_id))
    assert live_site.query(count) == [(0,)]
    shoot(page, "async-09-import-undone")
    assert not errors, f"JavaScript errors or failed requests: {errors}"
    context.close()
