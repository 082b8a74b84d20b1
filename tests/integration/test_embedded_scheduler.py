"""The embedded scheduler with real worker threads and processes."""

import itertools
import os
import threading

import embedded_tasks as tasks
import pytest
from tokengate.shared.errors import (
    AdmissionTimeout,
    InvalidTransition,
    SchedulerStopped,
    TokenKilled,
)
from tokengate.shared.lifecycle import TokenState

from tokengate import OperationsCoordinator, chain

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _fresh_probes():
    tasks.reset_probe()
    yield
    tasks.gate.set()  # never leave a blocker waiting


def coordinator(**options):
    options.setdefault("cores", 2)
    options.setdefault("submit_timeout", 30.0)
    return OperationsCoordinator(**options)


def test_workers_are_pinned_to_their_core():
    with coordinator(workers_per_core=2) as coord:
        topology = coord.scheduler.topology
        runs = {
            "heavy": [tasks.affinity_heavy() for _ in range(40)],
            "medium": [tasks.affinity_medium() for _ in range(40)],
            "light": [tasks.affinity_light() for _ in range(40)],
        }
        for weight, tokens in runs.items():
            for token in tokens:
                cpus = token.get(timeout=10)
                assert cpus == [topology.cpu_for_core(token.core_id)], weight
                assert token.worker_id.endswith(f"core_{token.core_id}")
        # 2 cores: medium and light never run on core 1.
        assert {t.core_id for t in runs["medium"] + runs["light"]} == {2}
        assert {t.core_id for t in runs["heavy"]} <= {1, 2}
        assert all(worker.pinned for worker in coord.scheduler.workers())


def test_storage_tier_caps_concurrent_writers():
    # 32 workers could run 32 at once; the SLOW tier must hold them to 10.
    with coordinator(workers_per_core=16) as coord:
        tokens = [tasks.slow_writer(0.03) for _ in range(80)]
        assert sum(token.get(timeout=30) for token in tokens) == 80
        stats = coord.scheduler.throttle.stats()["SLOW"]
    assert tasks.probe["peak"] == 10
    assert stats["peak"] == 10 and stats["cap"] == 10


def test_backpressure_bounds_queued_tokens():
    capacity, threads, per_thread = 3, 4, 60  # 240 submissions = 20x the 12 slots
    with coordinator(workers_per_core=2, mailbox_capacity=capacity) as coord:
        results: list[int] = []
        results_lock = threading.Lock()

        def submit_many(offset: int) -> None:
            tokens = [tasks.small_sleep(offset + i) for i in range(per_thread)]
            values = [token.get(timeout=60) for token in tokens]
            with results_lock:
                results.extend(values)

        submitters = [threading.Thread(target=submit_many, args=(n * 1000,))
                      for n in range(threads)]
        for thread in submitters:
            thread.start()
        for thread in submitters:
            thread.join(timeout=60)
        boxes = coord.scheduler._all_boxes
        assert max(box.peak for box in boxes) <= capacity
        assert max(box.peak for box in boxes) == capacity  # the bound was really reached
        expected = sorted(2 * (n * 1000 + i) for n in range(threads) for i in range(per_thread))
        assert sorted(results) == expected


def test_submission_times_out_when_mailboxes_stay_full():
    with coordinator(cores=1, workers_per_core=1, mailbox_capacity=1, submit_timeout=0.2):
        running = tasks.blocker("running")
        queued = tasks.record("queued")
        with pytest.raises(AdmissionTimeout, match="every mailbox allowed for weight heavy"):
            tasks.record("refused")
        tasks.gate.set()
        assert running.get(timeout=10) == "running"
        assert queued.get(timeout=10) == "queued"
    assert "refused" not in tasks.ran


def test_kill_skips_a_queued_token_and_leaves_running_ones():
    with coordinator(cores=1, workers_per_core=1) as coord:
        running = tasks.blocker("running")
        victim = tasks.record("victim")
        survivor = tasks.record("survivor")
        assert coord.kill(victim)
        assert victim.state is TokenState.KILLED
        # The running token cannot be killed (wait until it is really executing).
        while running.state is not TokenState.EXECUTING:
            running.wait(0.01)
        assert not coord.kill(running)
        tasks.gate.set()
        assert running.get(timeout=10) == "running"
        assert survivor.get(timeout=10) == "survivor"
        with pytest.raises(TokenKilled):
            victim.get(timeout=1)
        assert coord.wait_idle(10)
        counts = coord.snapshot()["tokens"]
    assert "victim" not in tasks.ran
    assert counts["killed"] == 1 and counts["completed"] == 2 and counts["failed"] == 0


def test_drain_stops_admission_and_resume_continues():
    with coordinator(cores=1, workers_per_core=2) as coord:
        admitted = [tasks.blocker(f"admitted-{i}") for i in range(4)]
        coord.drain("maintenance")
        held = [tasks.record(f"held-{i}") for i in range(3)]
        assert all(token.state is TokenState.WAITING for token in held)
        snapshot = coord.snapshot()
        assert snapshot["state"] == "draining" and snapshot["drain_reason"] == "maintenance"
        tasks.gate.set()
        assert [token.get(timeout=10) for token in admitted] == [f"admitted-{i}" for i in range(4)]
        assert coord.wait_idle(10)
        snapshot = coord.snapshot()
        counts = snapshot["tokens"]
        assert snapshot["state"] == "drained"
        assert (counts["executing"], counts["failed"], counts["completed"]) == (0, 0, 4)
        assert counts["waiting"] == counts["held"] == 3  # held, not admitted, not lost
        assert not any(name.startswith("held") for name in tasks.ran)
        coord.resume()
        assert [token.get(timeout=10) for token in held] == [f"held-{i}" for i in range(3)]
        assert coord.wait_idle(10)
        counts = coord.snapshot()["tokens"]
    assert (counts["waiting"], counts["executing"], counts["failed"]) == (0, 0, 0)
    assert counts["completed"] == 7


