"""The ordering barrier between submissions in flight and the reports that follow them.

``submit_begin`` lets the gateway dispatch new calls while their ``submit`` script is in
flight. An agent's report on those calls could then, on another connection, reach Redis
first and find no token. So every report (``start``, ``complete``) first waits until each
submission sent before it has been answered: :class:`Tickets` is that barrier (it guards only
the set of open tickets, under its own condition). Each submission is answered or given up
within ``STORE_RETRY``; a report still waiting past ``TICKET_WAIT`` means a bug left one
open, and it fails (:class:`OrderingTimeout`) rather than go ahead out of order.
"""

from __future__ import annotations

import logging
import threading

from tokengate.shared.errors import OrderingTimeout

logger = logging.getLogger(__name__)

STORE_RETRY = 60.0  # seconds a submission whose reply was lost is run again
TICKET_WAIT = STORE_RETRY + 30.0  # a report waits this long for prior submissions at most


class Tickets:
    """Submissions sent and not yet answered (ticket -> the thread that reads the answer);
    reports wait for those sent before them by other threads. A thread never waits for its
    own: it reads that answer only after what it does now (a give-back of calls its agent's
    closed link refused, in the middle of an early dispatch, waited on itself)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._open: dict[int, int] = {}
        self._next = 0

    def take(self) -> int:
        with self._changed:
            self._next += 1
            self._open[self._next] = threading.get_ident()
            return self._next

    def done(self, ticket: int) -> None:
        with self._changed:
            self._open.pop(ticket, None)
            self._changed.notify_all()

    def wait_prior(self, timeout: float = TICKET_WAIT) -> None:
        """Wait until every submission other threads sent before now is answered. Each is
        answered or given up within STORE_RETRY; past ``timeout`` a bug left one open: log
        it and raise :class:`OrderingTimeout` (the report is not applied out of order)."""
        with self._changed:
            if not self._open:
                return
            horizon, me = self._next, threading.get_ident()

            def clear() -> bool:
                return all(t > horizon or owner == me for t, owner in self._open.items())
            if self._changed.wait_for(clear, timeout):
                return
            stuck = sorted(t for t, owner in self._open.items() if t <= horizon and owner != me)
        logger.error("a report waited %.1fs for submissions still unanswered (tickets %s): "
                     "refused rather than applied ahead of them", timeout, stuck[:5])
        raise OrderingTimeout(f"a report waited {timeout:.1f}s for {len(stuck)} earlier "
                              f"submission(s) still unanswered (tickets {stuck[:5]})",
                              script="tickets")
