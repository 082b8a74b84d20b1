"""How long a long-lived loop pauses after one of its steps failed unexpectedly.

The gateway's background loops (the dispatcher, the heartbeat monitor, the fair-share
release, the lease renewal) and the dashboard's poller must outlive a bug in one step: each
logs the error with its traceback and goes on. One failure costs a short pause; failures in
a row double it up to a cap, so a step that fails every time neither spins a CPU nor floods
the log; the first step that succeeds resets it. Pure: the loop owns its ``Backoff`` and
does the sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass

FIRST = 0.05  # seconds after a first failure
CAP = 2.0     # seconds at most, however many failures in a row


@dataclass
class Backoff:
    """Consecutive failures of one loop's step, and the pause each one earns."""

    first: float = FIRST
    cap: float = CAP
    failures: int = 0

    def failed(self) -> float:
        """Count a failure; the seconds to pause before the next try."""
        self.failures += 1
        return min(self.cap, self.first * (1 << min(self.failures - 1, 32)))

    def succeeded(self) -> None:
        """A step went through: the next failure pauses only ``first`` again."""
        self.failures = 0
