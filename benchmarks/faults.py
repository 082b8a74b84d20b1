"""Reproductions of issue 8's defects 1-6 and of the gateway-crash durability check.

    python -m benchmarks.faults [all|reconnect|late|credits|frames|duplicates|idempotency|
                                 durability]

Each scenario starts its own redis-server, gateway and agents as real processes, on the
harness of the cluster tests (``tests/integration/cluster``: its ``Cluster``, its tasks and
``faultkit``), so a figure here and a test there describe the same processes. Runs are counted
by their side effect (each run of a ``record``/``gated`` task appends one line), outcomes by
what the client was pushed. Per defect it prints tokens submitted, completed, failed (and
why), lost (no outcome by the deadline), told twice (more than one outcome at the client) and
ran twice, plus what that defect needs (credits, orphaned hashes, ...).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "tests" / "integration" / "cluster"
sys.path[:0] = [str(ROOT), str(HARNESS)]

import conftest as harness  # noqa: E402 - the cluster tests' harness, on the path just above
from faultkit import DurableRedis, Gate, RawSession, SideEffects, call  # noqa: E402
from tokengate.shared.errors import TokenGateError  # noqa: E402
from tokengate.shared.redis_server import RedisServer  # noqa: E402
from tokengate.shared.rpc import tokengate_pb2 as pb  # noqa: E402

SMALL = ("--workers-per-core", "2", "--mailbox-capacity", "10")  # 20 medium slots per agent
PATIENT = ("--heartbeat-timeout", "10")  # gateway restarts alone never lose an agent
STATES = {pb.COMPLETED: "completed", pb.FAILED: "failed", pb.KILLED: "killed"}


@dataclass
class Figures:
    """One reproduction's counts; ``failed`` is keyed by the error type."""

    title: str
    submitted: int = 0
    completed: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    told_twice: int = 0
    ran_twice: int = 0
    notes: list[str] = field(default_factory=list)

    def report(self) -> None:
        failed = sum(self.failed.values())
        why = f" ({', '.join(f'{k} {n}' for k, n in self.failed.most_common())})" if failed else ""
        print(f"\n== {self.title}")
        print(f"   submitted {self.submitted}  completed {self.completed}  failed {failed}{why}"
              f"  lost {self.lost}  told twice {self.told_twice}  ran twice {self.ran_twice}")
        for note in self.notes:
            print(f"   {note}")


def tally(fig: Figures, told: dict[str, list[str]], ids: Iterable[str],
          effects: SideEffects) -> Figures:
    """Count outcomes (the first one told decides completed/failed) and runs of ``ids``."""
    for token_id in ids:
        fig.submitted += 1
        seen = told.get(token_id, [])
        if not seen:
            fig.lost += 1
            continue
        fig.told_twice += len(seen) > 1
        if seen[0] == "completed":
            fig.completed += 1
        else:
            fig.failed[seen[0].partition(":")[2] or seen[0]] += 1
    fig.ran_twice = len(effects.twice())
    return fig


def told_by(sessions: Iterable[RawSession]) -> dict[str, list[str]]:
    """Every outcome the sessions were pushed, as "state" or "state:ErrorType"."""
    told: dict[str, list[str]] = {}
    for session in sessions:
        for token_id, results in session.outcomes().items():
            told.setdefault(token_id, []).extend(
                f"{STATES.get(r.state, '?')}:{r.error_type}" if r.error_type
                else STATES.get(r.state, "?") for r in results)
        for token_id, rejected in session.rejected.items():
            told.setdefault(token_id, []).extend(f"rejected:{r.error_type}" for r in rejected)
    return told


@contextmanager
def cluster_of(agents: tuple[str, ...] = ("a1", "a2"), *, durable: bool = False,
               **options: object) -> Iterator[tuple[harness.Cluster, SideEffects, Path]]:
    with tempfile.TemporaryDirectory(prefix="tokengate-faults-") as tmp:
        folder = Path(tmp)
        server = DurableRedis(folder / "redis") if durable else RedisServer()
        server.start()
        cluster = harness.Cluster(server.url, folder, **options)  # type: ignore[arg-type]
        try:
            cluster.start_gateway()
            for name in agents:
                cluster.start_agent(name, wait=False)
            cluster.wait_nodes(lambda n: all(n.get(a) == "UP" for a in agents), "agents up")
            yield cluster, SideEffects(folder / "effects"), folder
        finally:
            cluster.stop()
            server.stop()


