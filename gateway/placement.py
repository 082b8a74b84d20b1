"""Dispatch policy, pure: how much each agent can take, and which agent gets which token.

An agent reports its free capacity per weight as an absolute figure, together with how many
tasks it had received on its link when it measured it. What the gateway has sent since then
may already fill any of those slots (weights share cores: heavy may use every core), so the
credit for a weight is the reported figure minus everything in transit. Credits therefore
never exceed what the agent can take, and they cannot drift: each report replaces the last.

No locks, threads or clocks here: :class:`~tokengate.gateway.dispatch.Dispatch` owns the book
and calls these under its lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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


def assign(weights: Iterable[Weight], book: Book, eligible: Iterable[str]) -> list[str]:
    """One agent per token (``""``: none has credit, it waits), the one with the most credit
    for its weight; spends the credit (counts the token as sent)."""
    pool = [book[name] for name in eligible if name in book]
    names = [name for name in eligible if name in book]
    out: list[str] = []
    for weight in weights:
        best, best_free = -1, 0
        for i, credit in enumerate(pool):
            free = credit.available(weight)
            if free > best_free:
                best, best_free = i, free
        if best < 0:
            out.append("")
            continue
        pool[best].sent += 1
        out.append(names[best])
    return out


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
