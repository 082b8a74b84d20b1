"""An agent's shared storage declaration, ``--storage NAME=TIER``: its shape and parser.

The agent checks it when it starts; the gateway checks it again in the Hello and counts
writers by it (:mod:`tokengate.gateway.storage`).
"""

from __future__ import annotations

from dataclasses import dataclass

from tokengate.shared.errors import InvalidTags
from tokengate.shared.tags import StorageTier

NAME_FORBIDDEN = "=,| \t"


@dataclass(frozen=True, slots=True)
class Declared:
    """One agent's ``--storage NAME=TIER``."""

    name: str
    tier: StorageTier

    @property
    def cap(self) -> int:
        return self.tier.writer_cap


def parse(text: str) -> Declared | None:
    """``"nas1=SLOW"`` -> Declared; ``""`` -> None (the agent's own disk). Raises
    InvalidTags naming the valid shape and tiers."""
    if not text:
        return None
    name, sep, tier = text.partition("=")
    name, tier = name.strip(), tier.strip().upper()
    valid = ", ".join(t.value for t in StorageTier)
    if not sep or not name or any(c in name for c in NAME_FORBIDDEN):
        raise InvalidTags(f"storage {text!r} must be NAME=TIER, e.g. nas1=SLOW (TIER: {valid})")
    try:
        return Declared(name, StorageTier(tier))
    except ValueError:
        raise InvalidTags(f"storage {text!r}: unknown tier {tier!r}; valid: {valid}") from None
