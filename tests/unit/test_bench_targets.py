"""The harness's judgement of issue 10's targets and its table, on hand-made results (pure)."""

from __future__ import annotations

from benchmarks.table import format_table, table_rows
from benchmarks.targets import best_distributed_peer, evaluate


def _system(label: str, distributed: bool = False, **workloads: dict) -> dict:
    return {"label": label, "status": "ok", "distributed": distributed,
            "workloads": {w: {"status": "ok", **data} for w, data in workloads.items()}}


def _results() -> dict:
    return {
        "yardstick": {"grpc_echo": {"status": "ok", "p50_ms": 0.3, "p99_ms": 0.5}},
        "systems": {
            "threadpool": _system("pool", W1={"tasks_per_s": 30_000.0, "cpu_us_per_task": 30.0},
                                  W2={"p50_ms": 0.06, "p99_ms": 0.1}),
            "tokengate-embedded": _system(
                "embedded", W1={"tasks_per_s": 25_000.0, "cpu_us_per_task": 40.0},
                W2={"p50_ms": 0.1, "p99_ms": 0.2}, W3={"speedup": 1.8}),
            "tokengate-cluster": _system(
                "cluster", W1={"tasks_per_s": 10_000.0, "cpu_us_per_task": 100.0},
                W2={"p50_ms": 0.8, "p99_ms": 2.0}, W3={"speedup": 1.5}),
            "ray-actor": _system("actor", True, W1={"tasks_per_s": 1_000.0,
                                                    "cpu_us_per_task": 1_200.0},
                                 W2={"p50_ms": 1.0, "p99_ms": 4.0}),
            "celery": _system("celery", True, W1={"tasks_per_s": 400.0,
                                                  "cpu_us_per_task": 4_000.0}),
            "dask": {"label": "dask", "status": "skipped: not installed", "distributed": True,
                     "workloads": {"W1": {"status": "skipped: not installed"}}},
        },
    }


def test_each_target_is_judged_against_the_figures_of_the_same_run():
    targets = {t["goal"]: t for t in evaluate(_results())}
    assert targets["Cluster W2 p50 at most Ray's threaded actor's"]["met"] is True
    assert targets["Cluster W2 p50 at most 3 bare gRPC echoes"]["met"] is True  # 0.8 <= 0.9
    assert targets["Cluster W2 p99 at most 2x its p50"]["met"] is False  # 2.0 > 1.6
    assert targets["Cluster W1 at least 8x the best distributed peer's tasks/s"]["met"] is True
    assert targets["Cluster W1 CPU per task under 0.1x that peer's"]["met"] is True
    assert targets["Embedded W1 at least 0.8x ThreadPoolExecutor's"]["met"] is True
    assert targets["Embedded W2 p50 at most 1.5x ThreadPoolExecutor's"]["met"] is False
    assert targets["W3 true speedup at least 1.7, embedded"]["met"] is True
    assert targets["W3 true speedup at least 1.7, cluster"]["met"] is False
    assert targets["W6 memory bounded, cluster"]["met"] is None  # W6 did not run


def test_the_best_distributed_peer_ignores_skipped_and_local_systems():
    results = _results()
    assert best_distributed_peer(results) == "ray-actor"
    del results["systems"]["ray-actor"]
    assert best_distributed_peer(results) == "celery"
    del results["systems"]["celery"]
    assert best_distributed_peer(results) is None
    assert {t["met"] for t in evaluate(results) if "distributed peer" in t["goal"]} == {None}


def test_table_shows_a_skipped_system_on_one_line_and_only_the_columns_that_ran():
    rows = table_rows(_results()["systems"], ["W1", "W2"])
    assert rows[0] == ["system", "W1 tasks/s", "W1 CPU us/task", "W2 p50 ms", "W2 p99 ms"]
    assert rows[1] == ["pool", "30,000", "30", "0.060", "0.100"]
    assert rows[5] == ["celery", "400", "4,000", "-", "-"]
    lines = format_table(rows).splitlines()
    assert [line.split() for line in lines if line.startswith("dask")] == [
        ["dask", "skipped:", "not", "installed"]]
