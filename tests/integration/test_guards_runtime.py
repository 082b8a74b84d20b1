"""Guards while tokens run, with real worker threads: retries, overflow, convergence,
history, metrics and the status snapshot."""

import itertools
import json
import threading
import time
import urllib.request
from pathlib import Path

import guard_tasks as tasks
import msgpack
import pytest
from tokengate.node_agent.guards.status import build_status

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _fresh_state():
    tasks.reset()
    yield
    tasks.reset()


coordinator = tasks.guarded_coordinator


def wait_until(predicate, timeout=10.0):
    """Poll a condition no event signals (e.g. threads blocked inside submit)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.002)


def test_retries_back_off_exponentially_and_keep_the_token(tmp_path):
    # Auto-block at the first failed call: a call that recovers by retrying is no failure.
    with coordinator(tmp_path, auto_block=True, min_attempts=1) as coord:
        token = tasks.flaky("k", failures=2)
        assert token.get(timeout=10) == 3
        assert token.attempt == 3
        times = tasks.attempt_times["k"]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert gaps[0] >= 0.05 and gaps[1] >= 0.10        # base 0.05 s, doubling, no jitter
        records = [r for r in coord.guards.history.records() if r.token_id == token.token_id]
        assert [(r.attempt, r.success) for r in records] == [(1, False), (2, False), (3, True)]
        status = coord.status()
        assert status["token_pool"]["retried"] == 2
        method = status["guard_house"]["methods"]["guard_tasks:flaky"]
        assert (method["attempts"], method["failures"], method["retries"]) == (1, 0, 2)
        assert status["guard_house"]["blocked"] == []


def test_exhausted_retries_fail_with_the_last_error(tmp_path):
    with coordinator(tmp_path) as coord:
        token = tasks.flaky("x", failures=10)
        with pytest.raises(ConnectionError, match="transient failure 4"):
            token.get(timeout=10)
        assert token.attempt == 4 and len(tasks.attempt_times["x"]) == 4
        # Not transient, or not idempotent: no retry at all.
        with pytest.raises(ValueError):
            tasks.always_fails(1).get(timeout=10)
        with pytest.raises(ConnectionError):
            tasks.not_idempotent("n").get(timeout=10)
        assert len(tasks.attempt_times["n"]) == 1
        assert coord.metrics_port is None


def test_retry_reenters_ahead_of_waiting_submissions(tmp_path):
    # One worker, a one-slot mailbox: everything queues behind one token at a time.
    with coordinator(tmp_path, cores=1, workers_per_core=1, mailbox_capacity=1) as coord:
        sched = coord.scheduler
        resubmitted = threading.Event()
        original = sched.resubmit

        def spy(token):
            original(token)
            resubmitted.set()

        sched.resubmit = spy  # the retry path calls the scheduler's public method
        first = tasks.flaky("r", failures=1, wait_for="release_r")   # running, will fail
        queued = tasks.marker("Q", wait_for="retry_entered")          # fills the mailbox
        submitters = [threading.Thread(target=tasks.marker, args=(f"N{i}",)) for i in range(3)]
        for thread in submitters:
            thread.start()
        wait_until(lambda: sched.counts()["submitted"] == 5)          # all three are waiting
        tasks.gate("release_r").set()
        assert resubmitted.wait(10)
        tasks.gate("retry_entered").set()
        assert first.get(timeout=10) == 2 and queued.get(timeout=10) == "Q"
        for thread in submitters:
            thread.join(10)
        assert coord.wait_idle(10)
    # At most one waiter took the slot Q freed while the retry was backing off; the retry then
    # went ahead of the others, which had been waiting for room since before it re-entered.
    assert tasks.order[:2] == ["r#1", "Q"]
    retry_at = tasks.order.index("r#2")
    later = [n for n in ("N0", "N1", "N2") if tasks.order.index(n) > retry_at]
    assert retry_at <= 3 and len(later) >= 2


def test_overflow_guard_holds_its_budget_under_a_flood(tmp_path):
    budget = 2 * 1024 * 1024
    blob = b"z" * (200 * 1024)
    with coordinator(tmp_path, memory_budget_bytes=budget, mailbox_capacity=120) as coord:
        results: list[int] = []
        lock = threading.Lock()

        def flood():
            tokens = [tasks.blob_len(bytes(blob)) for _ in range(30)]
            values = [token.get(timeout=60) for token in tokens]
            with lock:
                results.extend(values)

        threads = [threading.Thread(target=flood) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert coord.wait_idle(10)
        overflow = coord.status()["overflow"]
    assert results == [len(blob)] * 120
    assert overflow["peak_bytes"] <= budget          # never over budget ...
    assert overflow["waits"] > 0                      # ... because submitters were held back
    assert overflow["used_bytes"] == 0 and overflow["reserved_tokens"] == 0


def test_killed_and_finished_tokens_give_their_budget_back(tmp_path):
    blob = b"k" * (200 * 1024)
    with coordinator(tmp_path, cores=1, workers_per_core=1,
                     memory_budget_bytes=1024 * 1024) as coord:
        overflow = coord.guards.overflow
        running = tasks.held("hold_worker")
        queued = [tasks.blob_len(blob) for _ in range(3)]
        assert 3 * len(blob) <= overflow.used < 4 * len(blob)
        assert coord.kill(queued[0]) and coord.kill(queued[1])
        assert len(blob) <= overflow.used < 2 * len(blob)
        tasks.gate("hold_worker").set()
        assert running.get(timeout=10) == "hold_worker"
        assert queued[2].get(timeout=10) == len(blob)
        assert coord.wait_idle(10)
        assert overflow.used == 0


def test_nested_submissions_over_budget_do_not_deadlock(tmp_path):
    # Every worker runs a parent that submits children bigger than the whole budget allows;
    # a worker thread never waits for budget, so the parents finish.
    size = 200 * 1024
    with coordinator(tmp_path, cores=1, workers_per_core=2, memory_budget_bytes=300 * 1024,
                     submit_timeout=5.0) as coord:
        parents = [tasks.parent(3, size) for _ in range(2)]
        assert [p.get(timeout=30) for p in parents] == [3 * size, 3 * size]
        assert coord.wait_idle(10)
        assert coord.guards.overflow.used == 0


def test_convergence_changes_a_pattern_under_pressure_and_back(tmp_path):
    with coordinator(tmp_path, cores=1, workers_per_core=4, convergence=True,
                     convergence_interval=0.02, convergence_min_active=1) as coord:
        loop = coord.guards.convergence
        sched = coord.scheduler

        def reached(active):
            return lambda decisions: bool(decisions) and decisions[-1].new == active

        assert loop.wait_for(reached(1), timeout=10)               # idle: narrowed to 1
        assert sched.core_patterns[1] == 1
        tokens = [tasks.held("pressure") for _ in range(40)]       # 40 queued on 1 mailbox
        assert loop.wait_for(lambda d: any(x.new > x.old for x in d), timeout=10)
        assert loop.wait_for(reached(4), timeout=10)               # widened to every worker
        tasks.gate("pressure").set()
        assert [t.get(timeout=10) for t in tokens] == ["pressure"] * 40
        assert loop.wait_for(reached(1), timeout=10)               # and back when idle
        decisions = coord.status()["convergence"]["decisions"]
    assert any(d["reason"].startswith("grow") for d in decisions)
    assert decisions[-1]["reason"].startswith("shrink") and decisions[-1]["new"] == 1


def test_history_dump_has_the_right_records(tmp_path):
    with coordinator(tmp_path, history_size=50) as coord:
        tokens = [tasks.odd_fails(i) for i in range(60)]
        for token in tokens:
            token.wait(10)
        assert coord.wait_idle(10)
        path = coord.dump_history()
    doc = json.loads(Path(path).read_text())
    assert path.startswith(str(tmp_path / "dumps"))
    assert doc["count"] == 50 and doc["total_recorded"] == 60   # the ring kept the last 50
    by_id = {t.token_id: t for t in tokens}
    for record in doc["records"]:
        token = by_id[record["token_id"]]
        assert record["success"] is (token.state.value == "completed")
        assert record["operation_type"] == "odd_fails" and record["attempt"] == 1
        assert record["core_id"] == token.core_id == 2            # light weight on 2 cores
        assert record["worker_id"] == token.worker_id
        assert record["complexity_score"] > 0 and record["execution_time"] >= 0


def _scrape(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    values = {}
    for line in text.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def test_metrics_endpoint_exposes_counters_that_move(tmp_path):
    with coordinator(tmp_path, metrics_port=0, auto_block=True, min_attempts=2,
                     failure_threshold=1.0, spike_warmup=3, spike_threshold=2.0) as coord:
        port = coord.metrics_port
        before = _scrape(port)
        assert 'tokengate_queue_depth{core="1"}' in before
        assert 'tokengate_core_active_pattern{core="2"}' in before
        for i in range(10):
            assert tasks.odd_fails(2 * i).get(timeout=10) == 2 * i
        tasks.broken.set()
        for i in range(2):
            with pytest.raises(ValueError):
                tasks.toggle(i).get(timeout=10)
        with pytest.raises(Exception, match="auto-blocked"):
            tasks.toggle(3)
        for _ in range(3):
            tasks.checksum(b"small").get(timeout=10)
        tasks.checksum(b"q" * 1_000_000).wait(10)
        assert tasks.flaky("m", failures=1).get(timeout=10) == 2
        after = _scrape(port)
    done = 'tokengate_tokens_total{operation="odd_fails",outcome="completed"}'
    assert after[done] - before.get(done, 0) == 10
    assert after['tokengate_tokens_total{operation="toggle",outcome="failed"}'] == 2
    assert after['tokengate_guard_house_refusals_total{operation="toggle"}'] == 1
    assert after["tokengate_guard_house_blocks_total"] == 1
    assert after["tokengate_guard_house_blocked_functions"] == 1
    assert after['tokengate_quarantined_total{operation="checksum"}'] == 1
    assert after['tokengate_retries_total{operation="flaky"}'] == 1
    assert after['tokengate_execution_seconds_count{operation="odd_fails"}'] == 10
    waits = sum(v for k, v in after.items() if k.startswith("tokengate_queue_wait_seconds_count"))
    assert waits >= 16


def test_status_snapshot_has_the_seed_panels(tmp_path):
    with coordinator(tmp_path) as coord:
        tokens = [tasks.odd_fails(2 * i) for i in range(12)]
        assert [t.get(timeout=10) for t in tokens] == [2 * i for i in range(12)]
        assert coord.wait_idle(10)
        status = coord.status()
        snapshot = coord.scheduler.snapshot()
    json.dumps(status)  # plain data
    assert {"system_status", "token_pool", "core_affinity", "guard_house",
            "recent_executions"} <= set(status)
    system = status["system_status"]
    assert system["workers"] == 4 and system["active_patterns"] == {1: 2, 2: 2}
    assert status["token_pool"]["completed"] == 12 and status["token_pool"]["waiting"] == 0
    affinity = {c["core"]: c["routed"] for c in status["core_affinity"]["cores"]}
    assert affinity[2]["light"] == 12 and affinity[1]["light"] == 0
    assert status["guard_house"]["executions"] == 12
    assert len(status["recent_executions"]) == 12
    assert status["functions"]["guard_tasks:odd_fails"]["level"] in ("trivial", "simple")
    # The scheduler's snapshot carries the guards' panels (what an agent sends the gateway).
    wire = msgpack.packb(snapshot, default=str)
    rebuilt = build_status(msgpack.unpackb(wire, strict_map_key=False))
    assert rebuilt["guard_house"]["executions"] == 12
    assert len(rebuilt["recent_executions"]) == 12
    assert rebuilt["token_pool"] == status["token_pool"]