def test_drain_with_nothing_held_reaches_all_zero_counts():
    with coordinator() as coord:
        tokens = [tasks.small_sleep(i, 0.005) for i in range(50)]
        coord.drain()
        assert coord.wait_idle(30)
        counts = coord.snapshot()["tokens"]
        assert (counts["waiting"], counts["executing"], counts["failed"]) == (0, 0, 0)
        assert counts["completed"] == 50
        assert [token.get(timeout=1) for token in tokens] == [2 * i for i in range(50)]
        coord.resume()
        assert tasks.small_sleep(21).get(timeout=10) == 42


def test_chains_keep_step_order_and_run_concurrently():
    steps = chain(*([tasks.chain_step] * 5))
    with coordinator():
        handles = [steps({"chain": n, "steps": []}) for n in range(6)]
        results = [handle.get(timeout=30) for handle in handles]
    for n, result in enumerate(results):
        assert result == {"chain": n, "steps": [0, 1, 2, 3, 4]}
    # Each chain's step tokens ran strictly one after the other.
    for handle in handles:
        times = [(t.timestamps[TokenState.EXECUTING], t.timestamps[TokenState.COMPLETED])
                 for t in handle.tokens]
        assert all(prev_end <= start for (_, prev_end), (start, _) in itertools.pairwise(times))


def test_chain_stops_at_a_failing_step():
    with coordinator():
        handle = chain(tasks.fail, tasks.record)("broken step")
        with pytest.raises(ValueError, match="broken step"):
            handle.get(timeout=10)
        assert len(handle.tokens) == 1


def test_nested_waits_with_every_worker_busy_complete():
    # 2 workers, 2 grandparents each waiting on parents waiting on children.
    with coordinator(cores=1, workers_per_core=2, mailbox_capacity=4):
        tokens = [tasks.grandparent(3) for _ in range(2)]
        expected = sum(sum(i + j + 1 for j in range(3)) for i in range(3))
        assert [token.get(timeout=30) for token in tokens] == [expected, expected]


def test_task_errors_are_reraised_with_their_traceback():
    with coordinator():
        token = tasks.fail("bad input 7")
        with pytest.raises(ValueError, match="bad input 7") as info:
            token.get(timeout=10)
    assert token.state is TokenState.FAILED
    assert token.error_type == "ValueError"
    assert "raise ValueError(message)" in token.traceback_text
    assert any("raise ValueError(message)" in note for note in info.value.__notes__)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_process_mode_runs_in_parallel_on_separate_cores():
    with coordinator() as coord:
        # Warm both cores' worker processes first (spawn costs an interpreter start).
        for token in [tasks.spin(10) for _ in range(4)]:
            token.get(timeout=60)
        reports = [token.get(timeout=60) for token in [tasks.spin(2_000_000) for _ in range(4)]]
        topology = coord.scheduler.topology
    assert len({report["pid"] for report in reports}) == 2
    assert {tuple(report["cpus"]) for report in reports} == {
        (topology.cpu_for_core(1),), (topology.cpu_for_core(2),)}
    overlapping = [
        (a, b) for a in reports for b in reports
        if a["pid"] < b["pid"] and a["start"] < b["end"] and b["start"] < a["end"]
    ]
    assert overlapping  # two processes computed at the same time


def test_stop_fails_queued_work_it_could_not_finish():
    coord = coordinator(cores=1, workers_per_core=1).start()
    running = tasks.blocker("running", timeout=5)
    queued = [tasks.record(f"queued-{i}") for i in range(3)]
    coord.stop(timeout=0.2)
    for token in queued:
        with pytest.raises(SchedulerStopped):
            token.get(timeout=5)
    tasks.gate.set()
    assert running.get(timeout=5) == "running"  # the running task was left to finish
    assert not any(name.startswith("queued") for name in tasks.ran)


def test_a_token_cannot_be_submitted_twice():
    with coordinator() as coord:
        token = tasks.record("once")
        assert token.get(timeout=5) == "once"
        with pytest.raises(InvalidTransition):
            coord.scheduler.submit(token)


def test_a_task_calling_exit_fails_its_token_and_the_worker_lives_on():
    with coordinator(cores=1, workers_per_core=1):
        with pytest.raises(SystemExit):
            tasks.quitter().get(timeout=5)
        assert tasks.record("after").get(timeout=5) == "after"


class StartRecorder:
    """Records each on_start call: which token, in which state, on which thread."""

    def __init__(self):
        self.starts = []

    def on_start(self, token):
        self.starts.append((token.token_id, token.state, token.worker_id,
                            threading.current_thread().name))


def test_on_start_runs_once_per_execution_on_the_worker_right_after_the_claim():
    # One worker: the parent's three children run inline on it while the parent waits.
    with coordinator(cores=1, workers_per_core=1) as coord:
        recorder = StartRecorder()
        coord.scheduler.add_observer(recorder)
        parent = tasks.parent(10, 3)
        assert parent.get(timeout=10) == 11 + 12 + 13
        assert tasks.record("alone").get(timeout=10) == "alone"
    ids = [start[0] for start in recorder.starts]
    assert len(ids) == 5 and len(set(ids)) == 5 and ids[0] == parent.token_id
    for _, state, worker_id, thread in recorder.starts:
        assert state is TokenState.EXECUTING
        assert worker_id == thread == "worker_0_core_1"
