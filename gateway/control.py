"""Operator controls: drain, resume, kill, re-enable, quarantine, and the audit log.

Owned by the event loop (no locks): the commands sent to agents and not yet answered
(id -> the future their reply settles). Its ledger writes go out on the store's write lane.
A history request is a read, not a control: it is not audited.
Every control is bounded (free text is refused beyond its limit, never stored whole), checked
(a node must exist) and recorded in the audit log with who asked and what came of it. Views
(status, guards, token detail) are in :mod:`.views`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import msgpack
from tokengate.gateway.conns import AgentConn
from tokengate.gateway.dispatch import Dispatch
from tokengate.gateway.gate import Gate
from tokengate.gateway.guards import ClusterGuards
from tokengate.gateway.ledger import AuditEntry, KillOutcome, TokenLedger
from tokengate.gateway.registry import Registry
from tokengate.gateway.results import Results
from tokengate.gateway.store import Store
from tokengate.gateway.views import Views
from tokengate.shared import wire
from tokengate.shared.errors import BadRequest, RedisUnavailable, UnknownToken
from tokengate.shared.rpc import tokengate_pb2 as pb

logger = logging.getLogger(__name__)

MAX_REASON = 512
MAX_ACTOR = 128
MAX_TARGET = 300
COMMAND_TIMEOUT = 20.0
CANCEL_TIMEOUT = 5.0  # seconds the gateway waits for an agent to answer a cancel
HISTORY_TIMEOUT = 10.0  # seconds the gateway waits for the agents' execution histories
HISTORY = "history"  # the agent's command (node_agent/agent.py names the same string)
# The agent's cancel command and its answers (node_agent/link.py names the same strings: the
# gateway and agents meet only through the protocol).
CANCEL, CANCEL_KILLED, CANCEL_REQUESTED = "cancel", "killed", "cancel_requested"
KILL_OK = ("killed", "forwarded", "cancel_requested")  # Kill outcomes that did something


def bounded(what: str, text: str, limit: int) -> str:
    if len(text) > limit:
        raise BadRequest(f"{what} is {len(text)} characters; at most {limit} are accepted")
    return text


class Control:
    def __init__(self, ledger: TokenLedger, store: Store, dispatch: Dispatch,
                 registry: Registry, results: Results, views: Views, gate: Gate,
                 guards: ClusterGuards) -> None:
        self.ledger = ledger
        self.guards = guards
        self.gate = gate
        self.store = store
        self.views = views
        self.dispatch = dispatch
        self.registry = registry
        self.results = results
        self._waiting: dict[int, asyncio.Future[pb.CommandReply]] = {}
        self._ids = itertools.count(1)

    async def _audit(self, actor: str, action: str, target: str, ok: bool,
                     result: str) -> None:
        try:
            await self.store.write(self.ledger.audit, AuditEntry(
                time.time(), actor or "anonymous", action, target[:MAX_TARGET], ok,
                result[:MAX_REASON]))
        except RedisUnavailable as exc:
            logger.error("audit entry lost (%s %s by %s): %s", action, target, actor, exc)
        logger.info("control %s %s by %s: %s", action, target, actor or "anonymous", result)

    # -- drain, resume -------------------------------------------------------------------------

    async def drain(self, node: str, reason: str, actor: str = "") -> str:
        bounded("the drain reason", reason, MAX_REASON)
        bounded("the actor", actor, MAX_ACTOR)
        if node and self.registry.get(node) is None:
            raise BadRequest(f"no agent named {node[:MAX_TARGET]!r}; see tokengate status")
        await self.store.write(self.ledger.set_drain, node, reason)
        self.dispatch.set_drain(node, reason)
        message = f"{node or 'cluster'} draining" + (f": {reason}" if reason else "")
        await self._audit(actor, "drain", node or "cluster", True, message)
        return message

    async def resume(self, node: str, actor: str = "") -> str:
        bounded("the actor", actor, MAX_ACTOR)
        bounded("the node", node, MAX_TARGET)
        await self.store.write(self.ledger.clear_drain, node)
        self.dispatch.clear_drain(node)
        message = f"{node or 'cluster'} resumed"
        await self._audit(actor, "resume", node or "cluster", True, message)
        return message

    # -- kill ----------------------------------------------------------------------------------

    async def kill(self, token_id: str, actor: str = "") -> tuple[str, str]:
        bounded("the token id", token_id, MAX_TARGET)
        bounded("the actor", actor, MAX_ACTOR)
        if self.gate.kill(token_id):  # held at the gateway: its client still owned it
            result = ("killed", "held at the gateway, never stored: its client was told")
            await self._audit(actor, "kill", token_id, True, result[1])
            return result
        message = f"token {token_id} was killed before it started"
        outcome, agent = await self.store.write(self.ledger.kill, token_id, message)
        if outcome is KillOutcome.KILLED:
            record = (await self.store.read(self.ledger.records, [token_id]))[0]
            self.results.push_decided([pb.ResultItem(
                token_id=token_id, state=pb.KILLED, error_type=wire.TOKEN_KILLED,
                error_message=message, session=record.session if record else "",
                attempt=record.attempt if record else 0)])
            result = (outcome.value, "killed while waiting at the gateway")
        elif outcome is KillOutcome.FORWARDED:
            result = await self._cancel_on(agent, token_id)
        elif outcome is KillOutcome.FINISHED:
            result = (outcome.value, "already finished")
        else:
            await self._audit(actor, "kill", token_id, False, "unknown token")
            raise UnknownToken(f"no token {token_id!r} (never submitted, or expired)")
        await self._audit(actor, "kill", token_id, result[0] in KILL_OK, result[1])
        return result

    async def _cancel_on(self, agent: str, token_id: str) -> tuple[str, str]:
        """A token an agent holds: ask that agent to cancel it (kill it if queued there, else
        ask its running call to stop) and say what it did. An agent that does not answer in
        time, or does not know the command, is sent the plain kill (queued tokens only)."""
        conn = self.registry.get(agent)
        if conn is None or not conn.connected:
            return "running", f"held by agent {agent}, which is not connected"
        reply = (await self._ask([conn], CANCEL, token_id, CANCEL_TIMEOUT)).get(conn.name)
        if reply is None or not reply.ok:
            conn.send_kill(token_id)
            why = "did not answer" if reply is None else f"answered {reply.message[:80]!r}"
            return ("forwarded", f"agent {agent} {why}; sent it the kill: skipped if queued, "
                                 "untouched if running")
        said = reply.message
        if said == CANCEL_KILLED:
            return "killed", f"killed on agent {agent} before it started"
        if said == CANCEL_REQUESTED:
            return ("cancel_requested", f"agent {agent} asked the running call to stop; its "
                                        "owner gets TokenCancelled once it stops")
        return "finished", f"already finished on agent {agent}"

    # -- commands forwarded to agents ----------------------------------------------------------

    def on_replies(self, replies: list[pb.CommandReply]) -> None:
        for reply in replies:
            waiter = self._waiting.pop(reply.id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(reply)

    async def _ask(self, conns: list[AgentConn], kind: str, target: str,
                   timeout: float = COMMAND_TIMEOUT) -> dict[str, pb.CommandReply | None]:
        """Send one command to each agent and wait for their replies (None: no answer)."""
        loop = asyncio.get_running_loop()
        waiters: dict[str, asyncio.Future[pb.CommandReply]] = {}
        asked: list[int] = []
        for conn in conns:
            command_id = next(self._ids)
            waiter = self._waiting[command_id] = loop.create_future()
            asked.append(command_id)
            if conn.send_command(pb.Command(id=command_id, kind=kind, target=target)):
                waiters[conn.name] = waiter
        if waiters:
            await asyncio.wait(waiters.values(), timeout=timeout)
        for command_id in asked:  # unanswered (or never sent): a late reply finds nobody
            self._waiting.pop(command_id, None)
        return {name: waiter.result() if waiter.done() else None
                for name, waiter in waiters.items()}

    def _holder(self, quarantine_id: str) -> str:
        """The node whose quarantine lists this call (agents report theirs every second)."""
        for call in self.views.guards().quarantine:
            if call.id == quarantine_id:
                return call.node
        raise BadRequest(f"no connected agent lists a quarantined call {quarantine_id!r}; "
                         "name its node")

    async def reenable(self, function: str, actor: str = "") -> pb.ControlReply:
        """Lift a cluster-wide block: every agent resets its record of ``function``, then
        the gateway forgets it (after their replies, so no report sent before a reset can
        block it again; an agent that does not answer may, when it next reports)."""
        bounded("the function name", function, MAX_TARGET)
        bounded("the actor", actor, MAX_ACTOR)
        replies = await self._ask(self.registry.connected(), "reenable", function)
        was_blocked = self.guards.forget(function)
        busy = sorted(name for name, r in replies.items() if r is not None and wire.refused_busy(r))
        reset = sorted(name for name, r in replies.items()
                       if r is not None and name not in busy)
        local = sorted(name for name, r in replies.items() if r is not None and r.ok)
        silent = sorted(name for name, r in replies.items() if r is None)
        if was_blocked or local:
            message = f"{function} re-enabled cluster-wide"
        else:
            message = f"{function} was not blocked"
        if local:
            message += f" (it was blocked on {', '.join(local)})"
        if reset:
            message += f"; records reset on {', '.join(reset)}"
        if silent:
            message += f"; no answer from {', '.join(silent)}"
        if busy:
            message += f"; too busy to reset it, try again: {', '.join(busy)}"
        await self._audit(actor, "reenable", function, not silent and not busy, message)
        return pb.ControlReply(ok=not silent and not busy, message=message,
                               outcome="reenabled" if was_blocked or local else "not_blocked")

    async def quarantine(self, quarantine_id: str, action: str, node: str, actor: str = "",
                         ) -> pb.ControlReply:
        bounded("the quarantine id", quarantine_id, MAX_TARGET)
        bounded("the actor", actor, MAX_ACTOR)
        if action not in ("replay", "drop"):
            raise BadRequest(f"quarantine action {action[:40]!r}: use replay or drop")
        node = node or self._holder(quarantine_id)
        conns = [c for c in self.registry.connected() if c.name == node]
        if not conns:
            raise BadRequest(f"no agent named {node[:MAX_TARGET]!r} is connected; see "
                             "tokengate status")
        replies = await self._ask(conns, f"quarantine_{action}", quarantine_id)
        done = [(name, r) for name, r in replies.items() if r is not None and r.ok]
        if done:
            name, reply = done[0]
            result = pb.ControlReply(ok=True, outcome=action, message=f"{name}: {reply.message}")
        else:
            why = "; ".join(f"{name}: {r.message}" if r is not None else f"{name}: no answer"
                            for name, r in replies.items()) or "no agent connected"
            result = pb.ControlReply(ok=False, outcome="not_found", message=why)
        await self._audit(actor, f"quarantine_{action}", quarantine_id, result.ok,
                          result.message)
        return result

    # -- reads forwarded to agents -------------------------------------------------------------

    async def history(self, node: str, limit: int) -> pb.HistoryReply:
        """Every connected agent's execution history (or ``node``'s), its newest ``limit``
        records each (0: all it keeps). The records travel as the agent packed them; an agent
        that does not answer in time is listed with ``answered`` false."""
        bounded("the node", node, MAX_TARGET)
        conns = [c for c in self.registry.connected() if not node or c.name == node]
        if node and not conns:
            raise BadRequest(f"no agent named {node!r} is connected; see tokengate status")
        replies = await self._ask(conns, HISTORY, str(max(0, limit)), HISTORY_TIMEOUT)
        reply = pb.HistoryReply(at=time.time())
        for name in sorted(c.name for c in conns):
            reply.nodes.append(_node_history(name, replies.get(name)))
        return reply


def _node_history(node: str, reply: pb.CommandReply | None) -> pb.NodeHistory:
    if reply is None:
        return pb.NodeHistory(node=node, message=f"no answer within {HISTORY_TIMEOUT:.0f}s")
    if not reply.ok:
        return pb.NodeHistory(node=node, message=reply.message[:MAX_REASON])
    try:  # the outer map only: the records stay packed, read by whoever asked
        data = msgpack.unpackb(reply.data)
        return pb.NodeHistory(node=node, answered=True, total_recorded=data["total_recorded"],
                              capacity=data["capacity"], records=data["records"])
    except (ValueError, TypeError, KeyError, msgpack.UnpackException) as exc:
        return pb.NodeHistory(node=node, message=f"unreadable history: {exc}"[:MAX_REASON])
