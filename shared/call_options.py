"""Per-call options: what one call of a decorated function may carry besides its arguments.

``fn.options(key="order-42")(*args)`` submits with :class:`CallOptions`. An idempotency key
names a call: the same key again (from a retry, a restarted client, another client) is the
same token, with the same id and outcome, as long as the key is kept; the same key with other
arguments or another task is an :class:`IdempotencyConflict`.

A keyed call's token id is a function of the key alone (:func:`key_token_id`), so every
client derives the same id, and the gateway's rule "a repeated id is the same call" applies.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from tokengate.shared.errors import BadArguments

MAX_KEY_LENGTH = 255  # characters of an idempotency key
KEY_ID_PREFIX = "key-"


def key_problem(key: object) -> str | None:
    """Why ``key`` cannot be an idempotency key, or None when it can."""
    if not isinstance(key, str):
        return f"an idempotency key is a str, not {type(key).__name__}"
    if not key or len(key) > MAX_KEY_LENGTH:
        return f"an idempotency key has 1 to {MAX_KEY_LENGTH} characters, not {len(key)}"
    return None


def key_token_id(key: str) -> str:
    """The token id of the call named ``key``: the same for every client of the cluster."""
    return KEY_ID_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class CallOptions:
    """Options of one call. ``key``: its idempotency key (None: an ordinary call)."""

    key: str | None = None

    def __post_init__(self) -> None:
        if self.key is not None:
            problem = key_problem(self.key)
            if problem is not None:
                raise BadArguments(problem)

    @property
    def token_id(self) -> str | None:
        """The token id this call must have (keyed), or None (any new id)."""
        return None if self.key is None else key_token_id(self.key)
