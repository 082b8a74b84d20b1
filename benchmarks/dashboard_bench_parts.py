"""The parts of the dashboard benchmark: the cluster and dashboard processes, simulated
agents, open pages (Socket.IO clients counting the bytes pushed) and a real browser page.

Everything runs on this machine: redis-server, the gateway, two real agents and the
dashboard as processes (the command lines ``tokengate up`` uses), the pages and the
simulated agents as threads of the benchmark.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import grpc
import msgpack
import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

from tokengate.shared.auth import call_metadata  # noqa: E402
from tokengate.shared.client import ClusterClient  # noqa: E402
from tokengate.shared.client_config import ClientConfig  # noqa: E402
from tokengate.shared.redis_server import RedisServer, child_env, free_port  # noqa: E402
from tokengate.shared.rpc import tokengate_pb2 as pb  # noqa: E402
from tokengate.shared.rpc import tokengate_pb2_grpc as rpc  # noqa: E402

from tokengate.cli_up import role_command, split_cpus  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"
PASSWORD = "bench-dashboard-password"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


class BenchCluster:
    """redis-server, a gateway, two agents and a dashboard, each a real process."""

    def __init__(self, agents: int = 2) -> None:
        self.redis = RedisServer().start()
        self.address = f"127.0.0.1:{free_port()}"
        self.dashboard_port = free_port()
        self.url = f"http://127.0.0.1:{self.dashboard_port}"
        self.logdir = Path(tempfile.mkdtemp(prefix="tokengate-dash-bench-"))
        self.env = dict(os.environ, TOKENGATE_TOKEN=TOKEN, TOKENGATE_DASHBOARD_PASSWORD=PASSWORD,
                        PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE)]))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._spawn("gateway", "gateway", "--listen", self.address, "--redis", self.redis.url)
        self.client = ClusterClient(ClientConfig(address=self.address, token=TOKEN))
        self.client.ping(timeout=30)
        cpu_sets = split_cpus(sorted(os.sched_getaffinity(0)), agents)
        for i in range(1, agents + 1):
            pin = ["--cpus", cpu_sets[i - 1]] if cpu_sets else []
            self._spawn(f"agent{i}", "agent", "--gateway", self.address, "--name", f"real{i}",
                        "--include", "cluster_bench_tasks", *pin)
        self.wait_nodes(agents)
        self._spawn("dashboard", "dashboard", "--gateway", self.address, "--listen",
                    f"127.0.0.1:{self.dashboard_port}", "--poll-interval", "1")
        wait_http(self.url + "/healthz")
        self.client.connect()

    def _spawn(self, name: str, role: str, *args: str) -> None:
        with open(self.logdir / f"{name}.log", "wb") as log:
            self.procs[name] = subprocess.Popen(role_command(role, *args),
                                                env=child_env(self.env), stdout=log,
                                                stderr=subprocess.STDOUT)

    def wait_nodes(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.client.status().nodes) < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"{count} agents did not register; logs in {self.logdir}")
            time.sleep(0.05)

    def process(self, name: str) -> psutil.Process:
        return psutil.Process(self.procs[name].pid)

    def real_snapshot(self) -> bytes:
        for node in self.client.status().nodes:
            if node.snapshot:
                return node.snapshot
        raise SystemExit("no agent snapshot yet")

    def close(self) -> None:
        self.client.close()
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            proc.wait(15)
        self.redis.stop()


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# -- simulated agents ------------------------------------------------------------------


class SimAgent:
    """One agent as the gateway sees it: a hello with a realistic snapshot, then a heartbeat
    carrying a snapshot every second. It grants no credit, so it is sent no work. ``busy``
    changes its snapshot every beat (counters, queues), the worst case for the dashboard."""

    def __init__(self, address: str, name: str, host: str, snapshot: bytes, busy: bool) -> None:
        self.name = name
        self.host = host
        self.base = msgpack.unpackb(snapshot, strict_map_key=False)
        self.busy = busy
        self.stop = threading.Event()
        self.channel = grpc.insecure_channel(address)
        self.call: Any = None
        self.beats = 0
        self._thread = threading.Thread(target=self._read, daemon=True)

    def start(self) -> SimAgent:
        stub = rpc.GatewayStub(self.channel)
        self.call = stub.AgentLink(self._frames(), metadata=call_metadata(TOKEN))
        self._thread.start()
        return self

    def _snapshot(self) -> bytes:
        snap = self.base
        if self.busy:  # what a busy agent's snapshot changes from one second to the next
            snap = json.loads(json.dumps(self.base))
            tokens = snap.setdefault("tokens", {})
            tokens["completed"] = tokens.get("completed", 0) + self.beats * 37
            for core in snap.get("cores", []):
                core["depths"] = [random.randint(0, 40) for _ in core.get("depths", [])]
                core["busy"] = [random.randint(0, 1) for _ in core.get("busy", [])]
                core["routed"]["light"] = core["routed"].get("light", 0) + self.beats * 19
            process = snap.setdefault("process", {})
            process["cpu_percent"] = random.uniform(20, 90)
            process["rss_bytes"] = random.randint(60, 90) * 2**20
        return msgpack.packb(snap)

    def _frames(self) -> Any:
        topology = msgpack.packb({"workers": 8, "workers_per_core": 4, "mailbox_capacity": 120})
        hello = pb.Hello(name=self.name, incarnation=uuid.uuid4().hex, host=self.host,
                         pid=os.getpid(), topology=topology,
                         tasks=["cluster_bench_tasks:noop"],
                         task_info=[pb.TaskInfo(name="cluster_bench_tasks:noop", weight="light",
                                                idempotent=True)])
        yield pb.AgentFrame(hello=hello, snapshot=self._snapshot(), credits=[
            pb.Credit(weight=w, count=0) for w in ("heavy", "medium", "light")])
        while not self.stop.wait(1.0):
            self.beats += 1
            yield pb.AgentFrame(snapshot=self._snapshot())

    def _read(self) -> None:
        try:
            for _ in self.call:
                pass
        except grpc.RpcError:
            pass

    def close(self) -> None:
        self.stop.set()
        if self.call is not None:
            self.call.cancel()
        self.channel.close()


# -- pages -----------------------------------------------------------------------------


def login(url: str) -> tuple[str, str]:
    """Log in as a browser would; returns the session cookie and the page's CSRF token."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = opener.open(url + "/login").read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    data = urllib.parse.urlencode({"password": PASSWORD, "csrf": csrf, "user": "bench"})
    request = urllib.request.Request(url + "/login", data=data.encode(),
                                     headers={"Origin": url})
    page = opener.open(request).read().decode()
    page_csrf = re.search(r'name="tg-csrf" content="([^"]+)"', page).group(1)
    cookie = next(c.value for c in jar if c.name == "tg_session")
    return cookie, page_csrf


