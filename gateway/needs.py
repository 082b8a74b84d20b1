"""Placement by need, pure: which agents may run a token, and the queue it waits in.

A token's *need* is its task and the agent labels it requires (the task's ``requires`` tag,
plus any the call itself asks for). An agent *serves* a need when it registered the task
and carries every required label. Admission places a token only on an agent that serves its
need; a token that waits does so in the Redis queue of its weight *and* need, named
``<weight>|<task>|<key=value,...>``, so that a token no live agent can run never sits in
front of tokens other agents could take (a claim reads a queue's head: a mixed queue would
hand an agent calls it cannot run, or stop at them). This is Ray's "scheduling class" (one
queue per function and resource shape), with weights kept as TokenGate's unit of credit.
A bare ``<weight>`` queue (tokens stored before needs existed) is served by every agent.

No I/O, locks or clocks: :class:`~tokengate.gateway.dispatch.Dispatch` calls these.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tokengate.gateway.ledger.schema import QUEUE_SEP
from tokengate.shared import labels
from tokengate.shared.tags import Weight

SEP = QUEUE_SEP  # never in a task name (admission refuses it) nor in a label


@dataclass(frozen=True, slots=True)
class Need:
    """What an agent must have to run a token: its task ("" any) and labels."""

    task: str = ""
    labels: labels.Labels = ()

    def describe(self) -> str:
        """For people: ``task m:f with labels gpu=a100``."""
        text = f"task {self.task}" if self.task else "any task"
        if self.labels:
            text += " with labels " + ",".join(labels.to_texts(self.labels))
        return text


@dataclass(frozen=True, slots=True)
class Offer:
    """What one agent has: the tasks it registered and its labels."""

    tasks: frozenset[str] = frozenset()
    labels: Mapping[str, str] = field(default_factory=dict)


def serves(offer: Offer, need: Need) -> bool:
    """Whether an agent with ``offer`` may run a token with ``need``. An agent that
    registered no tasks at all (a bare client of the protocol) is taken at its word that it
    runs whatever it is sent, as before tasks were matched."""
    if need.task and offer.tasks and need.task not in offer.tasks:
        return False
    return labels.satisfies(offer.labels, need.labels)


def served(offers: Iterable[Offer], need: Need) -> bool:
    return any(serves(offer, need) for offer in offers)


def stranded(waiting: Mapping[str, int], offers: Iterable[Offer]) -> list[str]:
    """The queues with tokens waiting whose need no agent among ``offers`` serves."""
    offers = list(offers)
    return [queue for queue, n in waiting.items()
            if n > 0 and not served(offers, parse_queue(queue)[1])]


def timeout_message(need: Need, timeout: float) -> str:
    """What a token failed for want of an agent says: the need nobody serves."""
    hint = "an agent that includes the task's module"
    if need.labels:
        hint += " and carries " + " ".join(f"--label {t}" for t in labels.to_texts(need.labels))
    return (f"no live agent has {need.describe()}: waited {timeout:g}s (the gateway's "
            f"placement timeout); start {hint}")


def need_of(task: str, asked: labels.Labels, registered: labels.Labels) -> Need:
    """A call's need: the labels its task registered, and those the call asks for beyond
    them (the task's own value wins a key both name: whatever a client sent, a task that
    needs a GPU runs on one)."""
    merged = dict(asked)
    merged.update(registered)
    return Need(task, tuple(sorted(merged.items())))


def queue_name(weight: Weight, need: Need) -> str:
    """The queue a token of ``weight`` and ``need`` waits in."""
    if not need.task and not need.labels:
        return weight.value
    return SEP.join((weight.value, need.task, ",".join(labels.to_texts(need.labels))))


@functools.lru_cache(maxsize=4096)
def parse_queue(name: str) -> tuple[Weight, Need]:
    """The weight and need of a queue name (the inverse of :func:`queue_name`)."""
    weight, sep, rest = name.partition(SEP)
    if not sep:
        return Weight(weight), Need()
    task, _, texts = rest.rpartition(SEP)
    return Weight(weight), Need(task, labels.parse(texts.split(",")) if texts else ())


def weight_of(name: str) -> Weight:
    return Weight(name.partition(SEP)[0])
