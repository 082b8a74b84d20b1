"""The seed's benchmark suites run end to end (short settings) and print both ratios."""

import pytest

from benchmarks import seed_suites
from tokengate import OperationsCoordinator, task_token_guard

pytestmark = pytest.mark.integration


def test_window_chains_and_saturation_suites_pass(capsys):
    assert seed_suites.main(["window", "--seconds", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "CONCURRENCY WINDOW [Sustained mixed releases (0.3s)] PASSED" in out
    assert "Sustained Concurrency ratio:" in out and "NOT parallelism" in out
    assert "True speedup:" in out and "THIS measures parallelism" in out
    assert seed_suites.main(["chains"]) == 0
    assert "PARALLEL CHAINS PASSED" in capsys.readouterr().out
    assert seed_suites.main(["saturation", "--saturation-duration", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "Spread (backpressure window)" in out and "SERIES SATURATION PASSED" in out


def test_orchestrator_prints_latencies_bars_and_guard_house(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert seed_suites.main(["orchestrator", "--orchestrator-seconds", "0.3", "--dump"]) == 0
    out = capsys.readouterr().out
    for needle in ("MIXED ORCHESTRATOR COMPLETE", "Latency p95", "Operations dispatched:",
                   "EXCELLENT PERFORMERS", "Failed : 0", "True speedup:"):
        assert needle in out
    assert list((tmp_path / "dumps").glob("execution_history_*.json"))


@task_token_guard(operation_type="broken_series", tags={"weight": "heavy"})
def broken_series(duration: float) -> tuple[float, float]:
    raise RuntimeError(f"broken after {duration}s")


def test_saturation_reports_failed_when_it_did_not_pass(capsys):
    with OperationsCoordinator(cores=2, workers_per_core=4):
        assert seed_suites.saturation(burst_size=4, duration=0.05, workers=2,
                                      task=broken_series) is False
        out = capsys.readouterr().out
        assert "SERIES SATURATION FAILED — tasks failed" in out, out
        assert "PASSED" not in out, out
        # 4 tasks on 8 workers run at once: told there are 2 workers, it sees no backpressure.
        assert seed_suites.saturation(burst_size=4, duration=0.5, workers=2) is False
        out = capsys.readouterr().out
        assert "SERIES SATURATION FAILED — no backpressure observed" in out
        # Long enough that a loaded machine cannot blur the two waves into one.
        assert seed_suites.saturation(burst_size=16, duration=0.25, workers=8) is True
        assert "SERIES SATURATION PASSED" in capsys.readouterr().out
