"""The chaos soak's checks and parsers, on hand-made records (pure: no processes)."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest

from benchmarks.chaos_checks import (
    MEMORY_FLOOR,
    Call,
    Event,
    Final,
    Incarnation,
    Loss,
    Run,
    Sample,
    Soak,
    Stored,
    reruns,
    run_checks,
)
from benchmarks.chaos_load import Record, _call_line
from benchmarks.chaos_report import parse_losses, parse_runs, render

T0 = 1_000_000.0
AGENTS = ("a1", "a2", "a3")
PIDS = {"redis": 10, "gateway": 20, "a1": 31, "a2": 32, "a3": 33, "client": 40}
MIB = 2**20


def _call(seq: int, *, task: str = "light", outcome: str = "completed",
          value_ok: bool = True) -> Call:
    return Call(seq, task, not task.endswith("_once"), f"id{seq}", T0 + seq, outcome, value_ok)


def _samples(role: str, pid: int, start: int, end: int) -> list[Sample]:
    """Samples every 2 s over 90 s, flat at ``start`` until 60 s, then ``end``."""
    out = []
    for at in range(0, 91, 2):
        value = start if at < 75 else end
        out.append(Sample(T0 + at, role, pid, value, value if role == "redis" else 0))
    return out


def _soak(**changes: object) -> Soak:
    calls = tuple(_call(i, task="light" if i % 2 else "medium_once") for i in range(10))
    samples = [s for role, pid in PIDS.items() for s in _samples(role, pid, 50 * MIB, 50 * MIB)]
    soak = Soak(
        started=T0, load_stopped=T0 + 90, heartbeat_timeout=3.0, agents=AGENTS, calls=calls,
        told={c.token_id: ("completed",) for c in calls},
        accepted=frozenset(c.token_id for c in calls),
        runs=tuple(Run(c.seq, PIDS["a1"], T0 + c.seq + 0.1) for c in calls),
        events=(), losses=(),
        incarnations=tuple(Incarnation(role, pid, T0 - 5, None, "")
                           for role, pid in PIDS.items() if role != "client"),
        samples=tuple(samples),
        stored=(Stored("id1", "completed", b"\x01", "completed", "", b"\x01"),),
        final=Final(alive={role: True for role in PIDS if role != "client"},
                    nodes={a: "UP" for a in AGENTS}))
    return dataclasses.replace(soak, **changes)


def _verdicts(soak: Soak) -> dict[str, bool]:
    return {check.name: check.ok for check in run_checks(soak)}


def _failed(soak: Soak) -> set[str]:
    return {name for name, ok in _verdicts(soak).items() if not ok}


def test_a_clean_record_passes_every_check() -> None:
    assert _failed(_soak()) == set()


def test_an_outcome_told_twice_fails_told_once() -> None:
    soak = _soak()
    told = dict(soak.told, id3=("completed", "completed"))
    assert _failed(dataclasses.replace(soak, told=told)) == {"told once"}


@pytest.mark.parametrize(("stored", "why"), [
    (Stored("id1", "completed", b"\x01", None, "", b""), "not in Redis"),
    (Stored("id1", "completed", b"\x01", "failed", "AgentLost", b""), "stored failed"),
    (Stored("id1", "completed", b"\x01", "completed", "", b"\x02"), "another result"),
    (Stored("id1", "failed:AgentLost", b"", "failed", "TaskFailed", b""), "stored error"),
])
def test_a_stored_outcome_unlike_the_told_one_fails(stored: Stored, why: str) -> None:
    checks = {c.name: c for c in run_checks(_soak(stored=(stored,)))}
    assert not checks["stored = told"].ok
    assert why in checks["stored = told"].detail


def test_a_rejected_call_absent_from_redis_matches() -> None:
    stored = Stored("id1", "rejected:RedisUnavailable", b"", None, "", b"")
    assert _verdicts(_soak(stored=(stored,)))["stored = told"]


def test_a_wrong_value_and_a_result_without_a_run_fail_values() -> None:
    soak = _soak()
    calls = (*soak.calls[:-1], dataclasses.replace(soak.calls[-1], value_ok=False))
    assert _failed(dataclasses.replace(soak, calls=calls)) == {"values"}
    runs = tuple(r for r in soak.runs if r.seq != 4)
    assert _failed(dataclasses.replace(soak, runs=runs)) == {"values"}


def test_a_never_twice_call_that_ran_twice_fails() -> None:
    soak = _soak()
    runs = (*soak.runs, Run(0, PIDS["a2"], T0 + 5))  # seq 0 is medium_once
    assert _failed(dataclasses.replace(soak, runs=runs)) == {"never twice"}


@pytest.mark.parametrize(("task", "outcome", "ok"), [
    ("medium_once", "failed:AgentLost", True),
    ("medium_once", "failed:RedisUnavailable", False),
    ("light", "failed:AgentLost", False),
    ("light", "refused:AdmissionTimeout", False),
])
def test_which_failures_are_allowed(task: str, outcome: str, ok: bool) -> None:
    soak = _soak()
    calls = (*soak.calls, _call(10, task=task, outcome=outcome))
    told = dict(soak.told, id10=(outcome,))
    runs = (*soak.runs, Run(10, PIDS["a1"], T0 + 10))
    assert _verdicts(dataclasses.replace(soak, calls=calls, told=told, runs=runs))[
        "no failures"] is ok


def _rerun(soak: Soak, **changes: object) -> Soak:
    """Call 1 (light) ran on a1 at +1.1 s and again on a2 at +6 s."""
    runs = (*soak.runs, Run(1, PIDS["a2"], T0 + 6))
    return dataclasses.replace(soak, runs=runs, **changes)


def test_a_rerun_after_a_kill_of_its_first_agent_is_explained() -> None:
    kill = Event("agent-kill", "a1", PIDS["a1"], T0 + 2, T0 + 2.5)
    soak = _rerun(_soak(), events=(kill,))
    assert reruns(soak) == {1: "agent fault"}
    assert _failed(soak) == set()


def test_a_rerun_after_a_kill_of_another_pid_is_unexplained() -> None:
    kill = Event("agent-kill", "a2", PIDS["a2"], T0 + 2, T0 + 2.5)
    soak = _rerun(_soak(), events=(kill,))
    assert reruns(soak) == {1: "unexplained"}
    assert "reruns explained" in _failed(soak)


def test_a_rerun_after_a_declared_loss_is_explained_but_a_healthy_loss_fails() -> None:
    soak = _rerun(_soak(), losses=(Loss("a1", T0 + 4, "declared", "no heartbeat"),))
    assert reruns(soak) == {1: "declared loss"}
    assert _failed(soak) == {"no healthy agent lost"}


def test_a_loss_declared_after_a_stop_is_not_spurious() -> None:
    stop = Event("agent-stop", "a1", PIDS["a1"], T0 + 2, T0 + 7)
    soak = _rerun(_soak(), events=(stop,), losses=(Loss("a1", T0 + 5.2, "declared"),))
    assert _failed(soak) == set()


def test_a_call_without_an_outcome_is_lost() -> None:
    soak = _soak()
    calls = (*soak.calls, _call(10, outcome=""))
    assert _failed(dataclasses.replace(soak, calls=calls)) == {"nothing lost"}


def test_a_dead_process_an_agent_not_up_or_a_crash_fails_all_alive() -> None:
    soak = _soak()
    dead = Final(alive=dict(soak.final.alive, a2=False), nodes=soak.final.nodes)
    assert _failed(dataclasses.replace(soak, final=dead)) == {"all alive"}
    absent = Final(alive=soak.final.alive, nodes={"a1": "UP", "a2": "DISCONNECTED"})
    assert _failed(dataclasses.replace(soak, final=absent)) == {"all alive"}
    crashed = (*soak.incarnations, Incarnation("gateway", 21, T0, T0 + 3, "crash (exit code 1)"))
    assert _failed(dataclasses.replace(soak, incarnations=crashed)) == {"all alive"}


@pytest.mark.parametrize(("start", "end", "ok"), [
    (50 * MIB, 50 * MIB + MEMORY_FLOOR - MIB, True),    # under the floor
    (50 * MIB, 50 * MIB + MEMORY_FLOOR + MIB, False),   # over the floor, over 10 %
    (400 * MIB, 430 * MIB, True),                        # over the floor, under 10 %
    (400 * MIB, 450 * MIB, False),
])
def test_memory_growth_over_the_last_third(start: int, end: int, ok: bool) -> None:
    soak = _soak()
    samples = [s for s in soak.samples if s.role != "gateway"]
    samples += _samples("gateway", PIDS["gateway"], start, end)
    assert _verdicts(dataclasses.replace(soak, samples=tuple(samples)))["memory flat"] is ok


def _restarted_gateway(soak: Soak, first: int, later: int) -> Soak:
    """The gateway SIGKILLed at +80 s (in the last third) and started again as pid 21: pid 20
    sampled at ``first`` until then, pid 21 at ``later`` after."""
    samples = [s for s in soak.samples if s.role != "gateway"]
    samples += [Sample(T0 + at, "gateway", PIDS["gateway"], first, 0) for at in range(0, 80, 2)]
    samples += [Sample(T0 + at, "gateway", 21, later, 0) for at in range(80, 91, 2)]
    incarnations = [i for i in soak.incarnations if i.role != "gateway"]
    incarnations.append(Incarnation("gateway", PIDS["gateway"], T0 - 5, T0 + 80, "chaos SIGKILL"))
    incarnations.append(Incarnation("gateway", 21, T0 + 80, None, ""))
    return dataclasses.replace(soak, samples=tuple(samples), incarnations=tuple(incarnations))


def test_a_role_restarted_in_the_last_third_is_judged_by_its_peaks() -> None:
    flat = _restarted_gateway(_soak(), 60 * MIB, 40 * MIB)  # a fresh process is smaller
    assert _verdicts(flat)["memory flat"]
    assert "ok (restarted: peaks)" in render(flat, run_checks(flat), "t")
    grew = _restarted_gateway(_soak(), 60 * MIB, 60 * MIB + MEMORY_FLOOR + MIB)
    assert not _verdicts(grew)["memory flat"]


def test_redis_is_judged_by_its_dataset_across_a_restart() -> None:
    soak = _soak()
    samples = [s for s in soak.samples if s.role != "redis"]
    samples += [Sample(T0 + at, "redis", 10 if at < 80 else 11, 8 * MIB, 50 * MIB)
                for at in range(0, 80, 2)]
    samples += [Sample(T0 + at, "redis", 11, 8 * MIB, 50 * MIB + MEMORY_FLOOR + MIB)
                for at in range(80, 91, 2)]
    assert not _verdicts(dataclasses.replace(soak, samples=tuple(samples)))["memory flat"]


def test_the_client_is_judged_too() -> None:
    soak = _soak()
    samples = [s for s in soak.samples if s.role != "client"]
    samples += _samples("client", PIDS["client"], 50 * MIB, 50 * MIB + MEMORY_FLOOR + MIB)
    assert not _verdicts(dataclasses.replace(soak, samples=tuple(samples)))["memory flat"]


def test_parse_runs_skips_torn_lines() -> None:
    assert parse_runs("1 31 100.5\n2 32\nx y z\n3 33 101.25\n") == [
        Run(1, 31, 100.5), Run(3, 33, 101.25)]


def test_parse_losses_reads_declared_and_replaced_agents() -> None:
    text = (
        "2026-01-02 03:04:05,250 WARNING tokengate.gateway.registry: agent a2 declared lost: "
        "no heartbeat for 3.0s\n"
        "2026-01-02 03:04:06,000 INFO tokengate.gateway.registry: agent a1 joined from vm "
        "(pid 7): 0 held, 0 revoked, {} requeued (a new process: its predecessor's tokens "
        "requeued)\n"
        "2026-01-02 03:04:07,000 INFO tokengate.gateway.registry: agent a3 joined from vm "
        "(pid 8): 0 held, 0 revoked, {} requeued\n")
    at = datetime(2026, 1, 2, 3, 4, 5, 250_000).timestamp()
    assert parse_losses(text) == [Loss("a2", at, "declared", "no heartbeat for 3.0s"),
                                  Loss("a1", at + 0.75, "replaced")]


def test_render_names_every_check_and_task() -> None:
    soak = _soak()
    text = render(soak, run_checks(soak), "title")
    assert "all checks passed" in text
    assert "light" in text and "medium_once" in text and "memory flat" in text


def test_the_record_reads_back_what_the_load_and_client_wrote(tmp_path) -> None:
    record = Record(tmp_path)
    ended = Call(3, "heavy_once", False, "id3", T0 + 0.5, "failed:AgentLost", False)
    record.write("calls", [_call_line(ended)])
    record.write("told", ["id3\tfailed:AgentLost\n", "id3\tcompleted\n", "id4\tcompleted\n"])
    record.write("accepted", ["id3\n", "id4\n"])
    calls, told, accepted = record.read()
    record.close()
    assert calls == [ended]
    assert told == {"id3": ("failed:AgentLost", "completed"), "id4": ("completed",)}
    assert accepted == frozenset({"id3", "id4"})
