"""Dispatch policy, pure: which agent gets which token, from the credits agents granted.

An agent grants one credit per free mailbox slot of a weight class; the gateway never sends
more tokens of a weight than the agent's credits for it. Placement follows free capacity: each
token goes to the eligible agent with the most credits left for its weight, so work spreads
over agents instead of piling onto the first one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping

WEIGHTS = ("heavy", "medium", "light")

Credits = MutableMapping[str, MutableMapping[str, int]]  # agent -> weight -> credits


def assign(weights: Iterable[str], credits: Credits, eligible: Iterable[str]) -> list[str]:
    """One agent name per token (``""``: none has credit, the token waits); spends credits."""
    pool = [name for name in eligible if name in credits]
    out: list[str] = []
    for weight in weights:
        best, best_free = "", 0
        for name in pool:
            free = credits[name].get(weight, 0)
            if free > best_free:
                best, best_free = name, free
        if best:
            credits[best][weight] = best_free - 1
        out.append(best)
    return out


def split(count: int, weight: str, credits: Credits, eligible: Iterable[str]) -> dict[str, int]:
    """Share ``count`` waiting tokens of ``weight`` among agents by credit; spends credits."""
    plan: dict[str, int] = {}
    for name in assign([weight] * count, credits, eligible):
        if not name:
            break
        plan[name] = plan.get(name, 0) + 1
    return plan


COALESCE_FRACTION = 4


def ready(want: int, weight: str, credits: Credits, eligible: Iterable[str],
          grants: Mapping[str, Mapping[str, int]]) -> list[str]:
    """Agents worth a dispatch of waiting tokens now: send at once when idle, coalesce under load.

    An agent qualifies once its free credits reach ``want`` or a quarter of its full grant:
    until then it still holds at least three quarters of its capacity in queued work, so
    waiting for a bigger batch costs it nothing, and saves a claim and a frame per handful.
    """
    out = []
    for name in eligible:
        free = credits.get(name, {}).get(weight, 0)
        full = grants.get(name, {}).get(weight, 0)
        if free > 0 and free >= min(want, max(1, full // COALESCE_FRACTION)):
            out.append(name)
    return out


def refund(credits: Credits, agent: str, weight: str, count: int) -> None:
    if count > 0 and agent in credits:
        credits[agent][weight] = credits[agent].get(weight, 0) + count


def total(credits: Mapping[str, Mapping[str, int]], weight: str,
          eligible: Iterable[str]) -> int:
    return sum(credits[name].get(weight, 0) for name in eligible if name in credits)
