"""The Markdown report of one run (``docs/benchmarks.md`` by default), with its charts.

Pure formatting over the results dictionary, except ``write_report``, which draws the charts
into ``<report dir>/benchmarks/`` and writes the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks import charts
from benchmarks.table import markdown_table, summary, table_rows
from benchmarks.targets import BOUNDS

WORKLOAD_TITLES = {
    "W1": "W1: no-op tasks submitted one call at a time, then all awaited",
    "W2": "W2: sequential round trips of one no-op",
    "W3": "W3: CPU-bound pure-Python tasks (true speedup = serial / wall)",
    "W4": "W4: sleeping tasks (wall against the ideal)",
    "W5": "W5: the seed's mixed orchestrator",
    "W6": "W6: a flood of submissions (peak memory of every process)",
}

FAIRNESS = """\
- Every system runs in a fresh process of its own, one after another, on the same machine in
  the same run; the harness's Redis (one real `redis-server`) serves every system that needs
  one, each in its own database. Nothing else of the harness runs while a system is timed.
- The same task bodies everywhere (`benchmarks/peer_tasks.py`): `noop()` returns None,
  `spin(n)` is one pure-Python loop, `nap(s)` sleeps; TokenGate runs the same bodies behind
  `@task_token_guard`. W5 runs the seed's `MIXED_OPERATIONS` (`tokengate/workloads.py`), the
  plain functions for the peers, with the same random choices per wave.
- TokenGate runs as a user gets it, with its defaults (4 workers per core: 8 slots on this
  machine, in each mode). The peers get 32 task slots where they have a knob (the issue's
  ThreadPoolExecutor(32) and Ray actor with `max_concurrency=32`; Celery 32 threads; Dask and
  Dramatiq 2 processes x 16 threads); Ray tasks keep Ray's default of one CPU per task (2 at
  once here). W4's ideal is tasks x seconds / each system's own slots.
- Each system is warmed up before it is timed (no-op tasks; W3 runs 4 short CPU tasks first
  so worker processes exist). W1 and W2 run 3 rounds (`--quick` too) and report the median
  round; W3 alternates 3 serial and 3 parallel rounds in a full run and keeps the best of
  each (noise only adds time; alternating puts a burst of outside load on both). The serial
  time is measured on the client's thread with the same number of iterations (calibrated
  once for the run).
- CPU per task is user + system time of every process of the system (the client process
  included, children and reaped children too), read with psutil from `/proc` before and
  after the timed part, divided by the tasks (processes a system starts itself, such as
  Dask's and Ray's workers, appear as `client/<name>`). Redis commands per task come from
  `INFO commandstats` before and after (commands inside Lua scripts included).
