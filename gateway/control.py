"""The gateway's registry and controls: agents joining and lost, drain, resume, kill, status.

An agent is declared lost when no frame came from it for ``heartbeat_timeout`` seconds (its
link broken or silent); then every token it held is requeued with attempt + 1, or failed with
``AgentLost``. A drain never looks like loss: agents keep heartbeating while drained.
After a gateway restart, agents registered in Redis get a full timeout to reconnect.
"""

from __future__ import annotations

import logging
import threading
import time

from tokengate.gateway import credits as policy
from tokengate.gateway.conns import AgentConn
from tokengate.gateway.core import GatewayCore
from tokengate.shared.errors import AgentRejected, BadRequest, RedisUnavailable, UnknownToken
from tokengate.shared.rpc import tokengate_pb2 as pb

logger = logging.getLogger(__name__)

VERSION = "0.1.0"


class Gateway(GatewayCore):
    """The whole gateway minus gRPC: start it, hand it frames, stop it."""

    def start(self) -> Gateway:
        self.ledger.ping()
        cluster, nodes = self.ledger.drain_state()
        with self._dispatch_lock:
            self.cluster_drain, self.node_drain = cluster, nodes
        self._sync_pending()
        self._threads = [
            threading.Thread(target=self.dispatch_loop, name="tg-dispatch", daemon=True),
            threading.Thread(target=self.monitor_loop, name="tg-monitor", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        logger.info("gateway started; pending %s; drain %r", self._pending, cluster)
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._kick.set()
        for conn in list(self.agents.values()):
            conn.close()
        for thread in getattr(self, "_threads", []):
            thread.join(timeout=5)

    # -- registry ------------------------------------------------------------------------

    def register_agent(self, hello: pb.Hello, grant: list[pb.Credit]) -> AgentConn:
        if not hello.name or not hello.incarnation:
            raise AgentRejected("an agent's hello needs a name and an incarnation")
        previous = self.agents.get(hello.name)
        if previous is not None and previous.incarnation != hello.incarnation \
                and previous.connected:
            raise AgentRejected(f"agent name {hello.name!r} is taken by a live agent "
                                f"on {previous.host}")
        conn = AgentConn(hello)
        with self._dispatch_lock:
            if previous is not None:
                previous.close()
            self.agents[conn.name] = conn
            self._credits[conn.name] = {c.weight: c.count for c in grant}
            conn.grant = {c.weight: c.count for c in grant}
        try:
            self._adopt(conn, list(hello.held))
        except RedisUnavailable:
            with self._dispatch_lock:
                if self.agents.get(conn.name) is conn:
                    del self.agents[conn.name]
                    self._credits.pop(conn.name, None)
            conn.close()
            raise
        logger.info("agent %s registered from %s (pid %d) with credits %s",
                    conn.name, conn.host, conn.pid, self._credits[conn.name])
        self._kick.set()
        return conn

    def _adopt(self, conn: AgentConn, held: list[str]) -> None:
        """Reconcile what Redis says the agent holds with what it says it holds; record it."""
        record = self.ledger.agents().get(conn.name)
        if record is not None and record.get("incarnation") != conn.incarnation:
            # The same node restarted: what its previous process held is gone.
            self._requeue(conn.name, None)
        else:
            missing = self.ledger.inflight_ids(conn.name) - set(held)
            if missing:  # dispatched but never received (e.g. the gateway died mid-send)
                self._requeue(conn.name, sorted(missing), transit=True)
        self.ledger.register_agent(conn.name, {
            "host": conn.host, "pid": conn.pid, "incarnation": conn.incarnation,
            "tasks": sorted(conn.tasks), "registered": time.time()})

    def agent_disconnected(self, conn: AgentConn) -> None:
        """The link broke: no more credit; the monitor decides whether the agent is lost.

        An agent that said it was leaving is gone for good: what it still holds is handed
        to other agents at once.
        """
        conn.close()
        with self._dispatch_lock:
            current = self.agents.get(conn.name) is conn
            if current:
                self._credits[conn.name] = {}
        logger.info("agent %s disconnected", conn.name)
        if current and conn.leaving and not self._stopping.is_set():
            self.declare_lost(conn.name, reason="it stopped")

    def monitor_loop(self) -> None:
        interval = min(1.0, self.config.heartbeat_timeout / 4)
        while not self._stopping.wait(interval):
            try:
                self._monitor_once()
            except RedisUnavailable as exc:
                logger.error("heartbeat bookkeeping paused: %s", exc)

    def _monitor_once(self) -> None:
        now_wall = time.time()
        live = {name: conn.last_seen_wall for name, conn in self.agents.items()
                if conn.connected}
        self.ledger.touch_agents(live)
        deadline = now_wall - self.config.heartbeat_timeout
        seen_at = self.ledger.last_seen()
        for name, conn in list(self.agents.items()):
            seen_at.setdefault(name, conn.last_seen_wall)
        for name, seen in seen_at.items():
            conn = self.agents.get(name)
            if conn is not None:
                seen = max(seen, conn.last_seen_wall)
            if max(seen, self.started) < deadline:
                self.declare_lost(name)

    def declare_lost(self, name: str, reason: str = "") -> None:
        conn = self.agents.get(name)
        reason = reason or f"no heartbeat for {self.config.heartbeat_timeout:.1f}s"
        logger.warning("agent %s declared lost: %s", name, reason)
        with self._dispatch_lock:
            if conn is not None and self.agents.get(name) is conn:
                del self.agents[name]
                self._credits.pop(name, None)
        if conn is not None:
            conn.close()
        self._requeue(name, None, message=f"agent {name} was lost ({reason}) while holding "
                                           "the token")
        self.ledger.forget_agent(name)

    # -- controls ------------------------------------------------------------------------

    def drain(self, node: str, reason: str) -> str:
        if node and node not in self.agents:
            raise BadRequest(f"no agent named {node!r}; see tokengate status")
        self.ledger.set_drain(node, reason)
        with self._dispatch_lock:
            if node:
                self.node_drain[node] = reason
            else:
                self.cluster_drain = reason
        logger.info("drain %s: %s", node or "cluster", reason)
        return f"{node or 'cluster'} draining: {reason}" if reason else \
            f"{node or 'cluster'} draining"

    def resume(self, node: str) -> str:
        self.ledger.clear_drain(node)
        with self._dispatch_lock:
            if node:
                self.node_drain.pop(node, None)
            else:
                self.cluster_drain = None
        self._kick.set()
        logger.info("resume %s", node or "cluster")
        return f"{node or 'cluster'} resumed"

    def kill(self, token_id: str) -> tuple[str, str]:
        message = f"token {token_id} was killed before it started"
        outcome, agent = self.ledger.kill(token_id, message)
        if outcome == "killed":
            self._push([pb.ResultItem(token_id=token_id, state=pb.KILLED,
                                      error_type="TokenKilled", error_message=message,
                                      session=self._owners([token_id])[token_id])])
            return outcome, "killed while waiting at the gateway"
        if outcome == "forwarded":
            conn = self.agents.get(agent)
            if conn is not None and conn.send_kill(token_id):
                return outcome, f"sent to agent {agent}: skipped if queued, untouched if running"
            return "running", f"held by agent {agent}, which is not connected"
        if outcome == "finished":
            return outcome, "already finished"
        raise UnknownToken(f"no token {token_id!r} (never submitted, or expired)")

    def status(self) -> pb.StatusReply:
        names = list(self.agents)
        inflight = self.ledger.inflight_counts(names)
        reply = pb.StatusReply(uptime=time.time() - self.started,
                               inflight=sum(inflight.values()))
        reply.counts.update(self.ledger.counts())
        reply.counts.update({f"gateway_{k}": v for k, v in self.stats.items()})
        reply.pending.update(self.ledger.queue_lengths(policy.WEIGHTS))
        with self._dispatch_lock:
            cluster, node_drain = self.cluster_drain, dict(self.node_drain)
            book = {name: dict(self._credits.get(name, {})) for name in names}
        for name in names:
            conn = self.agents[name]
            drain = node_drain.get(name, cluster)
            reply.nodes.append(_node_status(conn, inflight[name], drain, book[name]))
        for result in list(self.recent):
            brief = reply.recent.add()
            brief.CopyFrom(result)
            brief.ClearField("payload")
            brief.ClearField("traceback")
        if cluster is None:
            reply.state = "RUNNING"
        else:
            reply.state = "DRAINING" if reply.inflight else "DRAINED"
            reply.reason = cluster
        return reply

    def ping(self) -> pb.PingReply:
        return pb.PingReply(version=VERSION, time=time.time())


def _node_status(conn: AgentConn, inflight: int, drain: str | None,
                 book: dict[str, int]) -> pb.NodeStatus:
    if not conn.connected:
        state = "DISCONNECTED"
    elif drain is not None:
        state = "DRAINING" if inflight else "DRAINED"
    else:
        state = "UP"
    return pb.NodeStatus(
        name=conn.name, state=state, reason=drain or "", host=conn.host, inflight=inflight,
        credits=[pb.Credit(weight=w, count=max(0, n)) for w, n in sorted(book.items())],
        last_seen=conn.last_seen_wall, topology=conn.topology, snapshot=conn.snapshot)

