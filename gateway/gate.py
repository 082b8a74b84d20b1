"""The fair-share gate: calls held at the gateway, and the task that releases them.

Owned by the event loop (no locks): the calls each client sent beyond its fair share (held
in order per client, with the session that sent them), the ids this gateway stored and has
not seen finish (each with its client), and the counts and round robin of
:class:`~tokengate.gateway.fairness.Shares`, which decides. Admission asks :meth:`split`
which of a frame's calls go straight through; the results owner tells :meth:`finished`
which tokens reached an outcome; the release task hands held calls back to admission (its
``admit`` callback) as room opens, by deficit round robin over the clients.

A held call is not the gateway's yet: not stored and not acknowledged, so its client keeps
it (its window slot stays taken: that is the flooding client's backpressure) and a gateway
crash loses nothing (the client offers it again). Its session closing changes nothing: like
a frame read before the close, what the client sent is still admitted (a session cut off as
too slow keeps that promise; the client offering it again on a new session is answered by
id). A kill removes it and answers its client ``TokenKilled`` (it never ran and never will).

Held calls cost the gateway memory (about a kilobyte each), so one client may have at most
``max_held_per_client`` of them: past that, :meth:`room_for` keeps its sessions' readers from
reading their next frame until half of them went in. Unread frames stay in gRPC's flow-control
window, which stops the client's sender: a flood (or a client that never reads) is held back
by the transport, not in the gateway's memory, and nothing is refused or sent twice. A
session that closed (cut off as too slow) is read on and its calls go in unheld.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tokengate.gateway import fairness
from tokengate.gateway import items as checks
from tokengate.gateway.aio import Signal
from tokengate.gateway.conns import ClientConn
from tokengate.shared.backoff import Backoff
from tokengate.shared.errors import GatewayBusy, TokenKilled
from tokengate.shared.rpc import tokengate_pb2 as pb

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Held:
    conn: ClientConn
    row: Any  # admission's Row (the gate never looks inside but for its item's id)
    resubmit: bool


ROOM_RECHECK = 0.25  # seconds between looks at a waiting reader's session

Admit = Callable[[ClientConn, list[Any], bool], Awaitable[None]]


class Gate:
    def __init__(self, policy: fairness.Policy, max_held: int,
                 max_held_per_client: int = 0) -> None:
        self.policy = policy
        self.max_held = max_held
        self.max_held_per_client = max_held_per_client  # 0: no cap per client
        self._room: dict[str, asyncio.Future[None]] = {}  # client id -> its readers' wake-up
        self.shares = fairness.Shares(policy)
        self._held: dict[str, deque[Held]] = {}  # client id -> its held calls, in order
        self._held_total = 0
        self._flying: dict[str, str] = {}  # token id -> client id, counted in flight
        self._admit: Admit | None = None
        self._wake = Signal()
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.policy.enabled

    def start(self, admit: Admit) -> None:
        self._admit = admit
        if self.enabled:
            self._task = asyncio.create_task(self._loop(), name="tg-fair-release")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # -- admission asks ------------------------------------------------------------------------

    def split(self, conn: ClientConn, rows: Sequence[Any], resubmit: bool,
              ) -> tuple[list[Any], list[str], list[pb.Rejected]]:
        """Of a frame's screened rows: those admitted now (counted in flight), the ids held
        here, and those refused (``max_held`` calls are held already: GatewayBusy)."""
        if not self.enabled or not conn.open:
            # a closed session's last frames (read after it was cut off as too slow) go in
            # unheld: holding them would only keep them in the gateway's memory longer
            return list(rows), [], []
        party = conn.client_id
        again = [r for r in rows if r.item.token_id in self._flying]  # stored: not new work
        fresh = [r for r in rows if r.item.token_id not in self._flying]
        n = self.shares.admit(party, len(fresh), time.monotonic())
        now, rest = fresh[:n], fresh[n:]
        for row in now:
            self._flying[row.item.token_id] = party
            row.counted = True
        room = max(0, self.max_held - self._held_total)
        keep, over = rest[:room], rest[room:]
        if over:
            self.shares.dropped(party, len(over))
        if keep:
            queue = self._held.setdefault(party, deque())
            queue.extend(Held(conn, row, resubmit) for row in keep)
            self._held_total += len(keep)
            if self.shares.room() != 0:
                self._wake.set()  # room, yet held: behind its own earlier held calls
        busy = GatewayBusy(f"the gateway holds {self.max_held} calls beyond their clients' "
                           "fair shares; offer them again later")
        return (again + now, [r.item.token_id for r in keep],
                [checks.rejection(r.item.token_id, busy) for r in over])

    def not_stored(self, ids: Iterable[str]) -> None:
        """Calls counted in flight that were not stored as new tokens after all (refused,
        or already stored: a repeat)."""
        self.finished(ids)

    # -- the results owner tells ---------------------------------------------------------------

    def finished(self, ids: Iterable[str]) -> None:
        """Tokens that reached their outcome (or never became ours): out of flight."""
        if not self._flying:
            return
        counts: dict[str, int] = {}
        flying = self._flying
        for token_id in ids:
            party = flying.pop(token_id, None)
            if party is not None:
                counts[party] = counts.get(party, 0) + 1
        now = time.monotonic()
        for party, n in counts.items():
            self.shares.finished(party, n, now)
        if counts and self._held_total:
            self._wake.set()

    # -- kills -------------------------------------------------------------------------------

    def kill(self, token_id: str) -> bool:
        """Kill a held call: removed, and its client told TokenKilled. False if none."""
        for party, queue in self._held.items():
            found = [h for h in queue if h.row.item.token_id == token_id]
            if found:
                self._replace(party, deque(h for h in queue if h.row.item.token_id != token_id),
                              len(found))
                error = TokenKilled(f"token {token_id} was killed while held at the gateway "
                                    "(never stored, never run)")
                for held in found:
                    held.conn.send(rejected=[checks.rejection(token_id, error)])
                return True
        return False

    def _replace(self, party: str, queue: deque[Held], dropped: int) -> None:
        if queue:
            self._held[party] = queue
        else:
            del self._held[party]
        self._held_total -= dropped
        self.shares.dropped(party, dropped)
        self._left(party)

    def held(self) -> int:
        return self._held_total

    async def room_for(self, conn: ClientConn) -> None:
        """Return once ``conn``'s client holds fewer than ``max_held_per_client`` calls here
        (at once if it does, or once the session closed); a waiting reader wakes when half
        of them went in."""
        cap, party = self.max_held_per_client, conn.client_id
        while self.enabled and cap and conn.open and len(self._held.get(party, ())) >= cap:
            waiter = self._room.get(party)
            if waiter is None or waiter.done():
                waiter = self._room[party] = asyncio.get_running_loop().create_future()
            # several sessions of one client share the future; look at the session again
            # now and then (a closed one reads on: see split)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(waiter), ROOM_RECHECK)

    def _left(self, party: str) -> None:
        """``party``'s held calls fell: wake its readers once half of the cap is free."""
        waiter = self._room.get(party)
        if waiter is not None and len(self._held.get(party, ())) <= self.max_held_per_client // 2:
            del self._room[party]
            if not waiter.done():
                waiter.set_result(None)

    def in_flight(self) -> int:
        return len(self._flying)

    # -- the release task ----------------------------------------------------------------------

    async def _loop(self) -> None:
        backoff = Backoff()
        while True:
            await self._wake.wait()
            try:
                while await self._release_round():
                    pass
                backoff.succeeded()
            except Exception:  # a bug: say so, and keep releasing (the round is retried)
                logger.exception("fair-share release failed; releasing goes on")
                await asyncio.sleep(backoff.failed())
                self._wake.set()

    async def _release_round(self) -> bool:
        """Release what the round robin allows now, each session's batch admitted at once
        (their writes share the store's pipeline); False when nothing went."""
        batches: dict[tuple[int, bool], tuple[ClientConn, list[Any]]] = {}
        skipped = 0
        for party, n in self.shares.release(time.monotonic()).items():
            queue = self._held[party]
            for _ in range(n):
                held = queue.popleft()
                self._held_total -= 1
                token_id = held.row.item.token_id
                if token_id in self._flying:
                    skipped += 1  # stored meanwhile (offered again): not new work
                    self.shares.finished(party, 1)
                    continue
                self._flying[token_id] = party
                held.row.counted = True
                key = (id(held.conn), held.resubmit)
                batches.setdefault(key, (held.conn, []))[1].append(held.row)
            if not queue:
                del self._held[party]
            self._left(party)
        if not batches:
            return bool(skipped)
        admit = self._admit
        assert admit is not None
        await asyncio.gather(*(admit(conn, rows, resubmit)
                               for (_, resubmit), (conn, rows) in batches.items()))
        return True
