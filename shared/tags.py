"""Task tags: the options a decorated function carries, parsed once at decoration.

Tags are plain data in the user's code (``{"weight": "medium", "storage_speed": "FAST"}``);
:func:`parse_tags` turns them into a frozen :class:`TaskTags` or raises :class:`InvalidTags`
naming the valid values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from tokengate.shared import labels
from tokengate.shared.errors import InvalidTags


class Weight(str, Enum):
    """How heavy a task is; it chooses the cores the task may run on."""

    HEAVY = "heavy"
    MEDIUM = "medium"
    LIGHT = "light"


class StorageTier(str, Enum):
    """How fast the storage a task writes to is; it caps concurrent writers."""

    SLOW = "SLOW"
    MODERATE = "MODERATE"
    FAST = "FAST"
    INSANE = "INSANE"

    @property
    def writer_cap(self) -> int:
        return STORAGE_WRITER_CAPS[self]


STORAGE_WRITER_CAPS: dict[StorageTier, int] = {
    StorageTier.SLOW: 10,
    StorageTier.MODERATE: 25,
    StorageTier.FAST: 50,
    StorageTier.INSANE: 70,
}


class ExecutionMode(str, Enum):
    """Where a task's code runs.

    ``thread``: on the pinned worker thread itself (I/O-bound and mixed work).
    ``process``: the pinned worker thread hands the call to its core's worker process,
    so CPU-bound pure-Python work runs in parallel despite the GIL.
    """

    THREAD = "thread"
    PROCESS = "process"


DEFAULT_WEIGHT = Weight.MEDIUM

# Every tag key TokenGate understands, with what it means; an unknown key is refused.
KNOWN_TAGS: dict[str, str] = {
    "weight": "heavy | medium | light (default medium): which cores may run it",
    "storage_speed": "SLOW | MODERATE | FAST | INSANE: caps concurrent writers at 10/25/50/70",
    "execution": "thread | process (default thread): process runs CPU-bound code in parallel",
    "idempotent": "true | false (default true): may the cluster re-run it after losing an agent",
    "timeout": "seconds > 0 (default none): fail the call with TaskTimeLimit once it has run "
               "this long",
    "requires": "a dict of agent labels, e.g. {'gpu': 'a100'} (default none): in a cluster, "
                "only agents started with every one of these --label run it",
}


@dataclass(frozen=True, slots=True)
class TaskTags:
    """The parsed, validated tags of one decorated function."""

    weight: Weight = DEFAULT_WEIGHT
    storage: StorageTier | None = None
    execution: ExecutionMode = ExecutionMode.THREAD
    idempotent: bool = True
    time_limit: float | None = None  # seconds a call may execute; None: no limit
    requires: labels.Labels = ()     # agent labels a cluster call needs, sorted by key

    def to_wire(self) -> dict[str, Any]:
        """Plain-data form, the inverse of :func:`parse_tags`."""
        wire: dict[str, Any] = {"weight": self.weight.value, "execution": self.execution.value}
        if self.storage is not None:
            wire["storage_speed"] = self.storage.value
        if not self.idempotent:
            wire["idempotent"] = False
        if self.time_limit is not None:
            wire["timeout"] = self.time_limit
        if self.requires:
            wire["requires"] = dict(self.requires)
        return wire


def _enum_value(enum_cls: type[Enum], key: str, raw: Any, *, upper: bool) -> Any:
    valid = ", ".join(member.value for member in enum_cls)
    if not isinstance(raw, str):
        raise InvalidTags(f"tag {key!r} must be a string, one of: {valid} (got {raw!r})")
    text = raw.strip().upper() if upper else raw.strip().lower()
    try:
        return enum_cls(text)
    except ValueError:
        raise InvalidTags(f"unknown {key} {raw!r}; valid values: {valid}") from None


def _bool_value(key: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    raise InvalidTags(f"tag {key!r} must be true or false (got {raw!r})")


def _seconds_value(key: str, raw: Any) -> float:
    """A finite number of seconds > 0, from an int, a float or a numeric string."""
    valid = "a number of seconds > 0 (an int, a float or a numeric string, e.g. 30 or 0.5)"
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise InvalidTags(f"tag {key!r} must be {valid} (got {raw!r})")
    try:
        seconds = float(raw)
    except ValueError:
        raise InvalidTags(f"tag {key!r} must be {valid} (got {raw!r})") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidTags(f"tag {key!r} must be {valid} (got {raw!r})")
    return seconds


def parse_tags(tags: Mapping[str, Any] | None) -> TaskTags:
    """Validate a decorator's ``tags`` and return them parsed.

    Weight and execution mode are case-insensitive; storage tiers too
    (``"fast"`` and ``"FAST"`` are the same tier). ``timeout`` is a finite number of seconds
    above zero (``30``, ``0.5`` or ``"2.5"``); ``None`` or no key means no time limit.
    ``requires`` maps label keys to values (:mod:`tokengate.shared.labels` checks their shape);
    the local scheduler ignores it: it places cluster calls on agents that carry the labels.
    """
    if tags is None:
        return TaskTags()
    if not isinstance(tags, Mapping):
        raise InvalidTags(f"tags must be a dict, got {type(tags).__name__}")
    unknown = sorted(str(key) for key in tags if key not in KNOWN_TAGS)
    if unknown:
        known = "; ".join(f"{key}: {doc}" for key, doc in KNOWN_TAGS.items())
        raise InvalidTags(f"unknown tag(s) {', '.join(unknown)}; known tags are {known}")
    weight = DEFAULT_WEIGHT
    if "weight" in tags:
        weight = _enum_value(Weight, "weight", tags["weight"], upper=False)
    storage = None
    if tags.get("storage_speed") is not None:
        storage = _enum_value(StorageTier, "storage_speed", tags["storage_speed"], upper=True)
    execution = ExecutionMode.THREAD
    if "execution" in tags:
        execution = _enum_value(ExecutionMode, "execution", tags["execution"], upper=False)
    idempotent = _bool_value("idempotent", tags["idempotent"]) if "idempotent" in tags else True
    time_limit = None
    if tags.get("timeout") is not None:
        time_limit = _seconds_value("timeout", tags["timeout"])
    requires = labels.from_mapping(tags["requires"]) if tags.get("requires") is not None else ()
    return TaskTags(weight=weight, storage=storage, execution=execution, idempotent=idempotent,
                    time_limit=time_limit, requires=requires)
