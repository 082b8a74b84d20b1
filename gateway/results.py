"""Results: store what agents report, then push it to the client owed it; sessions; watches.

Owns, under ``_lock``: the live client sessions by client id (a token carries its owner's
client id to the agent and back, so a result finds the client's current session with no
per-token state here, also after the client reconnected), the operator watches (token id ->
session, for tokens a session watches that it does not own), and the feed of recent outcomes.

A result reaches its client once, with the outcome Redis stored: an agent's outcomes are
written first (``complete.lua``, fenced by attempt and owner), and only those applied are
pushed. The agent is acked once Redis holds them, so it resends a frame the gateway did not
store. A session that asks for a token (a watch, a resubmission) after it is stored reads the
stored outcome; one that asks before gets the push: store-then-look-up here and
register-then-read in :meth:`watch` leave no gap between them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence

from tokengate.gateway import items
from tokengate.gateway.conns import AgentConn, ClientConn
from tokengate.gateway.ledger import LostToken, Outcome, TokenLedger, TokenRecord
from tokengate.gateway.series import Series
from tokengate.shared.errors import PermissionDenied, RedisUnavailable, UnknownToken
from tokengate.shared.rpc import tokengate_pb2 as pb

logger = logging.getLogger(__name__)

RECENT = 200  # outcomes kept for the executions feed
FEED_TEXT_LIMIT = 512  # characters of an error message the feed keeps


class Results:
    def __init__(self, ledger: TokenLedger, series: Series) -> None:
        self.ledger = ledger
        self.series = series
        self._lock = threading.Lock()
        self._sessions: dict[str, ClientConn] = {}
        self._watches: dict[str, ClientConn] = {}
        self._recent: deque[pb.ResultItem] = deque(maxlen=RECENT)

    # -- sessions ------------------------------------------------------------------------------

    def attach(self, conn: ClientConn) -> None:
        """A session opened: from now on it gets its client's results."""
        with self._lock:
            self._sessions[conn.client_id] = conn

    def detach(self, conn: ClientConn) -> None:
        """A session closed: its tokens stay in Redis; the client watches them again."""
        with self._lock:
            if self._sessions.get(conn.client_id) is conn:
                del self._sessions[conn.client_id]
            for token_id in [t for t, c in self._watches.items() if c is conn]:
                del self._watches[token_id]

    def session_count(self) -> int:
        with self._lock:
            return len(self._sessions)

    # -- agents' outcomes ----------------------------------------------------------------------

    def report(self, agent: AgentConn, results: Sequence[pb.ResultItem]) -> int:
        """Store an agent's outcomes (fenced), push those applied; the number applied.

        Raises RedisUnavailable when they could not be stored: the link drops and the agent
        resends them after it reconnects.
        """
        outcomes = [Outcome(r.token_id, items.final_state(r.state), r.attempt,
                            r.SerializeToString()) for r in results]
        applied = self.ledger.complete(agent.name, outcomes)
        stored = [r for r, a in zip(results, applied, strict=True) if a.applied]
        if len(stored) < len(results):
            logger.info("agent %s: %d stale outcomes ignored (not its tokens, or not this "
                        "attempt, any more)", agent.name, len(results) - len(stored))
        if stored:
            self._push(stored)
            now = time.time()
            self.series.finished(
                ((r.state == pb.COMPLETED, now - a.created if a.created else 0.0)
                 for r, a in zip(results, applied, strict=True) if a.applied), now)
            self._remember(stored)
        return len(stored)

    def push_decided(self, results: Iterable[pb.ResultItem]) -> None:
        """Outcomes the gateway decided and stored itself (AgentLost, TokenKilled)."""
        results = list(results)
        if results:
            self._push(results)
            self.series.finished((False, 0.0) for _ in results)
            self._remember(results)

    def push_lost(self, lost: Sequence[LostToken], message: str) -> None:
        self.push_decided(pb.ResultItem(token_id=t.token_id, state=pb.FAILED,
                                        error_type="AgentLost", error_message=message,
                                        attempt=t.attempt, session=t.owner) for t in lost)

    def _push(self, results: Iterable[pb.ResultItem]) -> None:
        """Send each stored result to the session owed it; a result nobody takes stays in
        Redis for its client to fetch."""
        batches: dict[ClientConn, list[pb.ResultItem]] = {}
        with self._lock:
            watches, sessions = self._watches, self._sessions
            for result in results:
                conn = watches.pop(result.token_id, None) if watches else None
                if conn is None:
                    conn = sessions.get(result.session)
                if conn is not None:
                    batches.setdefault(conn, []).append(result)
        for conn, batch in batches.items():
            conn.send(results=batch)  # from one agent frame: frame-sized already

    def _remember(self, results: Sequence[pb.ResultItem]) -> None:
        """Feed the executions list, without payloads or tracebacks."""
        briefs = []
        for result in results[-RECENT:]:
            brief = pb.ResultItem()
            brief.CopyFrom(result)
            brief.ClearField("payload")
            brief.ClearField("traceback")
            brief.ClearField("session")
            brief.error_message = brief.error_message[:FEED_TEXT_LIMIT]
            briefs.append(brief)
        with self._lock:
            self._recent.extend(briefs)

    def recent(self) -> list[pb.ResultItem]:
        with self._lock:
            return list(self._recent)

    # -- watches -------------------------------------------------------------------------------

    def watch(self, conn: ClientConn, ids: list[str], *, any_owner: bool = False) -> None:
        """Push the results of ``ids`` to ``conn``: now for those stored, later for the rest.

        A session may watch only its client's tokens; an operator session may watch any
        (``any_owner``). The rest are answered PermissionDenied.
        """
        if any_owner and not conn.operator:
            conn.send(rejected=[items.rejection(i, PermissionDenied(
                "watching other clients' tokens needs the operator token")) for i in ids])
            return
        if any_owner:
            with self._lock:
                for token_id in ids:
                    self._watches[token_id] = conn
        conn.expect(len(ids))
        try:
            records = self.ledger.records(ids)
        except RedisUnavailable as exc:
            logger.error("cannot look up watched tokens: %s", exc)
            return
        self._answer_watch(conn, ids, records, any_owner)

    def _answer_watch(self, conn: ClientConn, ids: list[str],
                      records: list[TokenRecord | None], any_owner: bool) -> None:
        results, rejected = [], []
        for token_id, record in zip(ids, records, strict=True):
            error = None
            if record is None:
                error = UnknownToken(f"no token {token_id} (never submitted, or expired)")
            elif not any_owner and record.owner != conn.client_id:
                error = PermissionDenied(f"token {token_id} belongs to another client")
            if error is not None:
                rejected.append(items.rejection(token_id, error))
                if any_owner:
                    with self._lock:
                        self._watches.pop(token_id, None)
                continue
            result = items.result_from_record(record) if record.state.is_final else None
            if result is None:
                continue
            if any_owner:
                with self._lock:
                    if self._watches.pop(token_id, None) is None:
                        continue  # its push got there first
            results.append(result)
        if results or rejected:
            conn.send(results=results or None, rejected=rejected or None)

    def received(self, ids: Sequence[str]) -> None:
        """The client has these results: delete them from Redis now."""
        try:
            self.ledger.forget(ids)
        except RedisUnavailable as exc:  # they expire at their TTL instead
            logger.warning("cannot drop received results now: %s", exc)

