"""Results: store what agents report, then push it to the session owed it; watches.

Owned by the event loop (no locks): the live client sessions by session id (a token carries
the id of the session that submitted it to the agent and back, so a result finds its session
with no per-token state here), the watches (token id -> the sessions that asked for it after
a reconnect, or an operator's; each session knows what it watches, so closing it is cheap),
the ids being stored right now, and the feed of outcomes.

A result reaches its client once, with the outcome Redis stored: an agent's outcomes are
written first (``complete.lua``, fenced by attempt and owner) and only those applied are
pushed; the agent is acked once Redis holds them, so it resends a frame the gateway did not
store. A watch reads the token: one stored earlier is sent by the watch; one not stored yet,
or being stored right now (``_storing``), is left to the push, which takes the watch. A
session never watches what it submitted itself (its push comes anyway), unless its client
asks for the outcome again (a watch frame, a repeat of an idempotency key): then a stored
one is sent once more, and a pending one still only by its push. So each outcome goes out on
one path only, once for each time it is asked for.

An agent resends a frame the gateway stored but did not ack (its link dropped in between);
``complete.lua`` tells such a report apart (``Applied.again``). Its outcome is pushed only if
this process has not pushed it before (``_pushed``: the newest ``PUSHED_KEEP`` token ids and
attempts), so a client is told once; after a gateway restart it is pushed (the process that
stored it may have died before pushing).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence

from tokengate.gateway import items
from tokengate.gateway.conns import AgentConn, ClientConn
from tokengate.gateway.ledger import Applied, LostToken, Outcome, TokenLedger, TokenRecord
from tokengate.gateway.series import Series
from tokengate.gateway.store import Store
from tokengate.shared import wire
from tokengate.shared.errors import PermissionDenied, RedisUnavailable, UnknownToken
from tokengate.shared.rpc import tokengate_pb2 as pb

logger = logging.getLogger(__name__)

RECENT = 200  # outcomes kept for the executions feed
PUSHED_KEEP = 100_000  # outcomes remembered as pushed, against an agent's resent frame
FEED_TEXT_LIMIT = 512  # characters of an error message the feed shows
FEED_KEEP_BYTES = 4096  # larger outcomes are kept in the feed without their payload


def brief(result: pb.ResultItem) -> pb.ResultItem:
    """An outcome as the feed shows it: no payload, traceback or session id."""
    out = pb.ResultItem()
    out.CopyFrom(result)
    out.ClearField("payload")
    out.ClearField("traceback")
    out.ClearField("session")
    out.error_message = out.error_message[:FEED_TEXT_LIMIT]
    return out


class Results:
    def __init__(self, ledger: TokenLedger, store: Store, series: Series) -> None:
        self.ledger = ledger
        self.store = store
        self.series = series
        self._sessions: dict[str, ClientConn] = {}
        self._watches: dict[str, list[ClientConn]] = {}  # token id -> sessions watching it
        self._storing: dict[int, frozenset[str]] = {}  # frame -> ids being stored now
        self._frames = itertools.count()
        self._recent: deque[pb.ResultItem] = deque(maxlen=RECENT)
        self._pushed: OrderedDict[str, int] = OrderedDict()  # token id -> attempt pushed
        # Told the ids of every outcome stored (the fair-share gate counts them out of flight)
        self.on_final: Callable[[Iterable[str]], None] = lambda ids: None

    # -- sessions ------------------------------------------------------------------------------

    def attach(self, conn: ClientConn) -> None:
        """A session opened: the outcomes of what it submits are pushed to it."""
        self._sessions[conn.session] = conn

    def detach(self, conn: ClientConn) -> None:
        """A session closed: its tokens stay in Redis; the client watches them again."""
        self._sessions.pop(conn.session, None)
        if conn.watching:
            for token_id in conn.watching:
                conns = self._watches.get(token_id)
                if conns and conn in conns:
                    conns.remove(conn)
                    if not conns:
                        del self._watches[token_id]
            conn.watching.clear()

    def session_count(self) -> int:
        return len(self._sessions)

    def sessions(self) -> list[ClientConn]:
        return list(self._sessions.values())

    # -- agents' outcomes ----------------------------------------------------------------------

    async def report(self, agent: AgentConn, results: Sequence[pb.ResultItem]) -> int:
        """Store an agent's outcomes (fenced), push those applied; the number applied.

        Raises RedisUnavailable when they could not be stored: the link drops and the agent
        resends them after it reconnects.
        """
        outcomes = [Outcome(r.token_id, items.final_state(r.state), r.attempt,
                            r.SerializeToString()) for r in results]
        frame = next(self._frames)
        self._storing[frame] = frozenset(o.token_id for o in outcomes)
        try:
            applied = await self.store.pipelined(self.ledger.complete_begin, agent.name,
                                                outcomes)
            stored = [r for r, a in zip(results, applied, strict=True) if a.stored]
            self._push(self._first_pushes(stored, applied))
            self.on_final(r.token_id for r in stored)
        finally:
            self._storing.pop(frame, None)
        if len(stored) < len(results):
            logger.info("agent %s: %d stale outcomes ignored (not its tokens, or not this "
                        "attempt, any more)", agent.name, len(results) - len(stored))
        new = [r for r, a in zip(results, applied, strict=True) if a.applied]
        if new:
            now = time.time()
            completed = sum(1 for r in new if r.state == pb.COMPLETED)
            self.series.finished(completed, len(new) - completed,
                                 [now - a.created for a in applied if a.applied and a.created],
                                 now)
            self._remember(new)
        return len(stored)

    def _first_pushes(self, stored: list[pb.ResultItem], applied: Sequence[Applied],
                      ) -> list[pb.ResultItem]:
        """The stored outcomes this process has not pushed yet; remembers them as pushed."""
        again = {a.token_id for a in applied if a.again}
        out = []
        pushed = self._pushed
        for result in stored:
            key = result.token_id
            if key in again and pushed.get(key) == result.attempt:
                continue  # a resent frame: its client was told already
            out.append(result)
            pushed[key] = result.attempt
        while len(pushed) > PUSHED_KEEP:
            pushed.popitem(last=False)
        return out

    def push_decided(self, results: Iterable[pb.ResultItem]) -> None:
        """Outcomes the gateway decided and stored itself (AgentLost, TokenKilled)."""
        results = list(results)
        if results:
            self._push(results)
            self.on_final(r.token_id for r in results)
            self.series.finished(0, len(results))
            self._remember(results)

    def push_lost(self, lost: Sequence[LostToken], message: str) -> None:
        self.push_decided(pb.ResultItem(token_id=t.token_id, state=pb.FAILED,
                                        error_type=wire.AGENT_LOST, error_message=message,
                                        attempt=t.attempt, session=t.session) for t in lost)

    def push_expired(self, expired: Sequence[LostToken], message: str) -> None:
        """Tokens no live agent could take before the placement timeout: FAILED."""
        self.push_decided(pb.ResultItem(token_id=t.token_id, state=pb.FAILED,
                                        error_type=wire.PLACEMENT_TIMEOUT,
                                        error_message=message, attempt=t.attempt,
                                        session=t.session) for t in expired)

    def _push(self, results: Iterable[pb.ResultItem]) -> None:
        """Send each stored result to the session that submitted it and to those watching
        it (once to each); a result nobody takes stays in Redis for its client to fetch.
        The caller's frame stops counting as being stored in the same loop step (no await
        in between), so a watch registered after it reads its ids as stored."""
        batches: dict[ClientConn, list[pb.ResultItem]] = {}
        watches, sessions = self._watches, self._sessions
        for result in results:
            owed = sessions.get(result.session)
            if owed is not None:
                batches.setdefault(owed, []).append(result)
            for watcher in watches.pop(result.token_id, ()) if watches else ():
                watcher.watching.discard(result.token_id)
                if watcher is not owed:
                    batches.setdefault(watcher, []).append(result)
        for conn, batch in batches.items():
            conn.send(results=batch)  # from one agent frame: frame-sized already

    def _remember(self, results: Sequence[pb.ResultItem]) -> None:
        """Feed the executions list; a large outcome is kept without its payload (the views
        strip the rest when they show it)."""
        kept = []
        for result in results[-RECENT:]:
            if len(result.payload) + len(result.traceback) > FEED_KEEP_BYTES:
                result = brief(result)
            kept.append(result)
        self._recent.extend(kept)

    def recent(self, limit: int = RECENT) -> list[pb.ResultItem]:
        """The newest outcomes (oldest first), without payloads, tracebacks or session ids."""
        kept = list(self._recent)[-limit:]
        return [brief(result) for result in kept]

    # -- watches -------------------------------------------------------------------------------

    async def watch(self, conn: ClientConn, ids: list[str], *, any_owner: bool = False,
                    by_key: bool = False, asked: bool = False) -> None:
        """Send the outcomes of ``ids`` to ``conn``: now for those stored, later for the rest.

        A session may watch only its client's tokens; an operator session may watch any
        (``any_owner``). The rest are answered PermissionDenied. ``by_key``: repeats of
        keyed calls, which admission matched to the stored call by key and digest; whoever
        sent the same key and call is owed its outcome (even this very session again).
        ``asked``: the client asked (a watch frame): a stored outcome of this very session's
        is sent again too.
        """
        if any_owner and not conn.operator:
            conn.send(rejected=[items.rejection(i, PermissionDenied(
                "watching other clients' tokens needs the operator token")) for i in ids])
            return
        ids = list(dict.fromkeys(ids))  # each id once
        try:
            records = await self.store.read(self.ledger.records, ids)
        except RedisUnavailable as exc:  # answered, never dropped: the client asks again
            logger.error("cannot look up watched tokens: %s", exc)
            conn.send(rejected=[items.rejection(i, RedisUnavailable(
                f"could not look up token {i}: {exc}")) for i in ids])
            return
        rejected, ready, pending = self._sort_watch(conn, ids, records, any_owner, by_key,
                                                    asked or by_key)
        conn.expect(r.token_id for r in ready)
        conn.expect(pending)
        if pending:  # watched now; a push from here on takes the watch
            for token_id in pending:
                watching = self._watches.setdefault(token_id, [])
                if conn not in watching:
                    watching.append(conn)
                    conn.watching.add(token_id)
            try:  # stored between the first read and the watch: nobody will push those
                again = await self.store.read(self.ledger.records, pending)
            except RedisUnavailable:
                again = []
            ready += self._claim_stored(conn, again)
        if rejected:
            conn.send(rejected=rejected)
        if ready:
            conn.send(results=ready)

    def _sort_watch(self, conn: ClientConn, ids: list[str], records: list[TokenRecord | None],
                    any_owner: bool, by_key: bool = False, again: bool = False,
                    ) -> tuple[list[pb.Rejected], list[pb.ResultItem], list[str]]:
        """Rejections, outcomes to send now, and ids to watch for their push."""
        rejected, ready, pending = [], [], []
        storing = frozenset().union(*self._storing.values())
        for token_id, record in zip(ids, records, strict=True):
            if record is None:
                rejected.append(items.rejection(token_id, UnknownToken(
                    f"no token {token_id} (never submitted, or expired)")))
            elif not (any_owner or by_key) and record.owner != conn.client_id:
                rejected.append(items.rejection(token_id, PermissionDenied(
                    f"token {token_id} belongs to another client")))
            elif record.session == conn.session and not again:
                continue  # this session submitted it: its push comes (or came) here anyway
            elif record.state.is_final and token_id not in storing:
                result = items.result_from_record(record)
                if result is not None:
                    ready.append(result)
            else:
                pending.append(token_id)
        return rejected, ready, pending

    def _claim_stored(self, conn: ClientConn, records: list[TokenRecord | None],
                      ) -> list[pb.ResultItem]:
        out = []
        for record in records:
            if record is None or not record.state.is_final:
                continue
            storing = any(record.token_id in ids for ids in self._storing.values())
            watching = self._watches.get(record.token_id, [])
            if storing or conn not in watching:
                continue  # the push has it
            watching.remove(conn)
            conn.watching.discard(record.token_id)
            if not watching:
                del self._watches[record.token_id]
            result = items.result_from_record(record)
            if result is not None:
                out.append(result)
        return out

    async def received(self, conn: ClientConn, ids: Sequence[str]) -> None:
        """The client has these results: delete them from Redis now (its own only)."""
        try:
            await self.store.write(self.ledger.forget, list(ids), conn.client_id)
        except RedisUnavailable as exc:  # they expire at their TTL instead
            logger.warning("cannot drop received results now: %s", exc)

