"""Nested tasks on a node agent: calls a running task makes to other decorated functions.

The agent process installs a :class:`NestedTasks` as its backend, so such a call runs on this
host's scheduler (a worker that waits on its child runs it inline: no deadlock when every
worker waits) and never enters the gateway's ledger (see docs/cluster.md, "Nested tasks").
What it adds is visibility: it counts them, and the counts travel in the agent's status
snapshot to the gateway and the dashboard's node card.

``_lock`` guards the counters; the done callback runs on whichever thread finishes the child.
"""

from __future__ import annotations

import threading
from typing import Any

from tokengate.node_agent.runtime import LocalRuntime
from tokengate.shared.call_options import CallOptions
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.registry import TaskSpec
from tokengate.shared.token import TaskToken

OUTCOMES = {TokenState.COMPLETED: "completed", TokenState.FAILED: "failed",
            TokenState.KILLED: "killed"}


class NestedTasks:
    """The agent process's backend: the runtime's local submit, counted."""

    def __init__(self, runtime: LocalRuntime) -> None:
        self._runtime = runtime
        self._lock = threading.Lock()
        self._counts = {"submitted": 0, "completed": 0, "failed": 0, "killed": 0}

    def submit(self, spec: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any],
               options: CallOptions | None = None) -> TaskToken:
        token = self._runtime.submit(spec, args, kwargs, options)
        with self._lock:
            self._counts["submitted"] += 1
        token.add_done_callback(self._finished)
        return token

    def _finished(self, token: TaskToken) -> None:
        outcome = OUTCOMES.get(token.state, "failed")
        with self._lock:
            self._counts[outcome] += 1

    def snapshot(self) -> dict[str, int]:
        """Counts since the agent started, and how many are not final yet (``active``)."""
        with self._lock:
            counts = dict(self._counts)
        done = counts["completed"] + counts["failed"] + counts["killed"]
        counts["active"] = max(0, counts["submitted"] - done)
        return counts