STATUS_ERRORS: Counter[str] = Counter()  # failed Status calls seen while waiting


def wait(predicate: Callable[[], object], timeout: float) -> bool:
    """True once ``predicate`` holds, False after ``timeout`` (a figure, not a test). A
    failed call inside it (Status while an agent is being declared lost) counts as not yet,
    and is reported with the scenario."""
    def attempt() -> object:
        try:
            return predicate()
        except TokenGateError as exc:
            STATUS_ERRORS[str(exc)[:120]] += 1
            return False
    try:
        harness.wait_until(attempt, timeout)
        return True
    except AssertionError:
        return False


def completed(cluster: harness.Cluster) -> int:
    return cluster.status()["counts"]["completed"]


# -- defect 1 --------------------------------------------------------------------------------


def reconnect(tokens: int = 3000, restarts: int = 6) -> Figures:
    """``idempotent: false`` calls from one Python client while the gateway is SIGKILLed and
    restarted ``restarts`` times as they drain (the agents re-register with work waiting)."""
    fig = Figures(f"1 never twice after reconnects: {tokens} idempotent:false tokens, "
                  f"{restarts} gateway SIGKILLs while they drain")
    with cluster_of(agent_options=SMALL, gateway_options=PATIENT) as (cluster, effects, _):
        client = cluster.client(recording=True)
        handles = [client.submit_by_name("cluster_tasks:record_once",
                                         (str(effects), f"k{i}", 0.004)) for i in range(tokens)]
        wait(lambda: cluster.status()["counts"]["submitted"] >= tokens, 60)
        step = tokens // (restarts + 2)
        for n in range(1, restarts + 1):
            wait(lambda n=n: completed(cluster) >= n * step, 60)
            cluster.restart_gateway()
        for handle in handles:
            handle.wait(60)
        told = client.outcomes()
        tally(fig, told, [h.token_id for h in handles], effects)
    return fig


# -- defect 2 --------------------------------------------------------------------------------


def late(queued: int = 20) -> Figures:
    """a1 runs 2 calls that must never run twice and holds ``queued`` idempotent and
    ``queued`` non-idempotent calls behind them; SIGSTOP it until it is declared lost, then
    SIGCONT it with its gate open."""
    fig = Figures(f"2 late results from a lost agent: 2 running + {2 * queued} queued on a "
                  "SIGSTOPped agent")
    roomy = ("--workers-per-core", "1", "--mailbox-capacity", str(2 * queued + 10))
    with cluster_of(("a1",), agent_options=roomy) as (cluster, effects, folder):
        gate, session = Gate(folder / "gate"), cluster.raw_session()
        ids = _hold_on_a1(cluster, session, effects, gate, queued)
        cluster.start_agent("a2")
        cluster.freeze("a1")
        wait(lambda: "a1" not in _nodes(cluster), 30)
        gate.open()
        cluster.thaw("a1")
        wait(lambda: _nodes(cluster).get("a1") == "UP", 30)
        wait(lambda: len(session.outcomes()) >= len(ids), 20)
        _settle(cluster, session, effects)
        told, stored = told_by([session]), cluster.redis.states(ids)
        tally(fig, told, ids, effects)
        differ = sum(1 for i in ids if told.get(i) and told[i][-1].split(":")[0] != stored[i])
        a1 = cluster.agents["a1"].pid
        fig.notes.append(f"told one outcome, Redis stored another: {differ}")
        fig.notes.append(f"queued tokens a1 ran after they were taken from it: "
                         f"{sum(1 for i in ids[2:] if a1 in effects.pids(i))} of {2 * queued}")
    return fig


def _nodes(cluster: harness.Cluster) -> dict[str, str]:
    return {n["name"]: n["state"] for n in cluster.status()["nodes"]}


