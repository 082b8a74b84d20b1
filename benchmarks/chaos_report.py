"""The chaos soak's inputs read from disk and its printed table.

:func:`parse_runs` reads the side-effect lines the tasks append (``seq pid time``);
:func:`parse_losses` reads the agent losses the gateway logged; :func:`render` is the table:
chaos events by kind, calls by task (submitted, completed, failed by type, refused, lost, told
twice, ran twice explained/unexplained), memory over the last third, and each check.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from benchmarks.chaos_checks import (
    Check,
    Loss,
    Run,
    Soak,
    last_third,
    lost,
    memory_rows,
    reruns,
    runs_by_seq,
    told_twice,
)

_LOG_TIME = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"
_DECLARED = re.compile(_LOG_TIME + r" \w+ \S+: agent (\S+) declared lost: (.*)$")
_REPLACED = re.compile(_LOG_TIME + r" \w+ \S+: agent (\S+) joined .*\(a new process")
_TASK_ORDER = ("light", "light_once", "medium", "medium_once", "heavy", "heavy_once")


def parse_runs(text: str) -> list[Run]:
    """One Run per well-formed ``seq pid time`` line (a torn last line is skipped)."""
    runs = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        try:
            runs.append(Run(int(parts[0]), int(parts[1]), float(parts[2])))
        except ValueError:
            continue
    return runs


def _log_time(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()  # local, as logged


def parse_losses(text: str) -> list[Loss]:
    """Agents the gateway declared lost, or replaced by a new process under their name."""
    losses = []
    for line in text.splitlines():
        if match := _DECLARED.search(line):
            losses.append(Loss(match[2], _log_time(match[1]), "declared", match[3].strip()))
        elif match := _REPLACED.search(line):
            losses.append(Loss(match[2], _log_time(match[1]), "replaced"))
    return losses


# -- the table --------------------------------------------------------------------------------


def _mib(n: int) -> str:
    return f"{n / 2**20:9.1f}"


def _events(soak: Soak) -> list[str]:
    counts = Counter(e.kind for e in soak.events)
    line = "  ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
    lines = [f"chaos events ({sum(counts.values())}): {line or 'none'}"]
    if len(soak.gateways) > 1:
        kills = Counter(e.target for e in soak.events if e.kind == "gateway-kill")
        lines.append("gateway-kill by gateway: "
                     + "  ".join(f"{role} {kills[role]}" for role in soak.gateways))
    return lines


def _calls(soak: Soak) -> list[str]:
    runs, why, twice = runs_by_seq(soak.runs), reruns(soak), set(told_twice(soak))
    missing = {c.seq for c in lost(soak)}
    head = (f"{'task':<12} {'submitted':>9} {'completed':>9} {'failed':>7} {'refused':>7} "
            f"{'lost':>5} {'told 2x':>7} {'ran 2x':>6} {'expl/unexpl':>11}  failed by type")
    lines = [head]
    tasks = sorted({c.task for c in soak.calls}, key=lambda t: (*_TASK_ORDER, t).index(t))
    for task in [*tasks, "total"]:
        calls = [c for c in soak.calls if task in (c.task, "total")]
        failed = Counter(c.error for c in calls if c.outcome.startswith("failed:"))
        ran_twice = [c for c in calls if len(runs.get(c.seq, ())) > 1]
        explained = sum(1 for c in ran_twice if c.idempotent and why[c.seq] != "unexplained")
        unexplained = len(ran_twice) - explained
        lines.append(
            f"{task:<12} {len(calls):>9} "
            f"{sum(c.outcome == 'completed' for c in calls):>9} {sum(failed.values()):>7} "
            f"{sum(c.outcome.startswith('refused:') for c in calls):>7} "
            f"{sum(c.seq in missing for c in calls):>5} "
            f"{sum(c.token_id in twice for c in calls):>7} {len(ran_twice):>6} "
            f"{f'{explained}/{unexplained}':>11}  "
            + ", ".join(f"{k} {n}" for k, n in failed.most_common()))
    lines.append("(ran 2x of never-twice tasks counts as unexplained: each one is a failure)")
    return lines


def _memory(soak: Soak) -> list[str]:
    low, high = last_third(soak)
    rows = memory_rows(soak)
    w = max([8, *(len(row.role) for row in rows)])  # the role column
    lines = [f"memory over the last third (+{low - soak.started:.0f}s .. "
             f"+{high - soak.started:.0f}s), MiB:",
             f"{'role':<{w}} {'pid':>7} {'metric':<12} {'start':>9} {'end':>9} {'growth':>9}  "
             "verdict"]
    for row in rows:
        if row.pid:
            lines.append(f"{row.role:<{w}} {row.pid:>7} {row.metric:<12} {_mib(row.start)} "
                         f"{_mib(row.end)} {_mib(row.growth)}  {row.verdict}")
        else:
            lines.append(f"{row.role:<{w}} {'-':>7} {'':<12} {'':>9} {'':>9} {'':>9}  "
                         f"{row.verdict}")
    return lines


def _checks(checks: Iterable[Check]) -> list[str]:
    return [f"{'PASS' if c.ok else 'FAIL'}  {c.name}: {c.detail}" for c in checks]


def render(soak: Soak, checks: list[Check], title: str) -> str:
    verdict = "all checks passed" if all(c.ok for c in checks) else (
        f"{sum(not c.ok for c in checks)} of {len(checks)} checks FAILED")
    parts = [[f"== {title}"], _events(soak), _calls(soak), _memory(soak), _checks(checks),
             [f"== {verdict}"]]
    return "\n\n".join("\n".join(part) for part in parts)
