"""The token lifecycle: one state machine, validated in one place.

``CREATED -> WAITING -> ADMITTED -> EXECUTING -> COMPLETED | FAILED``, and ``KILLED``
from any state before ``EXECUTING``, or from ``EXECUTING`` when a running call was asked to
stop (``TaskToken.cancel``) and then stopped. A token may go back to ``WAITING`` from ``ADMITTED``
or ``EXECUTING`` when it is requeued (a retry, or the agent that held it was lost); it keeps
its id and its attempt count grows.
"""

from __future__ import annotations

from enum import Enum

from tokengate.shared.errors import InvalidTransition


class TokenState(str, Enum):
    CREATED = "created"
    WAITING = "waiting"
    ADMITTED = "admitted"
    EXECUTING = "executing"
    COMPLETED = "completed"
    FAILED = "failed"
    KILLED = "killed"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset({TokenState.COMPLETED, TokenState.FAILED, TokenState.KILLED})

# Queued states: the token is known but no worker has started it; kill applies.
KILLABLE_STATES = frozenset({TokenState.CREATED, TokenState.WAITING, TokenState.ADMITTED})

TRANSITIONS: dict[TokenState, frozenset[TokenState]] = {
    TokenState.CREATED: frozenset({TokenState.WAITING, TokenState.KILLED, TokenState.FAILED}),
    TokenState.WAITING: frozenset({TokenState.ADMITTED, TokenState.KILLED, TokenState.FAILED,
                                   TokenState.EXECUTING}),
    TokenState.ADMITTED: frozenset({TokenState.EXECUTING, TokenState.KILLED, TokenState.WAITING,
                                    TokenState.FAILED}),
    TokenState.EXECUTING: frozenset({TokenState.COMPLETED, TokenState.FAILED,
                                     TokenState.WAITING, TokenState.KILLED}),
    TokenState.COMPLETED: frozenset(),
    TokenState.FAILED: frozenset(),
    TokenState.KILLED: frozenset(),
}


def can_transition(current: TokenState, target: TokenState) -> bool:
    return target in TRANSITIONS[current]


def check_transition(current: TokenState, target: TokenState) -> None:
    """Raise :class:`InvalidTransition` unless ``current -> target`` is in the table."""
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "none (final)"
        raise InvalidTransition(
            f"token cannot go from {current.value} to {target.value}; allowed: {allowed}"
        )