def _hold_on_a1(cluster: harness.Cluster, session: RawSession, effects: SideEffects,
                gate: Gate, queued: int) -> list[str]:
    """Two gated never-twice calls running on a1 (heavy on core 1, medium on core 2) and
    ``queued`` idempotent plus ``queued`` never-twice calls queued behind them."""
    session.submit([
        call("run-m", "cluster_tasks:gated_once", str(effects), "run-m", str(gate),
             not_idempotent=True),
        call("run-h", "cluster_tasks:gated_heavy_once", str(effects), "run-h", str(gate),
             weight="heavy", not_idempotent=True)])
    wait(lambda: effects.count("run-m") and effects.count("run-h"), 20)
    again = [f"again-{i}" for i in range(queued)]
    once = [f"once-{i}" for i in range(queued)]
    session.submit([call(i, "cluster_tasks:record", str(effects), i) for i in again]
                   + [call(i, "cluster_tasks:record_once", str(effects), i,
                           not_idempotent=True) for i in once])
    ids = ["run-m", "run-h", *again, *once]
    wait(lambda: cluster.redis.inflight("a1") >= set(ids), 20)
    return ids


def _settle(cluster: harness.Cluster, session: RawSession, effects: SideEffects) -> None:
    """A sentinel through each agent's single medium mailbox: what it held has run."""
    admin = cluster.client(connect=False)
    for node, other in (("a1", "a2"), ("a2", "a1")):
        admin.drain(node=other, reason="settle")
        session.submit([call(f"sentinel-{node}", "cluster_tasks:record", str(effects),
                             f"sentinel-{node}")])
        wait(lambda node=node: session.outcomes().get(f"sentinel-{node}"), 20)
        admin.resume(node=other)


# -- defect 3 --------------------------------------------------------------------------------


def credits(mixed: int = 1200) -> Figures:
    """Agents re-register (gateway SIGKILL) while holding gated work of each weight; then
    ``mixed`` calls of mixed weight run to completion: compare idle credits before and after."""
    fig = Figures(f"3 credits after a rejoin: agents rejoin holding 16 calls, then {mixed} "
                  "mixed-weight calls")
    options = ("--workers-per-core", "2", "--mailbox-capacity", "6")
    with cluster_of(agent_options=options) as (cluster, effects, folder):
        wait(lambda: cluster.status()["inflight"] == 0, 10)
        before = cluster.credits()
        gate, client = Gate(folder / "gate"), cluster.client(recording=True)
        held = [client.submit_by_name(f"cluster_tasks:{task}", (str(effects), f"{task}-{i}",
                                                                str(gate)))
                for task, count in (("gated_heavy", 6), ("gated", 6), ("gated_light", 4))
                for i in range(count)]
        wait(lambda: cluster.status()["inflight"] == len(held), 20)
        cluster.restart_gateway()
        cluster.wait_nodes(lambda n: n.get("a1") == "UP" and n.get("a2") == "UP", "back")
        gate.open()
        tasks = ("record_heavy", "record", "record_light")
        handles = held + [client.submit_by_name(f"cluster_tasks:{tasks[i % 3]}",
                                                (str(effects), f"m{i}", 0.002))
                          for i in range(mixed)]
        highest = _highest_credits(cluster, before, handles)
        wait(lambda: cluster.status()["inflight"] == 0, 20)
        time.sleep(1.0)  # let the last credit reports land before reading the idle figures
        after = cluster.credits()
        tally(fig, client.outcomes(), [h.token_id for h in handles], effects)
    for name in sorted(before):
        fig.notes.append(f"{name}: idle credits before {_weights(before[name])}, after "
                         f"{_weights(after.get(name, {}))}, highest seen "
                         f"{_weights(highest.get(name, {}))}")
    fig.notes.append("credits equal free capacity again: "
                     f"{'yes' if after == before else 'NO'}")
    return fig


def _highest_credits(cluster: harness.Cluster, before: dict[str, dict[str, int]],
                     handles: list) -> dict[str, dict[str, int]]:
    """The highest credits Status showed per agent and weight until every handle is done."""
    highest = {name: dict(c) for name, c in before.items()}
    deadline = time.monotonic() + 90
    while not all(h.done() for h in handles) and time.monotonic() < deadline:
        for name, now in cluster.credits().items():
            for weight, n in now.items():
                top = highest.setdefault(name, {})
                top[weight] = max(top.get(weight, 0), n)
        time.sleep(0.05)
    return highest


