"""The node agent: one host's runtime linked to the gateway. ``NodeAgent(...).start()``.

Like ``create_server`` for the gateway, this is the whole process minus its command line:
the CLI parses flags and calls it. The agent owns its runtime (scheduler + guards) and its
link; it answers the gateway's commands (re-enable a function, replay or drop a quarantined
call, send its execution history) and reports its process's CPU and memory with its status.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import psutil
from tokengate.node_agent.config import SchedulerConfig
from tokengate.node_agent.guards.settings import GuardsConfig
from tokengate.node_agent.link import AgentLink
from tokengate.node_agent.link_config import LinkConfig
from tokengate.node_agent.nested import NestedTasks
from tokengate.node_agent.runtime import LocalRuntime
from tokengate.shared.errors import QuarantineRecordNotFound
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.snapshot import AgentSnapshot, NestedCounts, ProcessLoad

logger = logging.getLogger(__name__)

REPLAY_WAIT = 15.0


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """An agent's three settings: its link, its scheduler, its guards."""

    link: LinkConfig
    scheduler: SchedulerConfig
    guards: GuardsConfig


class NodeAgent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        # the gateway sums every node's Guard House record and blocks at admission
        self.runtime = LocalRuntime(config.scheduler, config.guards, enforce_blocks=False)
        self.nested = NestedTasks(self.runtime)  # the process's backend: tasks' own calls
        self.link = AgentLink(config.link, self.runtime.scheduler, self.status, self.command)
        self._process = psutil.Process(os.getpid())
        self._process.cpu_percent(None)  # the first reading starts the interval

    @property
    def name(self) -> str:
        return self.config.link.name

    def start(self) -> NodeAgent:
        self.runtime.start()
        try:
            self.link.start()
        except BaseException:
            self.runtime.stop(timeout=1)
            raise
        return self

    def stop(self, grace: float = 10.0) -> None:
        """Leave the cluster: finish admitted work for up to ``grace`` seconds, hand back the
        rest, stop the workers."""
        self.link.stop(drain=grace)
        self.runtime.stop(timeout=1)

    def wait(self, stop: threading.Event) -> str:
        """Block until ``stop`` is set or the gateway refused this agent; why it ended."""
        while not stop.wait(0.2):
            if self.link.fatal.is_set():
                return self.link.fatal_reason
        return ""

    def status(self) -> dict[str, Any]:
        """:meth:`status_snapshot` as its wire map (what the link sends)."""
        return self.status_snapshot().to_wire()

    def status_snapshot(self) -> AgentSnapshot:
        """The scheduler's snapshot (the guards' panels included) and this process's load:
        what the gateway shows of this node (``build_status`` turns it into panels)."""
        status = self.runtime.scheduler.status_snapshot()
        nested = NestedCounts(**self.nested.snapshot())
        with self._process.oneshot():
            process = ProcessLoad(pid=self._process.pid,
                                  cpu_percent=self._process.cpu_percent(None),
                                  rss_bytes=self._process.memory_info().rss,
                                  threads=self._process.num_threads(), time=time.time())
        return replace(status, nested=nested, process=process)

    # -- the gateway's commands ---------------------------------------------------------------

    def command(self, command: pb.Command) -> pb.CommandReply:
        if command.kind == "reenable":
            was = self.runtime.reenable(command.target)
            return pb.CommandReply(ok=was, message="re-enabled" if was else "was not blocked")
        if command.kind == "quarantine_drop":
            try:
                self.runtime.drop_quarantined(command.target)
            except QuarantineRecordNotFound as exc:
                return pb.CommandReply(ok=False, message=str(exc))
            return pb.CommandReply(ok=True, message=f"dropped {command.target}")
        if command.kind == "quarantine_replay":
            return self._replay(command.target)
        if command.kind == "history":
            return self._history(command.target)
        return pb.CommandReply(ok=False, message=f"unknown command {command.kind[:40]!r}")

    def _history(self, target: str) -> pb.CommandReply:
        """The execution history ring buffer, newest ``target`` records ("0": all of it)."""
        try:
            limit = int(target or 0)
        except ValueError:
            return pb.CommandReply(ok=False, message=f"history: {target[:40]!r} is not a count")
        data = self.runtime.guards.history.export(self.name, max(0, limit))
        return pb.CommandReply(ok=True, message="history", data=data)

    def _replay(self, quarantine_id: str) -> pb.CommandReply:
        try:
            token = self.runtime.replay(quarantine_id)
        except QuarantineRecordNotFound as exc:
            return pb.CommandReply(ok=False, message=str(exc))
        if not token.wait(REPLAY_WAIT):
            return pb.CommandReply(ok=True, message=f"replaying as {token.token_id}; still "
                                   f"running after {REPLAY_WAIT:.0f}s")
        try:
            result = token.get(0)
        except Exception as exc:  # the task's own error (or TokenGate's), reported as data
            return pb.CommandReply(ok=False, message=f"replay {token.token_id} failed: "
                                   f"{type(exc).__name__}: {exc}"[:500])
        return pb.CommandReply(ok=True, message=f"replayed as {token.token_id}: completed "
                               f"({type(result).__name__})")
