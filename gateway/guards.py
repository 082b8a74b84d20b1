"""The cluster's Guard House: a function blocked for the whole cluster, at admission.

Owned by the event loop (no locks). Agents do not block on their own record when linked to
a gateway; each sends its record (finished attempts and failures per function, and its
policy) in the snapshot that rides on its frames once a second. This owner keeps the newest
report of each agent in the cluster (until it is declared lost), their running sums, and the
set of blocked names: a name joins the
set when its summed record crosses the threshold (:mod:`.guard_policy`) and leaves it only
when an operator re-enables it. Admission refuses a call of a blocked name with
``MethodBlockedException`` before it is stored or sent anywhere.

Nothing is kept in Redis: the agents hold the records, so a restarted gateway blocks again
from their next reports (within a second of their links), and with several gateways each
judges the agents linked to it, which are the only ones its calls can reach.
"""

from __future__ import annotations

import logging
from typing import Any

from tokengate.gateway import guard_policy as gp
from tokengate.shared.errors import MethodBlockedException
from tokengate.shared.snapshot_guards import GuardHouseStatus

logger = logging.getLogger(__name__)


class ClusterGuards:
    def __init__(self) -> None:
        self._reports: dict[str, gp.NodeReport] = {}  # agent name -> its newest report
        self._totals: dict[str, gp.Counts] = {}       # function -> summed over _reports
        self.policy = gp.Policy()
        self.blocked: set[str] = set()               # read by admission's screen
        self.refusals = 0

    def report(self, agent: str, house: GuardHouseStatus | None) -> None:
        """An agent's snapshot arrived (read through its schema): take its Guard House
        record, block what now crosses."""
        new = gp.report_of(house)
        old = self._reports.get(agent, gp.NodeReport())
        self._reports[agent] = new
        if new.policy != old.policy:
            self.policy = gp.cluster_policy(r.policy for r in self._reports.values())
        for name in old.counts.keys() | new.counts.keys():
            self._add(name, new.counts.get(name, gp.Counts()) - old.counts.get(name, gp.Counts()))
        self._judge(new.counts.keys() if new.policy == old.policy else self._totals.keys())

    def _add(self, name: str, delta: gp.Counts) -> None:
        if delta == gp.Counts():
            return
        total = self._totals.get(name, gp.Counts()) + delta
        if total.attempts <= 0:
            self._totals.pop(name, None)
        else:
            self._totals[name] = total

    def _judge(self, names: Any) -> None:
        for name in list(names):
            total = self._totals.get(name)
            if name in self.blocked or total is None or not gp.should_block(total, self.policy):
                continue
            self.blocked.add(name)
            logger.warning("Guard House blocked %s cluster-wide: %.1f%% failures (%d/%d "
                           "attempts over %d nodes)", name, total.failure_rate, total.failures,
                           total.attempts, len(self._reports))

    def agent_lost(self, agent: str) -> None:
        """``agent`` left the cluster: its record leaves the sums (what it blocked stays
        blocked). One that comes back reports its record again."""
        old = self._reports.pop(agent, None)
        if old is None:
            return
        for name, counts in old.counts.items():
            self._add(name, gp.Counts() - counts)
        if old.policy.auto_block:
            self.policy = gp.cluster_policy(r.policy for r in self._reports.values())

    def refusal(self, name: str) -> MethodBlockedException:
        """The error a call of a blocked function is refused with (counted)."""
        self.refusals += 1
        return MethodBlockedException(gp.blocked_message(name, self._totals.get(name)))

    def forget(self, name: str) -> bool:
        """Re-enable ``name``: unblock it and drop its record from every report (the agents
        reset theirs too); True if it was blocked here."""
        was = name in self.blocked
        self.blocked.discard(name)
        self._totals.pop(name, None)
        for agent, rep in self._reports.items():
            if name in rep.counts:
                counts = {k: v for k, v in rep.counts.items() if k != name}
                self._reports[agent] = gp.NodeReport(policy=rep.policy, counts=counts)
        if was:
            logger.info("Guard House re-enabled %s cluster-wide", name)
        return was

    def totals(self) -> dict[str, gp.Counts]:
        return dict(self._totals)
