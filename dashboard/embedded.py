"""The dashboard on one host: a source that reads an embedded coordinator in this process.

:class:`EmbeddedSource` stands where :class:`~tokengate.dashboard.source.ClusterSource`
stands: ``read()`` gives the same :class:`Reading` (Status, Series, Guards, Audit, built by
:mod:`.local_view` from the host's ``snapshot()``), and ``operator`` / ``client`` take the
same control calls, applied to the host directly. The pages, the view model, login, CSRF,
CSP and the audit panel are the cluster dashboard's, unchanged.

What a gateway keeps and a single process does not, this source keeps itself: the per-second
series (from the counters' growth between reads), the audit log of controls, and the tokens
it has seen (for the token dialog). The dashboard does not import the scheduler: the
composition root (``tokengate.OperationsCoordinator``) hands over a :class:`Host`.

Threads: ``read`` runs on the poller thread, which alone owns ``_series`` and
``_last_counts``; controls run on Socket.IO handler threads. ``_audit_lock`` guards
``_audit``; ``_tokens_lock`` guards ``_tokens`` (launched tokens and finished rows by id).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import psutil
from tokengate.dashboard import local_view
from tokengate.dashboard.source import AUDIT_LIMIT, SERIES_SECONDS, Reading
from tokengate.shared.errors import TokenGateError, UnknownToken
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.registry import lookup, registered_names
from tokengate.shared.rpc import tokengate_pb2 as pb
from tokengate.shared.snapshot import ProcessLoad
from tokengate.shared.token import TaskToken

logger = logging.getLogger(__name__)

TOKENS_KEPT = 2_000  # tokens the token dialog can open (launched or seen finishing)
LATENCIES_KEPT = 1_000  # durations one second of the chart keeps for its p50/p95


class Host(Protocol):
    """What the embedded dashboard needs of its host (``OperationsCoordinator`` has it)."""

    def snapshot(self) -> dict[str, Any]: ...
    def drain(self, reason: str = "") -> None: ...
    def resume(self) -> None: ...
    def kill(self, token: str) -> bool: ...
    def reenable(self, function: Any) -> bool: ...
    def replay_quarantined(self, quarantine_id: str, *, drop: bool = True) -> TaskToken: ...
    def drop_quarantined(self, quarantine_id: str) -> None: ...
    def submit(self, spec: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> TaskToken: ...


@dataclass(frozen=True)
class Reply:
    """A control's answer, shaped as the gateway's replies the controls read."""

    ok: bool
    message: str = ""
    outcome: str = ""


class SeriesBuckets:
    """Per-second chart points made from the counters' growth; owned by the reading thread."""

    def __init__(self) -> None:
        self.points: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self.seen: deque[str] = deque(maxlen=TOKENS_KEPT)
        self._seen_set: set[str] = set()

    def _bucket(self, second: int) -> dict[str, Any]:
        point = self.points.get(second)
        if point is None:
            point = {"t": second, "completed": 0, "failed": 0, "submitted": 0, "times": []}
            self.points[second] = point
            while len(self.points) > SERIES_SECONDS:
                self.points.popitem(last=False)
        return point

    def add(self, at: float, growth: dict[str, int], recent: list[dict[str, Any]]) -> None:
        point = self._bucket(int(at))
        for name in ("completed", "failed", "submitted"):
            point[name] += max(0, growth.get(name, 0))
        for row in recent:
            key = f"{row['token_id']}/{row['attempt']}"
            if key in self._seen_set:
                continue
            if len(self.seen) == self.seen.maxlen:
                self._seen_set.discard(self.seen[0])
            self.seen.append(key)
            self._seen_set.add(key)
            times = self._bucket(int(row["finished_at"] or at))["times"]
            if len(times) < LATENCIES_KEPT:
                times.append(row["duration"])

    def since(self, since: float) -> list[dict[str, Any]]:
        return [{"t": float(p["t"]), "completed": p["completed"], "failed": p["failed"],
                 "submitted": p["submitted"], "p50": local_view.percentile(p["times"], 0.5),
                 "p95": local_view.percentile(p["times"], 0.95)}
                for t, p in self.points.items() if t >= since]


