"""The dashboard in a real browser, against a real local cluster, end to end.

Debian's chromium driven by Playwright (never a browser Playwright downloads): log in, watch
the counts rise under a workload, drain with work in flight and see waiting and executing
reach 0 on the page, in the gateway's status and in Redis (nothing failed falsely, calls
made during the drain held), resume, kill a queued token, launch a task by name, open a
token from the feed, re-enable a blocked function and replay a quarantined call. Each step
saves a screenshot in the test's temporary directory.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORD,
    ManualClock,
    make_dashboard,
    playwright_or_skip,
    start_cluster,
    wait_until,
)
from tokengate.shared.errors import TokenKilled, TokenQuarantined

sync_api = playwright_or_skip()

STEP = 15_000  # ms: the longest any step may take to show on the page


class Load:
    """Keeps ``sleepy`` and ``add`` calls in flight from a thread until stopped."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.stop = threading.Event()
        self.tokens: list[Any] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self.stop.is_set():
            self.tokens.append(self.client.submit_by_name("cluster_tasks:sleepy", (0.2, i)))
            self.tokens.append(self.client.submit_by_name("cluster_tasks:add", (i, 1)))
            i += 1
            self.stop.wait(0.02)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join(10)


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    """The dashboard's clock (sessions, login backoff): it moves only when a test moves it."""
    return ManualClock()


@pytest.fixture(scope="module")
def live(redis_url: str, tmp_path_factory: pytest.TempPathFactory,
         clock: ManualClock) -> Iterator[Any]:
    cluster = start_cluster(redis_url, tmp_path_factory.mktemp("browser-cluster"))
    # Payloads shown: a launched task's result value reaches the page.
    dashboard = make_dashboard(cluster, clock=clock, poll_interval=0.5, show_payloads=True,
                               login_backoff=1.0).start()
    yield cluster, dashboard
    dashboard.stop()
    cluster.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def page(live: Any, shots: Path) -> Iterator[Any]:
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # A light system theme, so the page starts light (no theme saved yet).
        tab = browser.new_page(viewport={"width": 1400, "height": 1000}, color_scheme="light")
        tab.on("pageerror", lambda exc: errors.append(str(exc)))
        tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        tab.errors = errors
        tab.set_default_timeout(STEP)
        yield tab
        browser.close()


def _number(page: Any, selector: str) -> int:
    return int(re.sub(r"[^\d]", "", page.text_content(selector) or "") or 0)


def _confirm(page: Any) -> None:
    page.click("#confirm-ok")


def _wait_text(page: Any, selector: str, pattern: str) -> None:
    page.wait_for_function(
        "([sel, pat]) => { const n = document.querySelector(sel);"
        " return n && new RegExp(pat).test(n.textContent); }", arg=[selector, pattern])


def _redis(cluster: Any) -> redis.Redis:
    return redis.Redis.from_url(cluster.redis_url, decode_responses=True)


def test_log_in(page, live, shots, clock):
    _, dashboard = live
    page.goto(dashboard.url)
    assert page.url.endswith("/login")
    page.fill("#password", "wrong password")
    page.click("#login-submit")
    assert "Wrong password" in page.text_content("#login-error")
    clock.advance(1.0)  # the backoff after one failure
    page.fill("#user", "browser")
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector("#live.on")
    _wait_text(page, "#cluster-state", "RUNNING")
    page.wait_for_selector("article.node[data-node='a1']")
    _wait_text(page, "#cluster-workers", "^[1-9]")  # the System Status totals
    _wait_text(page, "#cluster-cores", "^[1-9][0-9,]* on 1 host$")
    page.screenshot(path=str(shots / "01-logged-in.png"), full_page=True)
    assert "dashboard:browser@" in page.text_content("#actor")
    assert all("401" in error for error in page.errors)  # only the wrong password's answer
    page.errors.clear()


def test_counts_rise_under_a_workload(page, live, shots):
    cluster, _ = live
    before = _number(page, "#pool-completed")
    with Load(cluster.client()) as load:
        page.wait_for_function(f"() => Number(document.querySelector('#pool-completed')"
                               f".textContent.replace(/\\D/g, '')) > {before + 50}")
        page.wait_for_selector("#feed tr")
        page.screenshot(path=str(shots / "02-under-load.png"), full_page=True)
    for token in load.tokens:
        token.wait(20)
    assert page.errors == []


