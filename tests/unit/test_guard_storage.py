"""Inspector scores, argument codec, quarantine files, history dumps, overflow budget."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import threading

import pytest
from tokengate.node_agent.guards import codec, inspector, overflow
from tokengate.node_agent.guards.history import ExecutionHistory, ExecutionRecord
from tokengate.node_agent.guards.quarantine import (
    NotReplayable,
    QuarantineRecordNotFound,
    QuarantineStore,
    build_record,
)
from tokengate.shared.errors import AdmissionTimeout


def trivial(x):
    return x


def loopy(n):
    total = 0
    for i in range(n):
        if i % 3 == 0:
            total += sum(j * j for j in range(i))
        elif i % 5 == 0:
            while total > 10:
                total //= 2
    return total


def test_inspector_orders_and_caches():
    low, high = inspector.inspect_function(trivial), inspector.inspect_function(loopy)
    assert low.score < high.score
    assert low.level is inspector.ComplexityLevel.TRIVIAL
    assert high.loops == 2 and high.branches >= 2 and high.comprehensions == 1
    assert inspector.inspect_function(loopy) is high   # cached: the same object


def test_inspector_falls_back_without_source():
    metrics = inspector.inspect_function(len)
    assert metrics.source_available is False and metrics.score >= 1.0


def test_recursion_is_scored():
    source = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
    assert inspector.analyze_source(source, "m:fib").recursive is True


VALUES = [
    1, -2.5, "text", None, True, b"\x00\xff", bytearray(b"ab"), (1, (2, 3)), [1, [2]],
    {"a": 1}, {1: "int key", (1, 2): "tuple key"}, {1, 2}, frozenset({"x"}), 3 + 4j,
    decimal.Decimal("1.10"), dt.datetime(2026, 1, 2, 3, 4, 5), float("inf"),
    {"__tg__": "looks like a tag"},
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_codec_round_trips_through_json(value):
    wire = json.loads(json.dumps(codec.encode(value)))
    assert codec.decode(wire) == value
    assert type(codec.decode(wire)) is type(value)


def test_codec_refuses_arbitrary_objects():
    with pytest.raises(codec.Unencodable):
        codec.encode(object())
    assert codec.summarise("x" * 500).startswith("str[500] 'xxx")
    assert len(codec.summarise("x" * 500)) < 100


def test_quarantine_store_save_list_load_drop(tmp_path):
    store = QuarantineStore(tmp_path / "q")
    rec = build_record(quarantine_id="op_1", task="m:f", operation_type="op", predicted=99.0,
                       mean=9.0, deviation=10.0, reason="spike", args=(b"blob", 3),
                       kwargs={"k": (1, 2)})
    path = store.save(rec)
    assert path == tmp_path / "q" / "op_1.json" and path.is_file()
    loaded = store.load("op_1")
    assert loaded.arguments() == ((b"blob", 3), {"k": (1, 2)})
    assert loaded.deviation_percent == 1000.0 and loaded.args_summary[0].startswith("bytes[4]")
    assert [r.quarantine_id for r in store.list()] == ["op_1"]
    store.drop("op_1")
    assert store.list() == []
    with pytest.raises(QuarantineRecordNotFound):
        store.load("op_1")
    with pytest.raises(QuarantineRecordNotFound):
        store.path_of("../etc/passwd")


def test_unencodable_call_is_kept_but_not_replayable(tmp_path):
    store = QuarantineStore(tmp_path)
    rec = build_record(quarantine_id="op_2", task="m:f", operation_type="op", predicted=1,
                       mean=1, deviation=5, reason="spike", args=(threading.Lock(),), kwargs={})
    store.save(rec)
    loaded = store.load("op_2")
    assert loaded.replayable is False and "lock" in loaded.args_summary[0]
    with pytest.raises(NotReplayable):
        loaded.arguments()


def test_history_ring_keeps_the_last_records_and_dumps(tmp_path):
    hist = ExecutionHistory(capacity=3)
    for i in range(5):
        hist.append(ExecutionRecord(f"t{i}", "op", i % 2 == 0, 0.01 * i, 1, "w0", 4.5, 1))
    path = hist.dump(directory=tmp_path)
    doc = json.loads(path.read_text())
    assert path.parent == tmp_path and doc["count"] == 3 and doc["total_recorded"] == 5
    assert [r["token_id"] for r in doc["records"]] == ["t2", "t3", "t4"]
    assert set(doc["records"][0]) >= {"token_id", "operation_type", "success", "execution_time",
                                      "core_id", "worker_id", "complexity_score", "attempt"}


def test_overflow_estimate_counts_argument_bytes():
    small = overflow.estimate_bytes((1,), {})
    big = overflow.estimate_bytes((b"x" * 100_000,), {})
    assert big - small >= 99_000


def test_overflow_guard_blocks_until_release():
    guard = overflow.OverflowGuard(budget_bytes=1000)
    guard.reserve("a", 800)
    with pytest.raises(AdmissionTimeout, match="budget"):
        guard.reserve("b", 300, timeout=0.05)
    started = threading.Event()
    done = threading.Event()

    def second():
        started.set()
        guard.reserve("b", 300)
        done.set()

    thread = threading.Thread(target=second)
    thread.start()
    started.wait()
    assert not done.wait(0.05)
    assert guard.release("a") == 800
    thread.join(5)
    assert done.is_set() and guard.used == 300 and guard.peak == 800


def test_overflow_admits_a_lone_oversized_token():
    guard = overflow.OverflowGuard(budget_bytes=10)
    guard.reserve("huge", 10_000, timeout=0)
    assert guard.used == 10_000


def test_estimates_stay_bounded_and_close_on_huge_arguments(monkeypatch):
    """Bounded walks, not millions of visits: counted, not timed."""
    import sys

    from tokengate.node_agent.guards import spikes

    big = list(range(2_000_000))
    sizes = []
    real_getsizeof = sys.getsizeof
    monkeypatch.setattr(overflow.sys, "getsizeof", lambda v: sizes.append(1) or real_getsizeof(v))
    estimate = overflow.estimate_bytes((big,), {})
    monkeypatch.undo()
    assert len(sizes) <= 2 * overflow.MAX_WALK, "a walk of 2 million items stays bounded"
    scalars = []
    real_scalar = spikes._scalar
    monkeypatch.setattr(spikes, "_scalar", lambda v: scalars.append(1) or real_scalar(v))
    nested = [[list(range(1000)) for _ in range(1000)] for _ in range(5)]
    spikes.magnitude(nested)
    assert len(scalars) <= 2 * spikes.MAX_VISITS
    real = real_getsizeof(big) + sum(real_getsizeof(i) for i in big[:1000]) * 2000
    assert abs(estimate - real) / real < 0.1
