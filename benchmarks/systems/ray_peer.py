"""Ray, both ways a user runs small calls: remote functions (tasks; 1 CPU each, Ray's default,
so 2 run at once here) and one threaded actor with ``max_concurrency=32``.

``ray.init(num_cpus=2, include_dashboard=False)``: no dashboard, no usage stats, logs kept in
its session directory (nothing is fetched from outside).
"""

from __future__ import annotations

import os
from typing import Any

from benchmarks import peer_tasks
from benchmarks.systems.base import Context, System


class RaySystem(System):
    """Starts and stops a local Ray; subclasses choose tasks or an actor."""

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.ray: Any = None

    def start(self) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        import ray

        self.ray = ray
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, runtime_env={"env_vars": {
                     "PYTHONPATH": os.environ.get("PYTHONPATH", "")}})

    def stop(self) -> None:
        if self.ray is not None:
            self.ray.shutdown()
            self.ray = None

    def version(self) -> str:
        import ray

        return f"ray {ray.__version__}"

    def result(self, handle: Any, timeout: float) -> Any:
        return self.ray.get(handle, timeout=timeout)

    def abandon(self, handles: Any) -> None:
        """Nothing per call: ``ray.shutdown()`` at ``stop()`` ends whatever is left."""


class RayTasksSystem(RaySystem):
    name = "ray-tasks"

    def start(self) -> None:
        super().start()
        self.slots = 2
        remote = self.ray.remote
        self.fns = {name: remote(getattr(peer_tasks, name))
                    for name in ("noop", "spin", "nap", "mixed")}

    def setup(self) -> str:
        return ("`ray.init(num_cpus=2)`; `ray.remote(fn)` with Ray's default of 1 CPU per task "
                "(2 tasks at once, each in its own worker process); `ray.get(ref)`")

    def noop(self) -> Any:
        return self.fns["noop"].remote()

    def spin(self, iterations: int) -> Any:
        return self.fns["spin"].remote(iterations)

    def nap(self, seconds: float) -> Any:
        return self.fns["nap"].remote(seconds)

    def mixed(self, index: int, argument: float) -> Any:
        return self.fns["mixed"].remote(index, argument)


class _Runner:
    """The actor: one process, calls on up to ``max_concurrency`` threads."""

    def noop(self) -> None:
        return peer_tasks.noop()

    def spin(self, iterations: int) -> int:
        return peer_tasks.spin(iterations)

    def nap(self, seconds: float) -> float:
        return peer_tasks.nap(seconds)

    def mixed(self, index: int, argument: float) -> object:
        return peer_tasks.mixed(index, argument)


class RayActorSystem(RaySystem):
    name = "ray-actor"

    def start(self) -> None:
        super().start()
        self.actor = self.ray.remote(max_concurrency=self.slots)(_Runner).remote()
        self.ray.get(self.actor.noop.remote(), timeout=120)

    def setup(self) -> str:
        return (f"`ray.init(num_cpus=2)`; one actor `ray.remote(max_concurrency={self.slots})`"
                " (one process, calls on its threads); `ray.get(actor.fn.remote())`")

    def noop(self) -> Any:
        return self.actor.noop.remote()

    def spin(self, iterations: int) -> Any:
        return self.actor.spin.remote(iterations)

    def nap(self, seconds: float) -> Any:
        return self.actor.nap.remote(seconds)

    def mixed(self, index: int, argument: float) -> Any:
        return self.actor.mixed.remote(index, argument)
