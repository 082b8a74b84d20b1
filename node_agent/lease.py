"""The agent's work lease and the start gate built on it.

The work lease: the agent may start tokens only until ``lease`` seconds after it sent the
newest frame the gateway has acknowledged seeing (the link renews it as acks arrive). An
agent cut off from the gateway (a partition, a SIGSTOP) thus stops starting work before the
gateway gives that work to another agent; when it is back, the gateway's welcome revokes
what was taken from it. Leaving, the agent closes its lease for good.

:class:`AgentStartGate` is what the scheduler's workers ask (see
``node_agent.workers.StartGate``): the lease is open, and the token was not revoked after a
worker claimed it (:meth:`HeldTokens.admits`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from tokengate.node_agent.held import HeldTokens
from tokengate.shared.token import TaskToken


class WorkLease:
    """Whether this agent may start tokens now. ``_changed`` guards ``_until`` and
    ``_closed``; ``is_open`` reads ``_until`` without the lock (one float read)."""

    def __init__(self) -> None:
        self._until = 0.0
        self._closed = False
        self._changed = threading.Condition()

    def is_open(self) -> bool:
        return time.monotonic() < self._until

    def renew(self, until: float) -> None:
        with self._changed:
            if until > self._until and not self._closed:
                self._until = until
                self._changed.notify_all()

    def close(self) -> None:
        """For good (the agent leaves): nothing starts from now on."""
        with self._changed:
            self._closed = True
            self._until = 0.0

    def wait_open(self, timeout: float | None = None) -> bool:
        with self._changed:
            return self._changed.wait_for(self.is_open, timeout)


class AgentStartGate:
    """The scheduler's start gate on an agent: the lease is open and the token still ours."""

    def __init__(self, lease: WorkLease, held: HeldTokens) -> None:
        self.is_open, self.wait_open = lease.is_open, lease.wait_open
        self.admits: Callable[[TaskToken[Any]], bool] = held.admits  # bound: no extra call