class Page:
    """An open page: a Socket.IO client (WebSocket) counting what is pushed to it."""

    def __init__(self, url: str) -> None:
        import socketio

        self.url = url
        self.client = socketio.Client(reconnection=False)
        self.bytes = 0
        self.pushes = 0
        self.largest = 0
        self.lock = threading.Lock()
        for event in ("full", "patch"):
            self.client.on(event, self._counter(event))

    def _counter(self, event: str) -> Any:
        def count(data: Any) -> None:
            size = len(json.dumps([event, data], separators=(",", ":"))) + 2  # "42" prefix
            with self.lock:
                self.bytes += size
                self.pushes += 1
                if event == "patch":
                    self.largest = max(self.largest, size)
        return count

    def open(self) -> Page:
        cookie, csrf = login(self.url)
        # websocket-client sends the Origin of the URL itself, as a browser would
        self.client.connect(self.url, headers={"Cookie": f"tg_session={cookie}"},
                            auth={"csrf": csrf}, transports=["websocket"], wait_timeout=10)
        return self

    def take(self) -> tuple[int, int, int]:
        with self.lock:
            taken = (self.bytes, self.pushes, self.largest)
            self.bytes = self.pushes = self.largest = 0
        return taken

    def close(self) -> None:
        self.client.disconnect()


class BrowserPage:
    """One real page in Debian's chromium (Playwright), for the page's own CPU cost."""

    def __init__(self, url: str) -> None:
        from playwright.sync_api import sync_playwright

        self.url = url
        self._playwright = sync_playwright().start()
        self.browser = self._playwright.chromium.launch(executable_path=CHROMIUM,
                                                        args=CHROMIUM_ARGS)
        self.page = self.browser.new_page(viewport={"width": 1400, "height": 1000})
        self.page.set_default_timeout(60_000)  # a machine at full throughput is slow

    def open(self) -> BrowserPage:
        self.page.goto(self.url + "/login")
        self.page.fill("#password", PASSWORD)
        self.page.click("#login-submit")
        self.page.wait_for_selector("#live.on")
        return self

    def stats(self) -> dict[str, float]:
        return self.page.evaluate("window.tgStats")

    def processes(self) -> list[psutil.Process]:
        me = psutil.Process()
        return [p for p in me.children(recursive=True) if "chrom" in p.name().lower()]

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self.processes():
            try:
                total += cpu_seconds(proc)
            except psutil.NoSuchProcess:
                pass
        return total

    def close(self) -> None:
        self.browser.close()
        self._playwright.stop()


def load_generator(address: str) -> subprocess.Popen[bytes]:
    """A separate process submitting no-op tasks as fast as the cluster takes them."""
    code = (
        "import sys; sys.path[:0] = sys.argv[2:4]\n"
        "from tokengate.shared.client import ClusterClient\n"
        "from tokengate.shared.client_config import ClientConfig\n"
        "import cluster_bench_tasks as t\n"
        "from tokengate import _backend\n"
        "from collections import deque\n"
        f"c = ClusterClient(ClientConfig(address=sys.argv[1], token={TOKEN!r}))\n"
        "c.connect(); _backend.install(c)\n"
        "inflight = deque()\n"
        "while True:\n"
        "    inflight.append(t.noop())\n"
        "    if len(inflight) > 3000: inflight.popleft().wait(60)\n")
    return subprocess.Popen([sys.executable, "-c", code, address, str(ROOT), str(HERE)],
                            env=child_env(dict(os.environ)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
