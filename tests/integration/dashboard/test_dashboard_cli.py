"""``tokengate dashboard``, ``tokengate top`` and ``tokengate up`` (dashboard and --demo)."""

from __future__ import annotations

import contextlib
import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
from conftest import CLUSTER_DIR, ROOT_DIR, TOKEN, wait_until
from tokengate.shared.client import ClusterClient
from tokengate.shared.client_config import ClientConfig
from tokengate.shared.redis_server import free_port


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT_DIR), str(CLUSTER_DIR)]),
               PYTHONUNBUFFERED="1", TOKENGATE_TOKEN=TOKEN, **extra)
    env.pop("TOKENGATE_DASHBOARD_PASSWORD", None)
    env.update(extra)
    return env


def _tokengate(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tokengate.cli", *args], capture_output=True,
                          text=True, timeout=60, **kwargs)


def test_top_once_prints_the_cluster(cluster):
    out = _tokengate("top", "--once", "--gateway", cluster.address, env=_env())
    assert out.returncode == 0, out.stderr
    assert "TokenGate  cluster RUNNING" in out.stdout and "NODES (2)" in out.stdout
    assert "a1" in out.stdout and "a2" in out.stdout and "\x1b[" not in out.stdout


def test_top_once_without_a_gateway_says_so_and_fails():
    out = _tokengate("top", "--once", "--gateway", f"127.0.0.1:{free_port()}", env=_env())
    assert out.returncode == 1
    assert "UNREACHABLE" in out.stdout and "GatewayUnavailable" in out.stdout


def test_dashboard_refuses_a_short_password_beyond_loopback(cluster):
    out = _tokengate("dashboard", "--gateway", cluster.address, "--listen", "0.0.0.0:0",
                     env=_env(TOKENGATE_DASHBOARD_PASSWORD="short"))
    assert out.returncode == 2 and "shorter than 12 characters" in out.stderr
    out = _tokengate("dashboard", "--gateway", cluster.address, env=_env())
    assert out.returncode == 2 and "needs a password" in out.stderr


def test_dashboard_command_serves_until_stopped(cluster, tmp_path):
    password = tmp_path / "password"
    password.write_text("from-a-file\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokengate.cli", "dashboard", "--gateway", cluster.address,
         "--listen", f"127.0.0.1:{free_port()}", "--password-file", str(password)],
        env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = re.search(r"on (http://\S+/)", line).group(1)
        assert _login(url, "from-a-file") == 303
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()


def _login(url: str, password: str) -> int:
    jar = http.cookiejar.CookieJar()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    form = opener.open(url + "login").read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    data = urllib.parse.urlencode({"password": password, "csrf": csrf}).encode()
    request = urllib.request.Request(url + "login", data=data,
                                     headers={"Origin": url.rstrip("/")})
    try:
        return opener.open(request).status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_up_starts_the_dashboard_and_keeps_a_demo_running(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokengate.cli", "up", "--port", "0", "--dashboard-port", "0",
         "--agents", "2", "--demo", "--state-dir", str(tmp_path)],
        env=_env(), cwd=str(tmp_path), stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        while not lines or "Ctrl-C" not in lines[-1]:
            lines.append(proc.stdout.readline())
            assert lines[-1], "up ended early: " + "".join(lines)
        text = "".join(lines)
        found = re.search(r"dashboard: (http://\S+/)\s+\(password: (\S+), kept in (\S+)\)", text)
        assert found, text
        url, password, password_file = found.groups()
        assert Path(password_file) == tmp_path / "dashboard-password"
        assert oct(Path(password_file).stat().st_mode & 0o777) == "0o600"
        assert Path(password_file).read_text().strip() == password and len(password) >= 12
        assert _login(url, password) == 303 and _login(url, "wrong") == 401
        address = re.search(r"gateway (\S+),", text).group(1)
        token = (tmp_path / "token").read_text().strip()
        client = ClusterClient(ClientConfig(address=address, token=token)).connect()
        first = client.status().counts.get("completed", 0)
        wait_until(lambda: client.status().counts.get("completed", 0) > first + 50, 30,
                   "the demo's workload running")
        client.close()
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(40) == 0
        _, alive = psutil.wait_procs(children, timeout=15)
        assert not alive, "Ctrl-C stops every child, the dashboard included"
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        proc.stdout.close()


def test_top_redraws_in_a_terminal_until_q(cluster):
    import pty
    import select

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "tokengate.cli", "top", "--gateway",
                             cluster.address, "--interval", "0.3"], stdin=slave, stdout=slave,
                            stderr=slave, env=_env(TERM="xterm"), close_fds=True)
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + 30
        while seen.count(b"NODES (2)") < 2 and time.monotonic() < deadline:  # two frames
            if select.select([master], [], [], 1)[0]:
                seen += os.read(master, 65536)
        assert seen.count(b"NODES (2)") >= 2, seen[-2000:]
        assert b"\x1b[H" in seen and b"q quits" in seen
        os.write(master, b"q")
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with contextlib.suppress(OSError):
            os.close(master)
