"""The seed's benchmark suites run end to end (short settings) and print both ratios."""

import pytest

from benchmarks import seed_suites

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
    assert "Spread (backpressure window)" in capsys.readouterr().out


def test_orchestrator_prints_latencies_bars_and_guard_house(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert seed_suites.main(["orchestrator", "--orchestrator-seconds", "0.3", "--dump"]) == 0
    out = capsys.readouterr().out
    for needle in ("MIXED ORCHESTRATOR COMPLETE", "Latency p95", "Operations dispatched:",
                   "EXCELLENT PERFORMERS", "Failed : 0", "True speedup:"):
        assert needle in out
    assert list((tmp_path / "dumps").glob("execution_history_*.json"))
