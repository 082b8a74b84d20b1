"""What the cluster Guard House costs the gateway: CPU per agent snapshot taken.

Runs 20 guarded functions (a third of their calls fail) in an embedded coordinator, packs
its scheduler snapshot as an agent sends it, and times ``ClusterGuards.report`` (the sums,
fed the Guard House as the registry reads it) against the schema's decode of the snapshot
(:class:`AgentSnapshot`, done once per snapshot by the registry), over 50 agent names. A
second or two on any machine:

    python -m benchmarks.cluster_guards_cost
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgpack
from tokengate.gateway.guards import ClusterGuards
from tokengate.shared.snapshot import AgentSnapshot

from tokengate import OperationsCoordinator, task_token_guard

FUNCTIONS = 20
REPEATS = 2000


def _guarded(i: int) -> Callable[..., Any]:
    def work(x: int) -> int:
        if x % 3 == 0:
            raise ValueError(f"{x} is a multiple of 3")
        return x
    work.__name__ = work.__qualname__ = f"fn{i}"
    return task_token_guard(operation_type=f"op{i}", tags={"weight": "light"})(work)


def snapshot() -> bytes:
    functions = [_guarded(i) for i in range(FUNCTIONS)]
    with OperationsCoordinator() as coord:
        tokens = [fn(j) for fn in functions for j in range(20)]
        for token in tokens:
            token.wait(10)
        return msgpack.packb(coord.runtime.scheduler.snapshot(), default=str)


def per_call(fn: Callable[[int], Any]) -> float:
    start = time.process_time()
    for k in range(REPEATS):
        fn(k)
    return (time.process_time() - start) / REPEATS


def main() -> None:
    packed = snapshot()
    guards = ClusterGuards()
    house = AgentSnapshot.decode(packed).guard_house
    report = per_call(lambda k: guards.report(f"a{k % 50}", house))
    decode = per_call(lambda _: AgentSnapshot.decode(packed))
    print(f"snapshot {len(packed)} bytes, {len(guards.totals())} functions tracked: "
          f"report {report * 1e6:.0f} us per snapshot (its schema's decode {decode * 1e6:.0f} us)")


if __name__ == "__main__":
    main()
