"""The benchmark harness runs end to end at tiny sizes (figures are never asserted).

It runs as a user runs it (``python -m benchmarks``, in a subprocess) on ThreadPoolExecutor,
TokenGate embedded and the TokenGate cluster (real redis-server, gateway and two agents),
with Dask pretended missing, and must report every workload of every system it ran, the
missing peer as skipped, and write its report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
RAN = ("threadpool", "tokengate-embedded", "tokengate-cluster")
WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6")


def test_smoke_run_reports_every_workload_and_the_missing_peer(tmp_path):
    results, report = tmp_path / "latest.json", tmp_path / "benchmarks.md"
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--only", ",".join((*RAN, "dask")),
         "--pretend-missing", "dask", "--json", str(results), "--report", str(report)],
        cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr[-3000:]
    data = json.loads(results.read_text(encoding="utf-8"))

    assert list(data["systems"]) == [*RAN, "dask"]
    for name in RAN:
        system = data["systems"][name]
        assert system["status"] == "ok", (name, system["status"])
        assert sorted(system["workloads"]) == list(WORKLOADS)
        for workload, result in system["workloads"].items():
            assert result["status"] == "ok", (name, workload, result["status"])
    w1 = data["systems"]["tokengate-cluster"]["workloads"]["W1"]
    assert {"client", "gateway", "agent1", "agent2", "redis"} <= set(w1["cpu_us_by_process"])
    assert w1["redis_commands"]["per_task"] > 0

    dask = data["systems"]["dask"]
    assert dask["status"] == "skipped: not installed"
    assert {w: r["status"] for w, r in dask["workloads"].items()} == {
        w: "skipped: not installed" for w in WORKLOADS}

    assert data["yardstick"]["grpc_echo"]["status"] == "ok"
    assert data["machine"]["logical_cpus"] >= 1
    assert {t["goal"] for t in data["targets"]} >= {"W3 true speedup at least 1.7, cluster"}
    for name in RAN:
        for workload in WORKLOADS:
            assert f"[bench] {name:<19} {workload:<3}" in out.stderr
    assert "skipped: not installed" in out.stdout
    text = report.read_text(encoding="utf-8")
    assert "## Figures to reach (issue 10)" in text and "Dask distributed" in text


def test_unknown_system_is_refused_with_the_valid_names(tmp_path):
    out = subprocess.run([sys.executable, "-m", "benchmarks", "--only", "nosuch",
                          "--json", str(tmp_path / "x.json")],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "unknown system nosuch" in out.stderr and "tokengate-cluster" in out.stderr
    assert not (tmp_path / "x.json").exists()
