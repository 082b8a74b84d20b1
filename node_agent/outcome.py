"""How one run of a claimed token ended, as a value the worker acts on.

The task runner (:class:`node_agent.runner.TaskRunner`) returns one :class:`Outcome` per run
instead of signalling the unusual endings by exceptions: the worker and the scheduler read
from it whether the run finalised the token, and in which state. A task's own exception is
data (the token's error), never a signal to the runner.

``final_state(outcome)`` is the state the run left the token in when that state is final;
None when the run did not finalise it (handed back for a retry, dropped because the watchdog
finished it, or never run because it could not be claimed).
"""

from __future__ import annotations

from enum import Enum

from tokengate.shared.lifecycle import TokenState


class Outcome(str, Enum):
    """The end of one run of a token on a worker."""

    COMPLETED = "completed"  # the call returned; the token holds its result
    FAILED = "failed"        # the call raised; the token holds its error
    TIMED_OUT = "timed_out"  # failed with TaskTimeLimit (never retried)
    KILLED = "killed"        # a cancel was asked while it ran: its outcome was dropped
    RETRYING = "retrying"    # it failed and went back to WAITING for a retry
    REVOKED = "revoked"      # the start gate no longer admits it: failed before its call
    DISCARDED = "discarded"  # it returned past its time limit, which had failed it already
    SKIPPED = "skipped"      # not claimable (killed while queued, or run inline elsewhere)


_FINAL: dict[Outcome, TokenState | None] = {
    Outcome.COMPLETED: TokenState.COMPLETED,
    Outcome.FAILED: TokenState.FAILED,
    Outcome.TIMED_OUT: TokenState.FAILED,
    Outcome.KILLED: TokenState.KILLED,
    Outcome.RETRYING: None,
    Outcome.REVOKED: TokenState.FAILED,
    Outcome.DISCARDED: None,
    Outcome.SKIPPED: None,
}


def final_state(outcome: Outcome) -> TokenState | None:
    """The final state this run put the token in; None if the run did not finalise it."""
    return _FINAL[outcome]
