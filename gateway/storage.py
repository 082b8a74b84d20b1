"""Shared storage caps: writers to a storage several agents share, counted cluster-wide.

An agent started with ``--storage NAME=TIER`` says that the storage its tasks'
``storage_speed`` tag refers to is the shared storage NAME, whose cap is TIER's writer count
for the whole cluster (``SLOW`` 10, ...), not per agent. A token of a task that has a
``storage_speed`` tag, sent to such an agent, *holds* a slot of NAME from when the gateway
sends it until its outcome, its loss or its give-back arrives; the gateway never has more
than the cap of them out at once. When agents declare one NAME with different tiers, the
smallest cap wins. Agents without ``--storage`` keep their per-node caps (the agent's own
throttle) and are not counted here.

:class:`SharedStorage` is pure bookkeeping (no I/O, locks or clocks), owned by
:class:`~tokengate.gateway.dispatch.Dispatch` on the event loop. Each gateway counts for its
own agents only: with several gateway shards the cap holds per shard.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from tokengate.shared.storage import Declared, parse

__all__ = ["Declared", "SharedStorage", "caps", "parse"]

logger = logging.getLogger(__name__)


def caps(declared: Iterable[Declared]) -> dict[str, int]:
    """The cap of each storage name: the smallest any agent declared for it."""
    out: dict[str, int] = {}
    for d in declared:
        out[d.name] = min(out.get(d.name, d.cap), d.cap)
    return out


class SharedStorage:
    """Slots of each shared storage held by tokens out on agents, and reservations."""

    def __init__(self) -> None:
        self._agents: dict[str, Declared] = {}  # agent -> what it declared
        self._caps: dict[str, int] = {}          # storage name -> cap (smallest declared)
        self._bound: dict[str, set[str]] = {}    # agent -> its tasks with a storage_speed tag
        self._held: dict[str, tuple[str, str]] = {}  # token id -> (storage name, agent)
        self._out: dict[str, int] = {}           # storage name -> tokens holding a slot
        self._reserved: dict[str, int] = {}      # storage name -> slots promised to a claim
        self._placed: set[str] = set()           # held at placement, not sent yet

    @property
    def active(self) -> bool:
        """Some agent of this gateway declares a shared storage."""
        return bool(self._agents)

    # -- agents ------------------------------------------------------------------------------

    def joined(self, agent: str, declared: Declared | None, bound: Iterable[str],
               held: Iterable[str] = ()) -> None:
        """An agent (re)joined: what it declares, its storage-tagged tasks, and the tokens it
        still holds (any other slot held on it is released: the ledger took them back)."""
        still = set(held)
        self.release([t for t, (_, a) in self._held.items() if a == agent and t not in still])
        self._agents.pop(agent, None)
        self._bound.pop(agent, None)
        if declared is not None:
            self._agents[agent] = declared
            self._bound[agent] = set(bound)
            logger.info("agent %s writes to shared storage %s (%s: %d writers cluster-wide) "
                        "for %d storage-tagged tasks", agent, declared.name,
                        declared.tier.value, declared.cap, len(self._bound[agent]))
        self._recap()

    def left(self, agent: str) -> None:
        """It no longer takes work (its held tokens count until their outcome or loss)."""
        if self._agents.pop(agent, None) is not None:
            self._bound.pop(agent, None)
            self._recap()

    def lost(self, agent: str) -> int:
        """Declared lost: every slot its tokens held is free (they are requeued or failed)."""
        return self.release([t for t, (_, a) in self._held.items() if a == agent])

    def _recap(self) -> None:
        before = self._caps
        self._caps = caps(self._agents.values())
        for name, cap in self._caps.items():
            tiers = {d.tier.value for d in self._agents.values() if d.name == name}
            if before.get(name) != cap and len(tiers) > 1:
                logger.warning("storage %s is declared with tiers %s: the smallest cap, %d "
                               "writers, holds", name, sorted(tiers), cap)

    def caps(self) -> Mapping[str, int]:
        return self._caps

    # -- dispatch asks -----------------------------------------------------------------------

    def storage_for(self, agent: str, task: str) -> str | None:
        """The shared storage a token of ``task`` sent to ``agent`` writes to, or None."""
        declared = self._agents.get(agent)
        if declared is None or task not in self._bound.get(agent, ()):
            return None
        return declared.name

    def room(self, name: str) -> int:
        return max(0, self._caps.get(name, 0) - self._out.get(name, 0)
                   - self._reserved.get(name, 0))

    def reserve(self, name: str, n: int) -> None:
        self._reserved[name] = self._reserved.get(name, 0) + n

    def unreserve(self, name: str, n: int) -> None:
        self._reserved[name] = max(0, self._reserved.get(name, 0) - n)

    def take(self, token_id: str, name: str, agent: str, *, placed: bool = False) -> bool:
        """``token_id`` holds a slot of ``name`` (once, however often it is taken); False
        when it held one already. ``placed``: at placement, released again by
        :meth:`unplace` if it is not sent after all."""
        if token_id in self._held:
            return False
        self._held[token_id] = (name, agent)
        self._out[name] = self._out.get(name, 0) + 1
        if placed:
            self._placed.add(token_id)
        return True

    @property
    def holding(self) -> bool:
        """Some tokens hold slots."""
        return bool(self._held)

    @property
    def placing(self) -> bool:
        """Some tokens hold slots from their placement and were not sent yet."""
        return bool(self._placed)

    def holds(self, token_id: str) -> bool:
        return token_id in self._held

    def sent(self, ids: Iterable[str]) -> None:
        """Placed tokens went out: they keep their slots until their outcome."""
        if self._placed:
            self._placed.difference_update(ids)

    def unplace(self, ids: Iterable[str]) -> int:
        """Placed tokens that will not be sent after all (refused, queued, duplicates)."""
        if not self._placed:
            return 0
        back = [t for t in ids if t in self._placed]
        self._placed.difference_update(back)
        return self.release(back)

    def release(self, ids: Iterable[str]) -> int:
        """Tokens that finished, were given back or lost: their slots are free. How many."""
        if not self._held:
            return 0
        n = 0
        held, out = self._held, self._out
        for token_id in ids:
            entry = held.pop(token_id, None)
            if entry is not None:
                out[entry[0]] -= 1
                self._placed.discard(token_id)
                n += 1
        return n

    def out(self) -> dict[str, int]:
        """Slots held per storage name (for status and tests)."""
        return {name: n for name, n in self._out.items() if n}
