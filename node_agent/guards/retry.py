"""Retries: a policy per complexity level, with exponential backoff and jitter.

A failed attempt is retried when its exception is one the policy retries and attempts remain;
the delay before attempt ``n + 1`` is ``min(max_delay, base_delay * multiplier ** (n - 1))``,
scaled by a random factor in ``[1 - jitter, 1]`` so retries of many tokens do not line up.
The scheduler puts the retried token back ahead of new admissions (``resubmit``); the token
keeps its id and its ``attempt`` grows. A token out of attempts fails with its last error.

Which exceptions retry: by default the transient ones (``OSError`` - which covers
``ConnectionError`` and ``TimeoutError`` - and :class:`RetryableError`), never a
:class:`~shared.errors.TokenGateError` decision (blocked, quarantined, killed). A policy may
list its own exception types.

Simple functions get more, quicker attempts; complex ones fewer, slower ones
(:data:`DEFAULT_POLICIES`). Everything here is pure; the random source is passed in.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from tokengate.node_agent.guards.inspector import ComplexityLevel
from tokengate.shared.errors import ConfigurationError, RetryableError, TokenGateError

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OSError, RetryableError)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often and how soon a failed attempt is tried again."""

    max_attempts: int = 3                 # total attempts, the first included (1 = no retry)
    base_delay: float = 0.05              # seconds before the second attempt (before jitter)
    multiplier: float = 2.0
    max_delay: float = 5.0
    jitter: float = 0.5                   # fraction of the delay that is random (0..1)
    retry_on: tuple[type[BaseException], ...] = TRANSIENT_ERRORS

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError("max_attempts must be at least 1")
        if not 0.0 <= self.jitter <= 1.0:
            raise ConfigurationError("jitter must be between 0 and 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.multiplier < 1.0:
            raise ConfigurationError("delays must be >= 0 and multiplier >= 1")

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_attempts": self.max_attempts, "base_delay": self.base_delay,
            "multiplier": self.multiplier, "max_delay": self.max_delay, "jitter": self.jitter,
            "retry_on": [exc.__name__ for exc in self.retry_on],
        }


NO_RETRY = RetryPolicy(max_attempts=1)

DEFAULT_POLICIES: Mapping[ComplexityLevel, RetryPolicy] = {
    ComplexityLevel.TRIVIAL: RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.5),
    ComplexityLevel.SIMPLE: RetryPolicy(max_attempts=4, base_delay=0.02, max_delay=1.0),
    ComplexityLevel.MODERATE: RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=2.0),
    ComplexityLevel.COMPLEX: RetryPolicy(max_attempts=3, base_delay=0.2, max_delay=5.0),
    ComplexityLevel.EXTREME: RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=10.0),
}


def is_retryable(error: BaseException, policy: RetryPolicy) -> bool:
    """Whether ``error`` is one the policy retries (TokenGate's own decisions never are)."""
    if isinstance(error, TokenGateError) and not isinstance(error, RetryableError):
        return False
    return isinstance(error, policy.retry_on)


def backoff(policy: RetryPolicy, attempt: int, rng: random.Random) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based), jitter applied."""
    raw = min(policy.max_delay, policy.base_delay * policy.multiplier ** (attempt - 1))
    return raw * (1.0 - policy.jitter * rng.random())


def retry_delay(policy: RetryPolicy, attempt: int, error: BaseException,
                rng: random.Random) -> float | None:
    """The delay before the next attempt, or None when the token must fail now."""
    if attempt >= policy.max_attempts or not is_retryable(error, policy):
        return None
    return backoff(policy, attempt, rng)


def policy_for(level: ComplexityLevel, overrides: Mapping[ComplexityLevel, RetryPolicy]
               | None = None) -> RetryPolicy:
    if overrides and level in overrides:
        return overrides[level]
    return DEFAULT_POLICIES[level]


def coerce_policy(value: RetryPolicy | int | None) -> RetryPolicy | None:
    """A decorator's ``retries=`` option: a policy, a number of retries, or None (default)."""
    if value is None or isinstance(value, RetryPolicy):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(
            f"retries must be a RetryPolicy or a whole number >= 0, got {value!r}")
    return replace(RetryPolicy(), max_attempts=value + 1)
