"""``coord.guard_report()``: the seed's Guard House report of an embedded coordinator's calls."""

from __future__ import annotations

import guard_tasks as tasks

from tokengate import OperationsCoordinator


def _names_under(lines: list[str], heading: str) -> list[str]:
    start = lines.index(heading) + 2
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return [line.split()[0] for line in lines[start:end]]


def _outcomes(tokens: list) -> int:
    ok = 0
    for token in tokens:
        try:
            token.get(timeout=10)
            ok += 1
        except ValueError:
            pass
    return ok


def test_guard_report_classifies_what_ran_here():
    tasks.reset()
    with OperationsCoordinator(cores=2, workers_per_core=1) as coord:
        assert _outcomes([tasks.toggle(i) for i in range(12)]) == 12
        assert _outcomes([tasks.odd_fails(i) for i in (0, 2, 4, 6, 1, 3, 5)]) == 4  # 57 %
        assert _outcomes([tasks.always_fails(i) for i in range(3)]) == 0
        assert coord.wait_idle(10)
        text = coord.guard_report()
    lines = text.splitlines()
    assert "GUARD HOUSE REPORT (embedded)" in lines
    assert "Mode: passive (observation only; auto-blocking DISABLED)" in lines
    assert "Functions tracked: 3   Executions: 22   Failures: 6" in lines
    assert _names_under(lines, "EXCELLENT PERFORMERS (>95% success):") == ["toggle"]
    assert _names_under(lines, "FAIR PERFORMERS (>50% success):") == ["odd_fails"]
    assert _names_under(lines, "POOR PERFORMERS (<=50% success):") == ["always_fails"]
    assert any(line.startswith("odd_fails") and "Rate: 57.1% (4/7)" in line for line in lines)
