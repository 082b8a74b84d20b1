"""Fixtures of the dashboard tests: a real cluster (redis-server, gateway and agents as
processes, as the cluster tests start them) and a dashboard reading it through the gateway.

The cluster helpers come from ``tests/integration/cluster/conftest.py``, loaded under a name
of its own. The agents run with the Guard House's auto-block and the spike detector on (a
low threshold of attempts and a short warm-up), each with its own quarantine directory, so the
Guard House and quarantine controls have something to act on.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

DASH_DIR = Path(__file__).resolve().parent
CLUSTER_DIR = DASH_DIR.parent / "cluster"
ROOT_DIR = DASH_DIR.parents[2]


def _load_cluster_helpers() -> Any:
    spec = importlib.util.spec_from_file_location("cluster_fixtures", CLUSTER_DIR / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["cluster_fixtures"] = module
    spec.loader.exec_module(module)
    return module


cluster_fixtures = _load_cluster_helpers()
# Whichever conftest pytest imported last is the module ``conftest``; the cluster tests'
# helpers import names from it while they run, so this one offers the cluster's names too
# (the cluster's fixtures included: redis_url, make_cluster, shared_cluster).
globals().update({name: value for name, value in vars(cluster_fixtures).items()
                  if not name.startswith(("_", "pytest_")) and name not in globals()})
redis_url = cluster_fixtures.redis_url  # the session's redis-server fixture
Cluster = cluster_fixtures.Cluster
TOKEN = cluster_fixtures.TOKEN
wait_until = cluster_fixtures.wait_until
PASSWORD = "dashboard-test-password"
ORIGIN = "http://localhost"
GUARD_ENV = {"TOKENGATE_AUTO_BLOCK": "1", "TOKENGATE_MIN_ATTEMPTS": "3",
             "TOKENGATE_SPIKE_DETECTION": "1", "TOKENGATE_SPIKE_WARMUP": "3"}


class GuardedCluster(Cluster):
    """A cluster whose agents block failing functions and quarantine spikes."""

    def start_agent(self, name: str, wait: bool = True) -> None:
        base = dict(self.env)
        self.env = dict(base, **GUARD_ENV,
                        TOKENGATE_QUARANTINE_DIR=str(self.tmp / f"quarantine-{name}"))
        try:
            super().start_agent(name, wait)
        finally:
            self.env = base


def start_cluster(redis: str, tmp: Path, agents: tuple[str, ...] = ("a1", "a2")) -> Cluster:
    cluster = GuardedCluster(redis, tmp, agent_options=("--workers-per-core", "2",
                                                        "--mailbox-capacity", "20"))
    cluster.start_gateway()
    for name in agents:
        cluster.start_agent(name, wait=False)
    cluster.wait_nodes(lambda nodes: all(nodes.get(a) == "UP" for a in agents),
                       f"agents {agents} up")
    return cluster


@pytest.fixture(scope="module")
def cluster(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    made = start_cluster(redis_url, tmp_path_factory.mktemp("dash-cluster"))
    yield made
    made.stop()


class ManualClock:
    """A clock the test moves by hand: a dashboard made with it judges session expiry and
    the login backoff by this time, never by the wall clock."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_dashboard(cluster: Cluster, *, clock: Callable[[], float] = time.time,
                   **options: Any) -> Any:
    from tokengate.dashboard import Dashboard, DashboardConfig

    settings = {"listen": "127.0.0.1:0", "gateway": cluster.address, "token": TOKEN,
                "password": PASSWORD, "poll_interval": 0.2, "login_backoff": 0.3,
                "login_backoff_max": 2.0, **options}
    return Dashboard(DashboardConfig(**settings), clock=clock)


@pytest.fixture(scope="module")
def dashboard(cluster: Cluster) -> Iterator[Any]:
    """A dashboard with its poller running, used through the test clients (no HTTP server)."""
    made = make_dashboard(cluster)
    made.poller.start()
    yield made
    made.poller.stop()
    made.source.close()


def csrf_of(html: str) -> str:
    found = re.search(r'name="(?:csrf|tg-csrf)" (?:value|content)="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def login(http: Any, password: str = PASSWORD, user: str = "tester") -> Any:
    """Log the Flask test client in; returns the POST's response."""
    form = http.get("/login")
    return http.post("/login", data={"password": password, "user": user,
                                     "csrf": csrf_of(form.get_data(as_text=True))},
                     headers={"Origin": ORIGIN})


def page_csrf(http: Any) -> str:
    return csrf_of(http.get("/").get_data(as_text=True))


def open_page(dashboard: Any, http: Any, **options: Any) -> Any:
    """A logged-in page: the Socket.IO test client with the session cookie and its CSRF."""
    csrf = options.pop("csrf", None) or page_csrf(http)
    headers = options.pop("headers", {"Origin": ORIGIN})
    return dashboard.socketio.test_client(dashboard.app, flask_test_client=http,
                                          auth={"csrf": csrf}, headers=headers, **options)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if DASH_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


class PageView:
    """What a page would show: the test client's full and patch messages applied in order."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.view: dict[str, Any] | None = None
        self.version: int | None = None
        self.events: list[dict[str, Any]] = []  # everything else received (launched, ...)

    def pump(self) -> None:
        from tokengate.dashboard.diff import apply

        for message in self.page.get_received():
            name, args = message["name"], message["args"]
            data = args[0] if args else None
            if name == "full":
                self.view, self.version = data, data["v"]
            elif name == "patch":
                assert self.version is None or data["base"] == self.version, "a gap in patches"
                self.view, self.version = apply(self.view, data), data["v"]
            else:
                self.events.append(message)

    def wait(self, predicate: Any, what: str, timeout: float = 20.0) -> dict[str, Any]:
        def check() -> Any:
            self.pump()
            return self.view is not None and predicate(self.view) and self.view
        return wait_until(check, timeout, what, interval=0.05)

    def emit(self, event: str, payload: dict[str, Any]) -> Any:
        return self.page.emit(event, payload, callback=True)


CHROMIUM = "/usr/bin/chromium"  # the browser tests drive Debian's, never a downloaded one
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def playwright_or_skip() -> Any:
    """``playwright.sync_api`` for a browser test module, or skip the module (no playwright
    package, or no chromium)."""
    api = pytest.importorskip("playwright.sync_api",
                              reason="the playwright package is not installed (.ci/run "
                                     "installs it)")
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install -y chromium; .ci/run does)",
                    allow_module_level=True)
    return api
