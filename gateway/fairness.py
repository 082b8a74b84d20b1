"""Fair shares between clients, as pure policy: who may store calls now, and whose held
calls go next (deficit round robin by weight). No clock, no I/O, no event loop.

A *party* is a client id (every session of one client counts as one party). The gateway
counts each party's calls **in flight**: stored by this gateway and not finished. With a
``depth``, a party's new call goes straight through when the party holds nothing back
already and either the gateway has room (fewer than ``depth`` in flight over all parties)
or the party is under its weighted share of ``depth``:

    share(p) = depth * weight(p) / (sum of the weights of the active parties, p included)

(active: something in flight or held). Otherwise the call is *held*: the gateway keeps it,
neither stored nor acknowledged, and :meth:`Shares.release` hands held calls out as room
opens, by deficit round robin: each party with held calls, in turn, gets ``weight *
QUANTUM`` calls' worth of credit and spends it. A per-party quota caps its in-flight count
whatever the room (held calls past it wait for its own calls to finish).

So the total in flight stays within ``depth`` plus the shares of parties that arrive late
(at most twice ``depth``), and a party that arrives while another floods is at most one
share behind: its first calls are under its share and go straight in.

A party alone is not held to ``depth`` but to ``SOLO_FACTOR`` times it: the depth caps a
pipeline, and one client's throughput should not pay for fairness nobody needs. Alone means
no other party is *present*: active, or seen (a call, an outcome) within ``LINGER`` seconds,
so an interactive client counts between its calls. A newcomer then waits behind at most the
solo depth once, while the lone party's excess drains (its new calls are held meanwhile).
Times are given by the owner (``now``); nothing here reads a clock.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tokengate.shared.errors import ConfigurationError

QUANTUM = 16  # calls a weight-1 party may release per turn of the round robin
SOLO_FACTOR = 8  # a party alone may have this many times the depth in flight
LINGER = 1.0  # seconds a party stays present after its last call or outcome
MAX_WEIGHT = 1000
RELEASE_FRACTION = 4  # held calls are released once this fraction of the depth is free


def parse_table(entries: Iterable[str], what: str, *, low: int = 0) -> dict[str, int]:
    """``["client-a=4", "client-b=2"]`` -> ``{"client-a": 4, "client-b": 2}``, or
    ConfigurationError naming ``what`` and the entry at fault."""
    table: dict[str, int] = {}
    for entry in entries:
        party, sep, number = entry.strip().rpartition("=")
        try:
            value = int(number)
        except ValueError:
            value = -1
        if not sep or not party or value < low:
            raise ConfigurationError(
                f"{what}: {entry!r} is not CLIENT_ID=N with N a whole number >= {low}")
        table[party] = value
    return table


@dataclass(frozen=True, slots=True)
class Policy:
    """The settings the decisions follow (``gateway/config.py`` declares them)."""

    depth: int = 0  # 0: no holding for room (quotas still apply)
    weights: Mapping[str, int] = field(default_factory=dict)
    quota: int = 0  # every party's cap on in-flight calls; 0: none
    quotas: Mapping[str, int] = field(default_factory=dict)  # per party, over ``quota``
    quantum: int = QUANTUM

    @property
    def enabled(self) -> bool:
        return self.depth > 0 or self.quota > 0 or bool(self.quotas)

    def weight(self, party: str) -> int:
        return self.weights.get(party, 1)

    def quota_of(self, party: str) -> int:
        return self.quotas.get(party, self.quota)


class Shares:
    """Per-party counts (in flight, held) and the round-robin ring. Its owner tells it what
    happened (:meth:`admit`, :meth:`finished`, :meth:`dropped`) and asks what to release."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.in_flight: dict[str, int] = {}
        self.held: dict[str, int] = {}
        self.total = 0  # in flight, over all parties
        self._active_weight = 0  # sum of the weights of parties in flight or holding
        self._ring: deque[str] = deque()  # parties with held calls, the next to serve first
        self._deficit: dict[str, int] = {}
        self._charged = False  # the head of the ring got its quantum for this turn
        self._seen: OrderedDict[str, float] = OrderedDict()  # party -> last seen, oldest first
        self._now = 0.0

    # -- what happened -------------------------------------------------------------------------

    def admit(self, party: str, n: int, at: float = 0.0) -> int:
        """``n`` new calls of ``party`` at time ``at``: how many go straight through
        (counted in flight); the rest are held (counted held), in order behind any it holds
        already."""
        self._see(party, at)
        now = min(n, self._straight(party))
        was = self._active(party)
        if now:
            self.in_flight[party] = self.in_flight.get(party, 0) + now
            self.total += now
        if n > now:
            self.held[party] = self.held.get(party, 0) + n - now
            if party not in self._deficit:
                self._deficit[party] = 0
                self._ring.append(party)
        self._became(party, was)
        return now

    def finished(self, party: str, n: int, at: float = 0.0) -> None:
        """``n`` calls of ``party`` in flight finished (or were never stored after all)."""
        self._see(party, at)
        was = self._active(party)
        n = min(n, self.in_flight.get(party, 0))
        left = self.in_flight.get(party, 0) - n
        if left:
            self.in_flight[party] = left
        else:
            self.in_flight.pop(party, None)
        self.total -= n
        self._became(party, was)

    def dropped(self, party: str, n: int) -> None:
        """``n`` held calls of ``party`` will not be released (its session closed, a kill)."""
        was = self._active(party)
        self._unhold(party, n)
        self._became(party, was)

    # -- decisions -----------------------------------------------------------------------------

    def room(self) -> int | None:
        """Calls that may enter before the gateway is at its depth (the solo depth while
        one party is present); None: no depth."""
        depth = self.policy.depth
        if depth <= 0:
            return None
        if not self.contended():
            depth *= SOLO_FACTOR
        return max(0, depth - self.total)

    def contended(self) -> bool:
        """Two parties or more are present (active, or seen within ``LINGER``)."""
        seen = self._seen
        while seen:
            party, at = next(iter(seen.items()))
            if self._now - at <= LINGER:
                break
            if self._active(party):
                self._see(party, self._now)  # an active party stays present
            else:
                del seen[party]
        return len(seen) >= 2

    def batch(self) -> int:
        """The least room worth a release."""
        return max(1, self.policy.depth // RELEASE_FRACTION)

    def share(self, party: str) -> int:
        """``party``'s weighted share of the depth now (at least 1)."""
        weight = self.policy.weight(party)
        active = self._active_weight + (0 if self._active(party) else weight)
        return max(1, self.policy.depth * weight // max(1, active))

    def release(self, at: float = 0.0) -> dict[str, int]:
        """Held calls to release now, per party (moved from held to in flight). With a
        depth, only once a batch's worth of room is open (a quarter of the depth, or all
        that is held): released a few at a time, calls would travel in frames of a few."""
        self._now = max(self._now, at)
        room = self.room()
        out: dict[str, int] = {}
        if room is not None and room < min(self.batch(), sum(self.held.values())):
            return out
        ring, stalled = self._ring, 0
        while ring and (room is None or room > 0) and stalled < len(ring):
            party = ring[0]
            if not self._charged:
                self._deficit[party] += self.policy.weight(party) * self.policy.quantum
                self._charged = True
            can = min(self.held[party], self._deficit[party], self._quota_room(party))
            if room is not None:
                can = min(can, room)
                room -= can
            if can:
                stalled = 0
                out[party] = out.get(party, 0) + can
                self._deficit[party] -= can
                self.in_flight[party] = self.in_flight.get(party, 0) + can
                self.total += can
                self.held[party] -= can
            if not self.held[party]:
                self._leave_ring(party)
            elif self._deficit[party] <= 0 or not self._quota_room(party):
                if not can:
                    stalled += 1
                    self._deficit[party] = 0  # at its quota: it banks nothing meanwhile
                ring.rotate(-1)
                self._charged = False
        return out

    # -- helpers -------------------------------------------------------------------------------

    def _straight(self, party: str) -> int:
        if self.held.get(party):
            return 0  # its calls keep their order: behind those it holds
        mine = self.in_flight.get(party, 0)
        limit = self._quota_room(party)
        if self.policy.depth > 0:
            share = self.share(party) if self.contended() else 0
            limit = min(limit, max(self.room() or 0, share - mine))
        return max(0, limit)

    def _see(self, party: str, at: float) -> None:
        self._now = max(self._now, at)
        self._seen[party] = self._now
        self._seen.move_to_end(party)

    def _quota_room(self, party: str) -> int:
        quota = self.policy.quota_of(party)
        if quota <= 0:
            return 1 << 62
        return max(0, quota - self.in_flight.get(party, 0))

    def _active(self, party: str) -> bool:
        return bool(self.in_flight.get(party) or self.held.get(party))

    def _became(self, party: str, was: bool) -> None:
        now = self._active(party)
        if now != was:
            self._active_weight += self.policy.weight(party) * (1 if now else -1)

    def _unhold(self, party: str, n: int) -> None:
        left = self.held.get(party, 0) - n
        if left > 0:
            self.held[party] = left
            return
        self.held.pop(party, None)
        if party in self._deficit:
            self._leave_ring(party)

    def _leave_ring(self, party: str) -> None:
        if self._ring and self._ring[0] == party:
            self._charged = False
        self._ring.remove(party)
        self.held.pop(party, None)
        del self._deficit[party]