- W6 keeps a handle per submission in every system, as a caller who wants the results does;
  peak RSS is sampled every 0.1 s over every process while the flood is submitted and
  drained. A system that cannot submit the flood within the submit limit (60 s in a full run)
  is reported with what it submitted by then; one that has not finished within the drain limit
  (30 s) after its last submission is reported with how many it finished, and the rest is
  cancelled or purged. So W6 figures of slow systems cover fewer queued tasks: read them with
  the counts beside them."""


def _machine(results: Mapping[str, Any]) -> list[str]:
    m = results["machine"]
    h = results["harness"]
    return [
        f"- CPU: {m['cpu_model']}, {m['logical_cpus']} logical CPUs "
        f"({m['physical_cores']} physical), allowed {m['allowed_cpus']}",
        f"- Memory: {m['memory_gib']} GiB; OS: {m['os']} ({m['distribution']})",
        f"- Python {m['python']} ({m['implementation']}); redis-server {m['redis_server']}",
        f"- Load average when the run started: {m['load_average_at_start']} (other sessions "
        "share this machine: absolute figures are noisy, ratios within the run less so)",
        f"- Run: `{h['mode']}` mode, started {h['started']}, took {h['duration_s']:.0f} s; "
        f"command `{' '.join(['python -m benchmarks', *h['argv']])}`",
    ]


def _versions(results: Mapping[str, Any]) -> list[str]:
    lines = ["| system | version | status | set up as |", "|---|---|---|---|"]
    for data in results["systems"].values():
        lines.append(f"| {data['label']} | {data.get('version', '-') or '-'} | "
                     f"{data['status']} | {data.get('setup', '') or '-'} |")
    return lines


def _targets(results: Mapping[str, Any]) -> list[str]:
    lines = ["| target | measured | met |", "|---|---|---|"]
    notes = []
    for t in results["targets"]:
        met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
        lines.append(f"| {t['goal']} | {t['measured']} | {met} |")
        if t["note"]:
            notes.append(f"- {t['goal']}: {t['note']}.")
    return [*lines, "", *notes] if notes else lines


def _workload_section(results: Mapping[str, Any], workload: str) -> list[str]:
    lines = [f"### {WORKLOAD_TITLES[workload]}", ""]
    for data in results["systems"].values():
        entry = data.get("workloads", {}).get(workload)
        if entry is None:
            continue
        lines.append(f"- {data['label']}: {summary(workload, entry)}")
        detail = _detail(workload, entry)
        if detail:
            lines.append(f"  {detail}")
    return [*lines, ""]


def _detail(workload: str, entry: Mapping[str, Any]) -> str:
    if entry.get("status") != "ok":
        return ""
    if workload == "W1":
        parts = ", ".join(f"{k} {v:,.0f}" for k, v in entry["cpu_us_by_process"].items())
        text = f"CPU us per task by process: {parts}"
        cmds = entry.get("redis_commands")
        if cmds:
            top = ", ".join(f"{k} {v:.2f}" for k, v in list(cmds["by_command"].items())[:8])
            text += f"; Redis commands per task: {top}"
        return text
    if workload == "W6":
        peaks = ", ".join(f"{k} {v:,.0f}" for k, v in entry["peak_mib"].items())
        growth = ", ".join(f"{k} {v:+,.0f}" for k, v in entry["growth_mib"].items())
        return f"peak MiB: {peaks}; growth over the start: {growth}"
    return ""


def render(results: Mapping[str, Any], chart_files: list[str], chart_dir: str) -> str:
    echo = results["yardstick"]["grpc_echo"]
    echo_line = (f"p50 {echo['p50_ms']:.3f} ms, p99 {echo['p99_ms']:.3f} ms (grpcio "
                 f"{echo['grpc']})" if echo.get("status") == "ok" else echo.get("status"))
    out = [
        "# Benchmarks: TokenGate against its peers, one run",
        "",
        "Generated by `python -m benchmarks` (also `tokengate bench`); do not edit by hand, "
        "run it again. Every figure below comes from the same run on the same machine.",
        "",
        "## Machine", "", *_machine(results), "",
        "## Results", "",
        markdown_table(table_rows(results["systems"], results["harness"]["workloads"])), "",
        f"Yardstick, a bare gRPC bidirectional-stream echo between two Python processes: "
        f"{echo_line}.", "",
        "## Figures to reach (issue 10)", "", *_targets(results), "",
    ]
    if chart_files:
        out += ["## Charts", ""]
        out += [f"![{name}]({chart_dir}/{name})" for name in chart_files] + [""]
    else:
        out += ["(No charts: matplotlib is not installed; `pip install -e '.[bench]'`.)", ""]
    out += ["## Each workload", ""]
    for workload in results["harness"]["workloads"]:
        out += _workload_section(results, workload)
    out += ["W6 bounds: " + "; ".join(f"{k}: {v}" for k, v in BOUNDS.items()) + ".", ""]
    out += ["## Systems and how each is set up", "", *_versions(results), ""]
    out += ["## How the measuring is kept fair", "", FAIRNESS, ""]
    out += [_how_to_run(results)]
    return "\n".join(out)


def _how_to_run(results: Mapping[str, Any]) -> str:
    sizes = results["harness"]["sizes"]
    return f"""## Running it

```
pip install -e '.[dev,bench]'      # the peers; any that is missing is reported as skipped
python -m benchmarks               # or: tokengate bench  (full run, under 20 minutes here)
python -m benchmarks --quick       # smaller sizes, under 3 minutes
python -m benchmarks --only tokengate-cluster,ray-actor --workloads W1,W2
```

Results go to `benchmarks/results/latest.json` (`--json`), this report to
`docs/benchmarks.md` (`--report`), charts beside it in `docs/benchmarks/`. Sizes of this run:
{_sizes_text(sizes)}.
"""


def _sizes_text(z: Mapping[str, Any]) -> str:
    return (f"W1 {z['w1_tasks']:,} tasks x {z['repeats']} rounds; W2 {z['w2_rounds']} round "
            f"trips x {z['repeats']}; W3 {z['w3_tasks']} tasks of ~{z['w3_seconds']:g} s "
            f"serial each, {z['w3_repeats']} rounds; W4 {z['w4_tasks']} x sleep"
            f"({z['w4_sleep']:g}); W5 {z['w5_seconds']:g} s of waves of {z['w5_wave']}; W6 "
            f"{z['w6_tasks']:,} submissions (submit limit {z.get('w6_submit', '-')} s, drain "
            f"limit {z['w6_drain']:g} s); warm-up {z['warmup']} no-ops; at most "
            f"{z['system_timeout']:g} s per system")


def write_report(path: Path, results: Mapping[str, Any]) -> None:
    path = Path(path)
    chart_dir = path.parent / path.stem
    made = charts.draw(results, chart_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(results, made, path.stem), encoding="utf-8")