def _weights(credits: dict[str, int]) -> str:
    return "/".join(str(credits.get(w, 0)) for w in ("heavy", "medium", "light")) + \
        " (heavy/medium/light)"


# -- defect 4 --------------------------------------------------------------------------------


def frames(sizes: tuple[int, ...] = (9_000, 100_000)) -> list[Figures]:
    """One raw frame of each size of no-op calls: answered? completed? orphaned in Redis?"""
    return [_one_frame(size) for size in sizes]


def _one_frame(size: int) -> Figures:
    fig = Figures(f"4 one frame of {size} calls")
    with cluster_of() as (cluster, effects, _):
        session = cluster.raw_session()
        ids = [f"f{i}" for i in range(size)]
        session.submit(call(i, "cluster_tasks:noop", weight="light") for i in ids)
        with _quiet():
            session.wait_answered(ids, timeout=60)
        with _quiet():
            session.wait_results([i for i in ids if session.accepted[i]], timeout=60)
        tally(fig, told_by([session]), ids, effects)
        answered = sum(1 for i in ids if session.accepted[i] or session.rejected.get(i))
        total, orphans, _ = cluster.redis.orphans()
        fig.notes.append(f"answered (acked or rejected) {answered} of {size}; session "
                         f"{'closed by the gateway' if session.ended else 'open'}")
        fig.notes.append(f"token hashes in Redis {total}, orphaned (in no queue and no "
                         f"inflight set, not final) {orphans}")
    return fig


@contextmanager
def _quiet() -> Iterator[None]:
    """A wait that may time out or see its session end: the figures say what happened."""
    try:
        yield
    except AssertionError:
        pass


# -- defect 5 --------------------------------------------------------------------------------


def duplicates(repeated: int = 100, copies: int = 3) -> Figures:
    """One frame holding ``repeated`` ids ``copies`` times each, interleaved with as many
    other ids."""
    fig = Figures(f"5 duplicate ids in one frame: {repeated} ids x {copies} copies side by "
                  f"side, each followed by another id")
    with cluster_of() as (cluster, effects, _):
        session = cluster.raw_session()
        dup = [f"dup-{i}" for i in range(repeated)]
        other = [f"other-{i}" for i in range(repeated)]
        frame = [call(i, "cluster_tasks:record", str(effects), i)
                 for pair in zip(dup, other, strict=True) for i in (pair[0],) * copies + pair[1:]]
        session.submit(frame)
        wait(lambda: len(session.outcomes()) >= 2 * repeated, 30)
        wait(lambda: cluster.status()["inflight"] == 0, 10)
        time.sleep(0.5)  # copies still running on the other agent finish
        tally(fig, told_by([session]), dup + other, effects)
        answers = Counter({i: session.accepted[i] + len(session.rejected.get(i, []))
                           for i in dup})
        fig.notes.append(f"repeated ids with an answer for every copy: "
                         f"{sum(1 for i in dup if answers[i] >= copies)} of {repeated}")
    return fig


# -- defect 6 --------------------------------------------------------------------------------


def idempotency(calls: int = 20) -> Figures:
    """``calls`` raw TaskItems of a task declared ``idempotent: false`` without the client's
    flag, held on a1 (4 running, the rest queued); SIGKILL a1."""
    fig = Figures(f"6 idempotency from the task: {calls} idempotent:false calls sent without "
                  "the flag, their agent SIGKILLed")
    with cluster_of(("a1",), agent_options=("--workers-per-core", "4")) as \
            (cluster, effects, folder):
        gate, session = Gate(folder / "gate"), cluster.raw_session()
        ids = [f"once-{i}" for i in range(calls)]
        session.submit(call(i, "cluster_tasks:gated_once", str(effects), i, str(gate))
                       for i in ids)
        wait(lambda: cluster.redis.inflight("a1") >= set(ids), 20)
        wait(lambda: sum(effects.count(i) for i in ids) >= 4, 20)
        started = {i for i in ids if effects.count(i)}
        cluster.start_agent("a2")
        cluster.kill(cluster.agents["a1"], signal.SIGKILL)
        gate.open()
        wait(lambda: len(session.outcomes()) >= calls, 30)
        tally(fig, told_by([session]), ids, effects)
        fig.notes.append(f"running on a1 when it died: {len(started)}; of those ran again on "
                         f"a2: {sum(1 for i in started if effects.count(i) > 1)}")
        fig.notes.append(f"queued on a1, run on a2 although the task may not run again: "
                         f"{sum(1 for i in set(ids) - started if effects.count(i))}")
    return fig


