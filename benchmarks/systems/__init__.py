"""The systems the harness measures, by name, and what each needs installed.

``SYSTEMS`` maps a name to the module (under ``benchmarks.systems``) and class that drive it,
and to the top-level modules that must be importable for it to run: a peer whose modules are
missing is reported "skipped: not installed", never failed.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from benchmarks.systems.base import Context, System


@dataclass(frozen=True)
class Entry:
    module: str
    cls: str
    needs: tuple[str, ...]  # modules that must be importable
    distributed: bool  # a distributed peer (the "best distributed peer" of the targets)
    label: str


SYSTEMS: dict[str, Entry] = {
    "threadpool": Entry("local", "ThreadPoolSystem", (), False,
                        "ThreadPoolExecutor(32), in-process"),
    "tokengate-embedded": Entry("local", "EmbeddedSystem", (), False, "TokenGate embedded"),
    "tokengate-cluster": Entry("tokengate_cluster", "ClusterSystem", (), False,
                               "TokenGate cluster (Redis + gateway + 2 agents)"),
    "dask": Entry("dask_peer", "DaskSystem", ("dask", "distributed"), True,
                  "Dask distributed (processes)"),
    "ray-tasks": Entry("ray_peer", "RayTasksSystem", ("ray",), True, "Ray tasks"),
    "ray-actor": Entry("ray_peer", "RayActorSystem", ("ray",), True,
                       "Ray threaded actor (32)"),
    "celery": Entry("celery_peer", "CelerySystem", ("celery", "redis"), True,
                    "Celery (Redis, threads)"),
    "dramatiq": Entry("dramatiq_peer", "DramatiqSystem", ("dramatiq", "redis"), True,
                      "Dramatiq (Redis)"),
}


def missing_modules(name: str, pretend_missing: frozenset[str] = frozenset()) -> list[str]:
    """Modules ``name`` needs that are not importable here (all of them if pretended)."""
    entry = SYSTEMS[name]
    if name in pretend_missing:
        return list(entry.needs) or [name]
    return [m for m in entry.needs if importlib.util.find_spec(m) is None]


def build(name: str, context: Context) -> System:
    entry = SYSTEMS[name]
    module = importlib.import_module(f"benchmarks.systems.{entry.module}")
    system: System = getattr(module, entry.cls)(context)
    return system


__all__ = ["SYSTEMS", "Context", "Entry", "System", "build", "missing_modules"]