class EmbeddedSource:
    """Reads and drives one in-process host. ``remote`` is False: no gateway, no token."""

    remote = False

    def __init__(self, host: Host, *, clock: Callable[[], float] = time.time) -> None:
        self.host = host
        self.clock = clock
        self.hostname = socket.gethostname()
        self._process = psutil.Process(os.getpid())  # the reading thread's
        self._series = SeriesBuckets()
        self._last_counts: dict[str, int] | None = None
        self._drain_since = 0.0
        self._audit_lock = threading.Lock()  # guards _audit
        self._audit: deque[dict[str, Any]] = deque(maxlen=AUDIT_LIMIT)
        self._tokens_lock = threading.Lock()  # guards _tokens
        self._tokens: OrderedDict[str, TaskToken | dict[str, Any]] = OrderedDict()

    @property
    def label(self) -> str:
        return f"in this process (embedded, pid {os.getpid()})"

    @property
    def operator(self) -> EmbeddedSource:
        return self

    @property
    def client(self) -> EmbeddedSource:
        return self

    def close(self) -> None:
        """Nothing to close: the host belongs to its coordinator."""

    # -- reading (the poller's thread) ----------------------------------------------------

    def read(self, series_since: float = 0.0) -> Reading:
        reading = Reading(at=self.clock())
        try:
            snapshot = local_view.typed(self.host.snapshot())  # SnapshotError: a TokenGateError
        except TokenGateError as exc:
            reading.errors["status"] = f"{type(exc).__name__}: {exc}"[:300]
            return reading
        with self._process.oneshot():
            snapshot = replace(snapshot, process=ProcessLoad(
                pid=self._process.pid, cpu_percent=self._process.cpu_percent(None),
                rss_bytes=self._process.memory_info().rss))
        tasks = local_view.task_rows([lookup(name) for name in registered_names()])
        node = local_view.node_row(snapshot, host=self.hostname, pid=os.getpid(),
                                   at=reading.at, tasks=tasks)
        if local_view.cluster_state(snapshot) in ("DRAINING", "DRAINED"):
            self._drain_since = self._drain_since or reading.at
        else:
            self._drain_since = 0.0
        reading.status = local_view.status(snapshot, node, self._drain_since)
        self._remember(reading.status["recent"])
        counts = reading.status["counts"]
        growth = {k: v - (self._last_counts or counts).get(k, 0) for k, v in counts.items()}
        self._last_counts = dict(counts)
        self._series.add(reading.at, growth, reading.status["recent"])
        reading.series = self._series.since(max(0.0, series_since - 2.0))
        reading.guards = local_view.guards(snapshot, node["name"])
        with self._audit_lock:
            reading.audit = list(self._audit)
        return reading

    def _remember(self, rows: list[dict[str, Any]]) -> None:
        with self._tokens_lock:
            for row in rows:
                if not isinstance(self._tokens.get(row["token_id"]), TaskToken):
                    self._keep(row["token_id"], row)

    def _keep(self, token_id: str, item: TaskToken | dict[str, Any]) -> None:
        self._tokens[token_id] = item
        self._tokens.move_to_end(token_id)
        while len(self._tokens) > TOKENS_KEPT:
            self._tokens.popitem(last=False)

    # -- controls (Socket.IO handler threads) --------------------------------------------

    def _audited(self, actor: str, action: str, target: str, reply: Reply) -> Reply:
        entry = {"at": self.clock(), "actor": actor, "action": action, "target": target,
                 "ok": reply.ok, "result": reply.message}
        with self._audit_lock:
            self._audit.append(entry)
        logger.info("embedded dashboard: %s %s by %s: %s", action, target, actor,
                    reply.message)
        return reply

    def drain(self, node: str, reason: str, *, actor: str) -> str:
        self.host.drain(reason)
        return self._audited(actor, "drain", node or "cluster",
                             Reply(True, f"draining ({reason or 'no reason given'})")).message

    def resume(self, node: str, *, actor: str) -> str:
        self.host.resume()
        return self._audited(actor, "resume", node or "cluster", Reply(True, "resumed")).message

    def kill(self, token_id: str, *, actor: str) -> Reply:
        killed = self.host.kill(token_id)
        reply = Reply(True, "skipped at dequeue", "killed") if killed else Reply(
            False, "not queued here (unknown, running or finished)", "not_killed")
        return self._audited(actor, "kill", token_id, reply)

    def reenable(self, function: str, *, actor: str) -> Reply:
        was = self.host.reenable(function)
        reply = Reply(was, "re-enabled" if was else "was not blocked")
        return self._audited(actor, "reenable", function, reply)

    def quarantine(self, quarantine_id: str, action: str, *, node: str = "",
                   actor: str) -> Reply:
        try:
            if action == "drop":
                self.host.drop_quarantined(quarantine_id)
                reply = Reply(True, f"dropped {quarantine_id}")
            else:
                token = self.host.replay_quarantined(quarantine_id)
                self._launched(token)
                reply = Reply(True, f"replaying as {token.token_id}")
        except TokenGateError as exc:
            reply = Reply(False, f"{type(exc).__name__}: {exc}")
        return self._audited(actor, f"quarantine {action}", quarantine_id, reply)

    def submit_by_name(self, task: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                       tags: dict[str, Any] | None = None) -> TaskToken:
        """Launch a registered task here (with its own tags: ``tags`` is the cluster's)."""
        token = self.host.submit(lookup(task), args, kwargs)
        self._launched(token)
        return token

    def _launched(self, token: TaskToken) -> None:
        with self._tokens_lock:
            self._keep(token.token_id, token)

    def token_detail(self, token_id: str) -> pb.TokenDetail:
        with self._tokens_lock:
            item = self._tokens.get(token_id)
        if item is None:
            raise UnknownToken(f"no token {token_id!r} launched or seen finishing here "
                               f"(the dashboard keeps the last {TOKENS_KEPT})")
        if isinstance(item, TaskToken):
            return _detail_of_token(item)
        return pb.TokenDetail(token_id=token_id, state=item["state"],
                              operation_type=item["operation_type"], attempt=item["attempt"],
                              node=item["node"], core=item["core"], worker=item["worker"],
                              error_type=item["error_type"], times=row_times(item))


def row_times(row: dict[str, Any]) -> list[pb.StateTime]:
    """A history row's start (its end less its execution time, if it ran) and end."""
    end = pb.StateTime(state=row["state"], at=row["finished_at"])
    if row["state"] == TokenState.KILLED.value:
        return [end]
    start = row["finished_at"] - row.get("duration", 0.0)
    return [pb.StateTime(state=TokenState.EXECUTING.value, at=start), end]


def _detail_of_token(token: TaskToken) -> pb.TokenDetail:
    return pb.TokenDetail(
        token_id=token.token_id, state=token.state.value, operation_type=token.operation_type,
        weight=token.tags.weight.value, attempt=token.attempt,
        idempotent=token.tags.idempotent, node=token.node or "", core=token.core_id or 0,
        worker=token.worker_id or "", error_type=token.error_type,
        error_message=token.error_message, traceback=token.traceback_text,
        args_summary=", ".join(repr(a)[:80] for a in token.args)[:400],
        times=[pb.StateTime(state=s.value, at=t) for s, t in token.timestamps.items()])
