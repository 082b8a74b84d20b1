"""The harness's figures as text: one line per workload result, and the terminal table.

Pure: result dictionaries in, strings out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

COLUMNS = (
    ("W1 tasks/s", "W1", "tasks_per_s", "{:,.0f}"),
    ("W1 CPU us/task", "W1", "cpu_us_per_task", "{:,.0f}"),
    ("W2 p50 ms", "W2", "p50_ms", "{:.3f}"),
    ("W2 p99 ms", "W2", "p99_ms", "{:.3f}"),
    ("W3 speedup", "W3", "speedup", "{:.2f}"),
    ("W4 wall/ideal", "W4", "ratio", "{:.2f}"),
    ("W5 p50/p95/max ms", "W5", None, ""),
    ("W5 fail", "W5", "failures", "{:d}"),
    ("W6 peak MiB", "W6", None, ""),
)


def summary(workload: str, data: Mapping[str, Any]) -> str:
    """One line for a workload's result (or its status when it did not run)."""
    if data.get("status") != "ok":
        return str(data.get("status"))
    d = data
    if workload == "W1":
        return (f"{d['tasks_per_s']:,.0f} tasks/s, {d['cpu_us_per_task']:,.0f} us CPU/task "
                f"(all processes)" + _redis_note(d))
    if workload == "W2":
        return (f"p50 {d['p50_ms']:.3f} ms, p99 {d['p99_ms']:.3f} ms, "
                f"after {d['idle_s']:g} s idle {d['after_idle_ms']:.2f} ms")
    if workload == "W3":
        return (f"serial {d['serial_s']:.2f} s, wall {d['wall_s']:.2f} s, "
                f"true speedup {d['speedup']:.2f}")
    if workload == "W4":
        return (f"wall {d['wall_s']:.3f} s, ideal {d['ideal_s']:.3f} s ({d['slots']} slots), "
                f"ratio {d['ratio']:.2f}")
    if workload == "W5":
        return (f"{d['tasks']} tasks, p50 {d['p50_ms']:.1f} / p95 {d['p95_ms']:.1f} / max "
                f"{d['max_ms']:.1f} ms, {d['failures']} failed")
    if workload == "W6":
        done = "all done" if d["drained"] else f"{d['finished']:,} done in the limit"
        sent = d.get("submitted", d["tasks"])
        sent_text = f"{sent:,}" if sent == d["tasks"] else f"{sent:,} of {d['tasks']:,}"
        return (f"{sent_text} submitted in {d['submit_s']:.1f} s, {done}; peak RSS "
                f"{d['peak_mib']['total']:,.0f} MiB (+{d['growth_mib']['total']:,.0f})")
    return "ok"


def _redis_note(d: Mapping[str, Any]) -> str:
    cmds = d.get("redis_commands")
    return f", {cmds['per_task']:.1f} Redis commands/task" if cmds else ""


def cell(workload_data: Mapping[str, Any] | None, workload: str, key: str | None,
         fmt: str) -> str:
    if not workload_data:
        return "-"
    if workload_data.get("status") != "ok":
        status = str(workload_data.get("status"))
        return "skipped" if status.startswith("skipped") else "error"
    if workload == "W5" and key is None:
        d = workload_data
        return f"{d['p50_ms']:.1f}/{d['p95_ms']:.1f}/{d['max_ms']:.0f}"
    if workload == "W6" and key is None:
        return f"{workload_data['peak_mib']['total']:,.0f}"
    return fmt.format(workload_data[key])


def table_rows(systems: Mapping[str, Mapping[str, Any]],
               workloads: Sequence[str] | None = None) -> list[list[str]]:
    """A header and one row per system, with the columns of the workloads that ran."""
    columns = [c for c in COLUMNS if workloads is None or c[1] in workloads]
    rows = [["system", *(title for title, *_ in columns)]]
    for data in systems.values():
        label = data.get("label", "?")
        status = data.get("status", "")
        if status != "ok":
            rows.append([label, *([status if i == 0 else "" for i in range(len(columns))])])
            continue
        loads = data.get("workloads", {})
        rows.append([label, *(cell(loads.get(w), w, key, fmt) for _, w, key, fmt in columns)])
    return rows


def _spans(row: Sequence[str]) -> bool:
    return len(row) > 2 and bool(row[1]) and not any(row[2:])


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """Aligned columns for the terminal; a row holding only a status prints it as it is."""
    plain = [r for r in rows if not _spans(r)]
    widths = [max(len(r[i]) for r in plain) for i in range(len(rows[0]))]
    widths[0] = max(len(r[0]) for r in rows)
    lines = []
    for row in rows:
        if _spans(row):
            lines.append(f"{row[0].ljust(widths[0])}  {row[1]}")
            continue
        parts = [row[0].ljust(widths[0])]
        parts += [v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(parts).rstrip())
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def markdown_table(rows: Sequence[Sequence[str]]) -> str:
    head, *body = rows
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)
