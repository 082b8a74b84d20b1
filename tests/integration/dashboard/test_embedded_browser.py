"""The dashboard on one host: a real browser against an embedded coordinator in this process.

No gateway, no Redis: ``OperationsCoordinator(dashboard=DashboardConfig(...))`` serves the
cluster's pages, reading and driving the coordinator in-process. Log in, watch the host and
the counts rise under a small workload, drain from the page (the coordinator drains; a call
made meanwhile is held and killed from the page), resume (the held call runs), launch a
registered task by name, and find the controls in the audit log.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS, PASSWORD, playwright_or_skip, wait_until
from tokengate.dashboard import DashboardConfig
from tokengate.shared.errors import ConfigurationError, TokenKilled
from tokengate.shared.registry import spec_of

from tokengate import OperationsCoordinator, task_token_guard

sync_api = playwright_or_skip()

STEP = 10_000  # ms: the longest any step may take to show on the page


@task_token_guard(operation_type="embedded_add", tags={"weight": "light"})
def add(a: int, b: int) -> int:
    return a + b


@task_token_guard(operation_type="embedded_nap", tags={"weight": "medium"})
def nap(seconds: float, index: int) -> int:
    threading.Event().wait(seconds)
    return index


@pytest.fixture(scope="module")
def coord() -> Iterator[OperationsCoordinator]:
    config = DashboardConfig(password=PASSWORD, listen="127.0.0.1:0", poll_interval=0.25,
                             show_payloads=True)
    with OperationsCoordinator(workers_per_core=2, dashboard=config) as coordinator:
        yield coordinator


@pytest.fixture(scope="module")
def page(coord: OperationsCoordinator) -> Iterator[Any]:
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tab.on("pageerror", lambda exc: errors.append(str(exc)))
        tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        tab.errors = errors
        tab.set_default_timeout(STEP)
        yield tab
        browser.close()


def _number(page: Any, selector: str) -> int:
    return int(re.sub(r"[^\d]", "", page.text_content(selector) or "") or 0)


def _wait_number_above(page: Any, selector: str, floor: int) -> None:
    page.wait_for_function(
        "([sel, floor]) => { const n = document.querySelector(sel);"
        " return n && Number(n.textContent.replace(/\\D/g, '')) > floor; }", arg=[selector, floor])


def _wait_text(page: Any, selector: str, pattern: str) -> None:
    page.wait_for_function(
        "([sel, pat]) => { const n = document.querySelector(sel);"
        " return n && new RegExp(pat).test(n.textContent); }", arg=[selector, pattern])


def test_a_password_is_required() -> None:
    with pytest.raises(ConfigurationError, match="password"):
        OperationsCoordinator(dashboard=DashboardConfig(listen="127.0.0.1:0")).start()


def test_log_in_and_watch_the_host_under_a_workload(page, coord):
    assert coord.dashboard is not None and coord.dashboard.url.startswith("http://127.0.0.1:")
    page.goto(coord.dashboard.url)
    assert page.url.endswith("/login")
    page.fill("#user", "embedded")
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector("#live.on")
    _wait_text(page, "#cluster-state", "RUNNING")
    node = coord.snapshot()["node"]
    page.wait_for_selector(f"article.node[data-node='{node}']")
    before = _number(page, "#pool-completed")
    tokens = [nap(0.01, i) for i in range(60)]
    _wait_number_above(page, "#pool-completed", before + 30)
    page.wait_for_selector("#feed tr.feed-row")
    assert [t.get(10) for t in tokens] == list(range(60))
    assert page.errors == []


def test_drain_kill_and_resume_from_the_page(page, coord):
    page.fill("#drain-reason", "embedded drain")
    page.click("#drain-cluster")
    page.click("#confirm-ok")
    _wait_text(page, "#cluster-state", "DRAINED")
    assert coord.snapshot()["state"] == "drained"
    assert coord.snapshot()["drain_reason"] == "embedded drain"
    doomed, held = add(1, 1), add(2, 3)  # held by the drain
    _wait_number_above(page, "#cluster-held", 1)
    page.fill("#token-id", doomed.token_id)
    page.click("#kill-token")
    page.click("#confirm-ok")
    _wait_text(page, "#toasts", "killed")
    with pytest.raises(TokenKilled):
        doomed.get(timeout=5)
    page.click("#resume-cluster")
    page.click("#confirm-ok")
    _wait_text(page, "#cluster-state", "RUNNING")
    wait_until(lambda: coord.snapshot()["state"] == "running", 5, "the coordinator resumed")
    assert held.get(timeout=5) == 5
    _wait_text(page, "#audit", "resume")
    audit = page.text_content("#audit") or ""
    assert "drain" in audit and "kill" in audit and "dashboard:embedded@" in audit


def test_launch_a_registered_task_by_name(page, coord):
    name = spec_of(add).name
    submitted = coord.snapshot()["tokens"]["submitted"]
    page.fill("#launch-task", name)
    page.fill("#launch-args", "[40, 2]")
    page.click("#launch")
    page.click("#confirm-ok")
    _wait_text(page, "#launched li:first-child", ": completed = 42$")
    assert coord.snapshot()["tokens"]["submitted"] == submitted + 1
    page.fill("#launch-task", "nowhere:missing")
    page.click("#launch")
    page.click("#confirm-ok")
    _wait_text(page, "#toasts", "UnknownTask")
    assert page.errors == []
