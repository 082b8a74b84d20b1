"""PNG charts of one run's results (matplotlib, drawn off-screen with the Agg backend).

``draw(results, directory)`` writes each chart it can and returns their file names; with
matplotlib missing it writes none (the report says so).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

CHARTS = ("w1_throughput.png", "w1_cpu.png", "w2_round_trip.png", "w3_speedup.png",
          "w6_memory.png")


def _series(results: Mapping[str, Any], workload: str, key: str) -> tuple[list[str], list[float]]:
    labels, values = [], []
    for data in results["systems"].values():
        entry = data.get("workloads", {}).get(workload, {})
        if entry.get("status") == "ok" and entry.get(key) is not None:
            labels.append(data["label"])
            values.append(float(entry[key]))
    return labels, values


def _bars(plt: Any, path: Path, labels: list[str], values: list[float], *, title: str,
          xlabel: str, log: bool = False, line: tuple[float, str] | None = None) -> None:
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(labels) + 1.4))
    colors = ["#d95f02" if label.startswith("TokenGate") else "#7570b3" for label in labels]
    ax.barh(labels, values, color=colors)
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
    for y, value in enumerate(values):
        ax.text(value, y, f" {value:,.0f}" if value >= 10 else f" {value:.2f}", va="center",
                fontsize=8)
    if line is not None:
        ax.axvline(line[0], color="#1b9e77", linestyle="--", label=line[1])
        ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _round_trip(plt: Any, path: Path, results: Mapping[str, Any]) -> bool:
    labels, p50 = _series(results, "W2", "p50_ms")
    _, p99 = _series(results, "W2", "p99_ms")
    if not labels:
        return False
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(labels) + 1.4))
    ys = range(len(labels))
    ax.barh([y - 0.2 for y in ys], p50, height=0.4, label="p50", color="#1f78b4")
    ax.barh([y + 0.2 for y in ys], p99, height=0.4, label="p99", color="#a6cee3")
    ax.set_yticks(list(ys), labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    echo = results.get("yardstick", {}).get("grpc_echo", {})
    if echo.get("status") == "ok":
        ax.axvline(echo["p50_ms"], color="#1b9e77", linestyle="--", label="bare gRPC echo p50")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, fontsize=8)
    ax.set_title("W2: one no-op round trip, sequential (ms, log scale)", fontsize=10)
    ax.set_xlabel("ms")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def draw(results: Mapping[str, Any], directory: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    made = []
    specs = (
        ("w1_throughput.png", "W1", "tasks_per_s", "W1: no-op tasks/s, submit to last result "
         "(log scale)", "tasks/s", True),
        ("w1_cpu.png", "W1", "cpu_us_per_task", "W1: CPU per task, every process of the "
         "system (us, log scale)", "us", True),
        ("w3_speedup.png", "W3", "speedup", "W3: true speedup of 8 CPU-bound tasks "
         "(serial / wall; 2.0 is the limit on 2 CPUs)", "x", False),
    )
    for name, workload, key, title, xlabel, log in specs:
        labels, values = _series(results, workload, key)
        if labels:
            _bars(plt, directory / name, labels, values, title=title, xlabel=xlabel, log=log,
                  line=(2.0, "2 CPUs") if workload == "W3" else None)
            made.append(name)
    if _round_trip(plt, directory / "w2_round_trip.png", results):
        made.append("w2_round_trip.png")
    labels, values = _series_peak(results)
    if labels:
        _bars(plt, directory / "w6_memory.png", labels, values, title="W6: peak RSS of every "
              "process during the flood (MiB)", xlabel="MiB")
        made.append("w6_memory.png")
    return sorted(made, key=CHARTS.index)


def _series_peak(results: Mapping[str, Any]) -> tuple[list[str], list[float]]:
    labels, values = [], []
    for data in results["systems"].values():
        entry = data.get("workloads", {}).get("W6", {})
        if entry.get("status") == "ok":
            labels.append(data["label"])
            values.append(float(entry["peak_mib"]["total"]))
    return labels, values
