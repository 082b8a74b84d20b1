"""Dispatch policy, pure: how much each agent can take, and which agent gets which token.

An agent reports its free capacity per weight as an absolute figure, together with how many
tasks it had received on its link when it measured it. What the gateway has sent since then
may already fill any of those slots (weights share cores: heavy may use every core), so the
credit for a weight is the reported figure minus everything in transit. Credits therefore
never exceed what the agent can take, and they cannot drift: each report replaces the last.

A batch is cut into per-agent *chunks* when its tokens are known to be short: the agent
chosen for a token keeps the tokens after it while their predicted run time (``costs``, from
:mod:`~tokengate.gateway.runtimes`) stays within ``budget`` seconds. Every frame to an agent,
and every result frame and ack that follows it, costs about a millisecond of CPU across the
processes, so fifty agents each given a few no-ops per client frame spend more on frames than
on work; a token whose run time is unknown or long (``inf``, or above the budget) is never
chunked, so CPU-bound work still spreads over every agent with room. Ties in free credit go
to the agent that started a chunk least recently (``turn``): agents that finish at once and
report full credit again do not win every batch.

No locks, threads or clocks here: :class:`~tokengate.gateway.dispatch.Dispatch` owns the book
and calls these under its lock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tokengate.shared.tags import Weight

WEIGHTS = tuple(Weight)
COALESCE_FRACTION = 4


@dataclass(slots=True)
class AgentCredit:
    """One agent's side of the book."""

    reported: dict[Weight, int] = field(default_factory=dict)  # free per weight, absolute
    received: int = 0     # tasks the agent had received when it reported
    sent: int = 0         # tasks sent to it on this link so far
    full: dict[Weight, int] = field(default_factory=dict)  # the most it ever reported free
    turn: int = 0         # when it last started a chunk (ties in credit go to the oldest)

    def report(self, free: Mapping[Weight, int], received: int) -> None:
        """A new absolute report (the hello's, or a later frame's)."""
        if received < self.received:
            return  # an older measurement than the one we have
        self.reported = {w: max(0, int(n)) for w, n in free.items()}
        self.received = received
        for weight, n in self.reported.items():
            self.full[weight] = max(self.full.get(weight, 0), n)

    def in_transit(self) -> int:
        return max(0, self.sent - self.received)

    def available(self, weight: Weight) -> int:
        return max(0, self.reported.get(weight, 0) - self.in_transit())

    def snapshot(self) -> dict[Weight, int]:
        return {w: self.available(w) for w in WEIGHTS}


Book = dict[str, AgentCredit]  # agent name -> credit


def assign(weights: Sequence[Weight], book: Book, eligible: Iterable[str],
           costs: Sequence[float] | None = None, budget: float = 0.0) -> list[str]:
    """One agent per token (``""``: none has credit, it waits); spends the credit (counts the
    token as sent).

    A token starts a chunk on the agent with the most credit for its weight (the one that
    started a chunk least recently, among equals); the tokens after it join that chunk while
    the agent has credit for them and the chunk's predicted run time (``costs[i]`` seconds
    each, ``inf`` when unknown) stays within ``budget``. ``budget`` 0: one token per chunk.
    """
    names = [name for name in eligible if name in book]
    if not names:
        return ["" for _ in weights]
    # Per agent: its reported figures and what it was sent beyond what it had received.
    reported = [book[name].reported for name in names]
    transit = [book[name].in_transit() for name in names]
    turns = [book[name].turn for name in names]
    turn = max(turns)
    out: list[str] = []
    current, chunk_cost = -1, math.inf
    if budget <= 0:
        costs = None  # no chunks at all
    for i, weight in enumerate(weights):
        cost = costs[i] if costs is not None else math.inf
        if current >= 0 and chunk_cost + cost <= budget \
                and reported[current].get(weight, 0) - transit[current] > 0:
            chunk_cost += cost
        else:
            current = _most_free(weight, reported, transit, turns)
            if current < 0:
                out.append("")
                continue
            turn += 1
            turns[current], chunk_cost = turn, cost
        transit[current] += 1
        out.append(names[current])
    for name, sent, started in zip(names, transit, turns, strict=True):
        credit = book[name]
        credit.sent = credit.received + sent
        credit.turn = started
    return out


def _most_free(weight: Weight, reported: list[dict[Weight, int]], transit: list[int],
               turns: list[int]) -> int:
    """The agent with the most credit for ``weight`` (least recent ``turn`` among equals);
    -1 if none has any."""
    best, best_free, best_turn = -1, 0, 0
    for i, figures in enumerate(reported):
        free = figures.get(weight, 0) - transit[i]
        if free > best_free or (free == best_free and free > 0 and turns[i] < best_turn):
            best, best_free, best_turn = i, free, turns[i]
    return best


def refund(book: Book, agent: str, count: int) -> None:
    """Tokens counted as sent that were not: the agent's credit comes back."""
    credit = book.get(agent)
    if credit is not None and count > 0:
        credit.sent = max(credit.received, credit.sent - count)


def split(count: int, weight: Weight, book: Book, eligible: Iterable[str]) -> dict[str, int]:
    """Share ``count`` waiting tokens of ``weight`` among agents by credit; spends it."""
    plan: dict[str, int] = {}
    for name in assign([weight] * count, book, eligible):
        if not name:
            break
        plan[name] = plan.get(name, 0) + 1
    return plan


def ready(want: int, weight: Weight, book: Book, eligible: Iterable[str]) -> list[str]:
    """Agents worth a dispatch of waiting tokens now: at once when idle, coalesced under load.

    An agent qualifies once its credit reaches ``want`` or a quarter of the most it ever had:
    until then it still holds three quarters of its capacity in queued work, so waiting for a
    bigger batch costs it nothing, and saves a claim and a frame per handful.
    """
    out = []
    for name in eligible:
        credit = book.get(name)
        if credit is None:
            continue
        free = credit.available(weight)
        full = credit.full.get(weight, 0)
        if free > 0 and free >= min(want, max(1, full // COALESCE_FRACTION)):
            out.append(name)
    return out


def saturated(credit: AgentCredit, waiting: Mapping[Weight, int] | None = None) -> bool:
    """No credit for any weight that has tokens waiting; with none waiting (or ``waiting``
    not given), no credit for any weight at all."""
    wanted = [w for w in WEIGHTS if waiting and waiting.get(w, 0) > 0] or list(WEIGHTS)
    return all(credit.available(w) == 0 for w in wanted)