def test_drain_with_work_in_flight_then_resume(page, live, shots):
    cluster, _ = live
    failed_before = cluster.status()["counts"].get("failed", 0)
    with Load(cluster.client()) as load:
        page.wait_for_function("() => Number(document.querySelector('#cluster-inflight')"
                               ".textContent.replace(/\\D/g, '')) > 0")
        page.fill("#drain-reason", "browser drain")
        page.click("#drain-cluster")
        _confirm(page)
        _wait_text(page, "#cluster-state", "DRAINED")
        _wait_text(page, "#cluster-inflight", "^0$")
        _wait_text(page, "#cluster-executing", "^0$")
        _wait_text(page, "#cluster-waiting", "^0$")
        page.wait_for_function("() => Number(document.querySelector('#cluster-held')"
                               ".textContent.replace(/\\D/g, '')) > 0")  # calls made now
        page.screenshot(path=str(shots / "03-drained.png"), full_page=True)
        status = cluster.status()
        assert status["state"] == "DRAINED" and status["inflight"] == 0
        assert status["counts"].get("failed", 0) == failed_before  # nothing failed falsely
        assert _redis_states(cluster) <= {"waiting", "completed", "failed", "killed"}
    page.click("#resume-cluster")
    _confirm(page)
    _wait_text(page, "#cluster-state", "RUNNING")
    for token in load.tokens:
        assert token.wait(30), "a call held by the drain never ran"
    _wait_text(page, "#cluster-held", "^0$")
    assert cluster.status()["counts"].get("failed", 0) == failed_before


def _redis_states(cluster: Any) -> set[str]:
    client = _redis(cluster)
    keys = list(client.scan_iter(f"{cluster.prefix}t:*", count=1000))
    with client.pipeline() as pipe:
        for key in keys:
            pipe.hget(key, "s")
        return {state for state in pipe.execute() if state}


def test_kill_a_queued_token(page, live, shots):
    cluster, _ = live
    client = cluster.client()
    client.drain("", "to queue a token")
    try:
        token = client.submit_by_name("cluster_tasks:add", (7, 7))
        wait_until(lambda: _redis(cluster).exists(f"{cluster.prefix}t:{token.token_id}"),
                   10, "the token stored")
        page.fill("#token-id", token.token_id)
        page.click("#kill-token")
        _confirm(page)
        _wait_text(page, "#toasts", "killed")
        with pytest.raises(TokenKilled):
            token.get(timeout=10)
        page.screenshot(path=str(shots / "04-killed.png"), full_page=True)
    finally:
        client.resume("")
    _wait_text(page, "#cluster-state", "RUNNING")


def test_launch_a_task_by_name(page, live, shots):
    page.fill("#launch-task", "cluster_tasks:add")
    page.fill("#launch-args", "[40, 2]")
    page.click("#launch")
    _confirm(page)
    _wait_text(page, "#launched li:first-child", ": completed = 42$")  # 40 + 2, its result
    page.screenshot(path=str(shots / "05-launched.png"), full_page=True)


def test_nodes_filter_by_state_and_dark_theme(page, live, shots):
    page.select_option("#node-state", "DRAINED")
    _wait_text(page, "#node-count", "^0 of 2 nodes$")
    page.select_option("#node-state", "")
    _wait_text(page, "#node-count", "^2 of 2 nodes$")
    theme = "document.documentElement.dataset.theme"
    assert page.evaluate(theme) == "light"
    page.click("#theme")
    assert page.evaluate(theme) == "dark"
    assert page.evaluate("localStorage.getItem('tg-theme')") == "dark", "the choice is kept"
    page.screenshot(path=str(shots / "06-theme.png"), full_page=True)
    page.click("#theme")
    assert page.evaluate(theme) == "light"
    assert page.errors == []


def test_open_a_token_from_the_feed(page, live, shots):
    cluster, _ = live
    cluster.client().submit_by_name("cluster_tasks:add", (1, 1)).get(timeout=15)
    page.wait_for_selector("#feed tr.feed-row")
    page.click("#feed tr.feed-row")
    page.wait_for_selector("#token-dialog[open]")
    _wait_text(page, "#token-state", "completed|failed")
    _wait_text(page, "#token-node", "^a[12]$")  # where it ran, in the seed's history fields
    _wait_text(page, "#token-core", "^[1-9]")
    _wait_text(page, "#token-worker", "core")
    _wait_text(page, "#token-execution-time", r"^[0-9][0-9.e-]* s$")
    assert '"worker_id"' in page.text_content("#token-record")
    page.screenshot(path=str(shots / "07-token.png"), full_page=True)
    page.click("#token-close")


def test_reenable_a_blocked_function(page, live, shots):
    cluster, _ = live
    client = cluster.client()
    for _ in range(12):
        client.submit_by_name("cluster_tasks:boom", ("again",)).wait(15)
    button = "#guards tr[data-function='cluster_tasks:boom'] button.reenable"
    page.wait_for_selector(button)
    page.click(button)
    _confirm(page)
    page.wait_for_selector(button, state="detached")
    page.screenshot(path=str(shots / "08-reenabled.png"), full_page=True)


def test_replay_a_quarantined_call(page, live, shots):
    cluster, _ = live
    client = cluster.client()
    for i in range(12):
        client.submit_by_name("cluster_tasks:add", (i, 1)).get(timeout=15)
    with pytest.raises(TokenQuarantined):
        client.submit_by_name("cluster_tasks:add", (10**15, 1)).get(timeout=15)
    page.wait_for_selector("#quarantine tr button.replay")
    quarantine_id = page.get_attribute("#quarantine tr", "data-id")
    page.click("#quarantine tr button.replay")
    _confirm(page)
    page.wait_for_selector(f"#quarantine tr[data-id='{quarantine_id}']", state="detached")
    page.screenshot(path=str(shots / "09-replayed.png"), full_page=True)
