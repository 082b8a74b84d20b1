"""The scheduler builds its snapshot through the schema: what it sends is what the schema
reads back, guards' panels included (a real embedded coordinator)."""

from __future__ import annotations

import guard_tasks as tasks
import msgpack
import pytest
from tokengate.shared.snapshot import AgentSnapshot, NodeShape

pytestmark = pytest.mark.integration


def test_the_schedulers_snapshot_is_the_schemas_wire_map_and_reads_back_whole(tmp_path):
    tasks.reset()
    try:
        with tasks.guarded_coordinator(tmp_path) as coord:
            tokens = [tasks.odd_fails(i) for i in range(6)]
            for token in tokens:
                token.wait(10)
            assert coord.wait_idle(10)
            typed = coord.scheduler.status_snapshot()
            sent = msgpack.unpackb(msgpack.packb(coord.snapshot(), default=str),
                                   strict_map_key=False)
    finally:
        tasks.reset()
    back = AgentSnapshot.from_wire(sent)
    assert back.to_wire() == sent
    assert back.tokens.completed == typed.tokens.completed == 3
    assert back.tokens.failed == 3 and back.state == "running"
    assert back.shape.workers == len([b for c in back.cores for b in c.depths])
    assert back.guard_house is not None
    assert back.guard_house.methods["guard_tasks:odd_fails"].failures == 3
    assert back.recent_executions is not None and len(back.recent_executions) == 6
    assert {"history", "retry_policies", "functions"} <= set(back.panels)
    assert NodeShape.from_wire(sent) == back.shape