# -- durability ------------------------------------------------------------------------------


def durability(tokens: int = 1000, never_twice: int = 3000, restarts: int = 6) -> list[Figures]:
    """Raw sessions that never resubmit: what the gateway acknowledged must come back from
    Redis alone, once, to a new session of the same client id watching the ids."""
    return [_one_crash(tokens), _many_crashes(never_twice, restarts)]


def _reconnect(cluster: harness.Cluster, sessions: list[RawSession], ids: list[str]) -> None:
    old = sessions[-1]
    try:
        old.wait_ended(15)
    except AssertionError:
        old.close()
    known = told_by(sessions)
    session = cluster.raw_session(old.client_id)
    session.watch([i for i in ids if i not in known])
    sessions.append(session)


def _one_crash(tokens: int) -> Figures:
    fig = Figures(f"7a durability: {tokens} acknowledged calls (most waiting in Redis), one "
                  "gateway SIGKILL, no resubmission")
    with cluster_of(agent_options=("--workers-per-core", "1", "--mailbox-capacity", "5"),
                    gateway_options=PATIENT) as (cluster, effects, folder):
        gate, sessions = Gate(folder / "gate"), [cluster.raw_session()]
        ids = [f"d{i}" for i in range(tokens)]
        sessions[0].submit(call(i, "cluster_tasks:gated", str(effects), i, str(gate))
                           for i in ids)
        wait(lambda: all(sessions[0].accepted[i] for i in ids), 30)
        acked = sum(1 for i in ids if sessions[0].accepted[i])
        cluster.restart_gateway()
        gate.open()
        _reconnect(cluster, sessions, ids)
        wait(lambda: len(told_by(sessions)) >= tokens, 60)
        tally(fig, told_by(sessions), ids, effects)
        fig.notes.append(f"acknowledged before the crash: {acked}")
    return fig


def _many_crashes(tokens: int, restarts: int) -> Figures:
    fig = Figures(f"7b durability: {tokens} acknowledged idempotent:false calls, {restarts} "
                  "gateway SIGKILLs while they drain, no resubmission")
    with cluster_of(agent_options=SMALL, gateway_options=PATIENT) as (cluster, effects, _):
        sessions = [cluster.raw_session()]
        ids = [f"n{i}" for i in range(tokens)]
        sessions[0].submit(call(i, "cluster_tasks:record_once", str(effects), i, 0.004,
                                not_idempotent=True) for i in ids)
        wait(lambda: all(sessions[0].accepted[i] for i in ids), 30)
        step = tokens // (restarts + 2)
        for n in range(1, restarts + 1):
            wait(lambda n=n: completed(cluster) >= n * step, 60)
            cluster.restart_gateway()
            _reconnect(cluster, sessions, ids)
        wait(lambda: len(told_by(sessions)) >= tokens, 60)
        tally(fig, told_by(sessions), ids, effects)
    return fig


# -- main ------------------------------------------------------------------------------------

SCENARIOS: dict[str, Callable[[], Figures | list[Figures]]] = {
    "reconnect": reconnect, "late": late, "credits": credits, "frames": frames,
    "duplicates": duplicates, "idempotency": idempotency, "durability": durability,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", nargs="?", default="all", choices=(*SCENARIOS, "all"))
    args = parser.parse_args(argv)
    logging.getLogger("tokengate").setLevel(logging.ERROR)  # reconnect chatter: figures only
    chosen = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    print("TokenGate issue 8 reproductions (real redis-server, gateway and agent processes; "
          "runs counted by side effects)")
    for name in chosen:
        began = time.monotonic()
        result = SCENARIOS[name]()
        for fig in result if isinstance(result, list) else [result]:
            fig.report()
        for error, n in STATUS_ERRORS.items():
            print(f"   (a call failed {n}x while waiting: {error})")
        STATUS_ERRORS.clear()
        print(f"   ({name}: {time.monotonic() - began:.1f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
