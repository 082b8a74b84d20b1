"""Issue 13's chaos soak, three minutes of it: the same code as ``python -m benchmarks.chaos``.

Redis (append-only file), a gateway and three agents as real processes under a steady mixed
load while agents, the gateway and Redis are SIGKILLed and restarted or SIGSTOPped and
continued, and nodes drained and resumed, at random every 4-10 s. Every check of
:mod:`benchmarks.chaos_checks` must pass; the failure message is the soak's whole report.

The second soak runs two gateways (shards a and b of one cluster, ``--gateways 2``), killed in
turn: each one's agents and client move to the other, which adopts its shard, and come back
when it is started again (issue 15).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.chaos import Settings, run

SOAK_MINUTES = 3.0
SETTLE = 120.0
# load + settle + start, the final wait for agents, the chaos's last fault and stopping
TIMEOUT = int(SOAK_MINUTES * 60 + SETTLE + 300)


@pytest.mark.slow
@pytest.mark.extra  # the two-gateway soak below runs by default: every fault of this one and
@pytest.mark.timeout(TIMEOUT)  # failovers too, and the suite has room for one soak
def test_a_three_minute_chaos_soak_keeps_every_promise(tmp_path: Path) -> None:
    result = run(Settings(minutes=SOAK_MINUTES, seed=13, settle=SETTLE,
                          workdir=tmp_path / "soak"))
    assert result.ok, "\n" + result.report


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT)
def test_a_three_minute_chaos_soak_with_two_gateways_killed_in_turn(tmp_path: Path) -> None:
    result = run(Settings(minutes=SOAK_MINUTES, seed=13, settle=SETTLE, gateways=2,
                          workdir=tmp_path / "soak"))
    kills = {e.target for e in result.soak.events if e.kind == "gateway-kill"}
    assert result.ok, "\n" + result.report
    assert kills == {"gateway-a", "gateway-b"}, "each gateway was killed\n" + result.report
