"""Decorated functions, by task name.

Every ``@task_token_guard`` function is registered here under its task name
``"<module>:<qualname>"``. An agent resolves names from the wire only through this registry,
so it runs nothing but functions from the modules it was told to import.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tokengate.shared.errors import UnknownTask
from tokengate.shared.tags import TaskTags


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One decorated function: its name, operation type, parsed tags and the plain callable."""

    name: str
    operation_type: str
    tags: TaskTags
    func: Callable[..., Any] = field(compare=False)

    @property
    def module(self) -> str:
        return self.name.partition(":")[0]

    @property
    def qualname(self) -> str:
        return self.name.partition(":")[2]


# The attribute a decorated wrapper carries its TaskSpec in.
SPEC_ATTRIBUTE = "__tokengate_spec__"


def spec_of(obj: Any) -> TaskSpec | None:
    """The TaskSpec of a decorated function, or None for anything else."""
    spec = getattr(obj, SPEC_ATTRIBUTE, None)
    return spec if isinstance(spec, TaskSpec) else None


def task_name(func: Callable[..., Any]) -> str:
    return f"{func.__module__}:{func.__qualname__}"


_specs_lock = threading.Lock()  # guards _specs
_specs: dict[str, TaskSpec] = {}


def register(spec: TaskSpec) -> None:
    with _specs_lock:
        _specs[spec.name] = spec


def lookup(name: str) -> TaskSpec:
    spec = _specs.get(name)
    if spec is None:
        raise UnknownTask(f"no task registered as {name!r}; is its module included?")
    return spec


def registered_names() -> list[str]:
    with _specs_lock:
        return sorted(_specs)
