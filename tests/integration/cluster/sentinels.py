"""A Redis primary, its replicas and three sentinels on loopback, for failover tests.

Each is a real redis-server child (:class:`~tokengate.shared.redis_server.RedisServer`), the
sentinels started as ``redis-server <conf> --sentinel`` with short timings, so a killed
primary is replaced within a few seconds. Waits poll the servers' own answers (INFO,
SENTINEL ...): there is no event to wait on across processes.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from tokengate.shared.redis_server import RedisServer

SERVICE = "tg"
QUORUM = 2
DOWN_AFTER_MS = 1000  # a primary silent this long is subjectively down
FAILOVER_TIMEOUT_MS = 5000


def _poll(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.RedisError):
            if predicate():
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)  # servers in other processes: nothing to wait on but their answers


class SentinelRig:
    """``replicas`` replicas of one primary, watched by three sentinels as ``SERVICE``."""

    def __init__(self, folder: Path, *, replicas: int = 2) -> None:
        self.folder = folder
        self.replica_count = replicas
        self.primary: RedisServer | None = None
        self.replicas: list[RedisServer] = []
        self.sentinels: list[RedisServer] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}?db=0"

    def _dir(self, name: str) -> str:
        path = self.folder / name
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def start(self) -> SentinelRig:
        self.primary = RedisServer(directory=self._dir("primary")).start()
        for i in range(self.replica_count):
            self.replicas.append(RedisServer(directory=self._dir(f"replica{i}"), options=(
                "--replicaof", "127.0.0.1", str(self.primary.port))).start())
        for replica in self.replicas:
            _poll(lambda r=replica: self._info(r.port)["master_link_status"] == "up", 15,
                  f"replica {replica.port} in sync")
        for i in range(3):
            self.sentinels.append(self._sentinel(i))
        _poll(self._sentinels_ready, 20, "the sentinels to know the replicas and each other")
        return self

    def _sentinel(self, i: int) -> RedisServer:
        folder = self._dir(f"sentinel{i}")
        conf = Path(folder) / "sentinel.conf"
        assert self.primary is not None
        conf.write_text(
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} {QUORUM}\n"
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {SERVICE} {self.replica_count}\n")
        return RedisServer(directory=folder, config_file=str(conf),
                           options=("--sentinel",)).start()

    def _ask(self, sentinel: RedisServer, *command: str) -> Any:
        client = redis.Redis(port=sentinel.port, socket_timeout=2, decode_responses=True)
        try:
            return client.execute_command(*command)
        finally:
            client.close()

    def _info(self, port: int) -> dict[str, Any]:
        client = redis.Redis(port=port, socket_timeout=2, decode_responses=True)
        try:
            return client.info("replication")
        finally:
            client.close()

    def _sentinels_ready(self) -> bool:
        for sentinel in self.sentinels:
            fields = self._ask(sentinel, "SENTINEL", "MASTER", SERVICE)  # parsed: a dict
            if int(fields["num-slaves"]) < self.replica_count or \
                    int(fields["num-other-sentinels"]) < len(self.sentinels) - 1:
                return False
        return True

    def primary_port(self) -> int:
        """The primary's port as the first sentinel that answers names it."""
        for sentinel in self.sentinels:
            with contextlib.suppress(redis.RedisError):
                _, port = self._ask(sentinel, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
                return int(port)
        raise AssertionError("no sentinel answers")

    def kill_primary(self) -> int:
        """SIGKILL the primary (it stays down); its port."""
        assert self.primary is not None and self.primary.process is not None
        port = self.primary.port
        self.primary.process.send_signal(signal.SIGKILL)
        self.primary.process.wait(10)
        return port

    def wait_promoted(self, old: int, timeout: float = 30.0) -> RedisServer:
        """Wait until every sentinel names a replica as the primary, that replica says it is
        one, and the other replicas follow it; the new primary."""
        def promoted() -> bool:
            ports = {int(self._ask(s, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)[1])
                     for s in self.sentinels}
            if len(ports) != 1 or old in ports:
                return False
            (port,) = ports
            info = self._info(port)
            return info["role"] == "master" and \
                int(info["connected_slaves"]) >= self.replica_count - 1
        _poll(promoted, timeout, "a replica promoted in the old primary's place")
        port = self.primary_port()
        return next(r for r in self.replicas if r.port == port)

    def stop(self) -> None:
        for server in [*self.sentinels, *self.replicas, self.primary]:
            if server is not None:
                server.stop()
