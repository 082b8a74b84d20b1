"""Reproductions of issue 8's defects 7-12 at the issue's scale, with figures.

    python -m benchmarks.faults2 [all|hung|watch|slow|drops|twogateways|bounds]

Each scenario starts its own redis-server, gateway(s) and agents as real processes on
loopback (benchmarks/faults2_rig.py) and prints what happened: tokens submitted, completed,
lost, run twice (executions counted on disk: each task run appends a line to a file), gateway
memory, items the gateway counted per call. Run it before and after the fixes to compare;
"REPRODUCED" marks a figure that shows the defect, "ok" one that shows it fixed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
import uuid
from collections import Counter
from typing import Any

import redis
from tokengate.shared.errors import TaskTimeLimit, TokenGateError, TokenKilled
from tokengate.shared.rpc import tokengate_pb2 as pb

# faults2_rig puts tests/integration/cluster on sys.path: it is imported first.
# isort: off
from benchmarks.faults2_rig import TASKS, Gate, Rig, node, outcomes, verdict, wait_for
from benchmarks.faults2_guards import bounds, twogateways
import faults2_tasks
from _faults2 import RawSession, rejected, results, task_item
# isort: on

HUNG = ("--cores", "2", "--workers-per-core", "2", "--mailbox-capacity", "5")


# -- defect 7 -------------------------------------------------------------------------------------


def hung() -> None:
    print("== defect 7: an agent whose every worker is stuck (2 cores x 2 workers, mailboxes 5)")
    with Rig() as rig:
        rig.gateway()
        rig.agent("hung", *HUNG)
        client = rig.client()
        gate = Gate(rig, "hung")
        tags = [f"{w}{i}" for w in ("heavy", "medium", "light") for i in range(20)]
        tokens = [client.submit_by_name(f"{TASKS}:gated_{t.rstrip('0123456789')}", gate.args(t))
                  for t in tags]
        topo = node(rig.status(), "hung")["topology"]
        capacity = topo["workers"] * (topo["mailbox_capacity"] + 1)
        wait_for(lambda: sum(gate.runs().values()) >= topo["workers"], 15)
        peak, states = _watch_node(rig, "hung", 2.0)
        info = rig.status()
        print(f"  submitted {len(tokens)}; the agent can hold {capacity}; the gateway sent it "
              f"{peak} [{verdict(peak > capacity)}]; waiting at the gateway "
              f"{sum(info['pending'].values())}")
        print(f"  node state while stuck: {sorted(states)} "
              f"[{verdict('SATURATED' not in states)}]")
        killed, ran_after = _kill_queued(rig, client, tokens, tags, gate, 3)
        result = outcomes(tokens, 30)
        runs = gate.runs()
        print(f"  kills applied while stuck: {killed}/3 [{verdict(killed < 3)}]; killed tokens "
              f"that ran after the gate opened: {ran_after} [{verdict(ran_after > 0)}]")
        print(f"  outcomes {dict(result)}; ran twice {sum(n > 1 for n in runs.values())}")
        _time_limit(rig, client)


def _watch_node(rig: Rig, name: str, seconds: float) -> tuple[int, set[str]]:
    peak, states = 0, set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        n = node(rig.status(), name)
        peak, states = max(peak, n["inflight"]), states | {n["state"]}
    return peak, states


def _kill_queued(rig: Rig, client: Any, tokens: list, tags: list[str], gate: Gate,
                 n: int) -> tuple[int, int]:
    store = redis.Redis.from_url(rig.redis_url)
    held = {m.decode() for m in store.smembers(f"{rig.prefix}inflight:hung")}
    started = set(gate.runs())
    queued = [(t, tag) for t, tag in zip(tokens, tags, strict=True)
              if t.token_id in held and tag not in started][-n:]
    for token, _ in queued:
        client.kill(token)
    killed = 0
    for token, _ in queued:
        try:
            token.get(timeout=5)
        except TokenKilled:
            killed += 1
        except TokenGateError:
            pass
    gate.open()
    outcomes([t for t, _ in queued], 20)
    runs = gate.runs()
    return killed, sum(runs[tag] > 0 for _, tag in queued)


def _time_limit(rig: Rig, client: Any) -> None:
    if not faults2_tasks.TIME_LIMIT_SUPPORTED:
        print("  time limit: the 'timeout' tag is refused by this build [REPRODUCED: none]")
        return
    gate = Gate(rig, "limited")
    start = time.monotonic()
    tokens = [client.submit_by_name(f"{TASKS}:limited_heavy", gate.args(i)) for i in range(6)]
    result = outcomes(tokens, 20)
    took = time.monotonic() - start
    ok = wait_for(lambda: node(rig.status(), "hung")["state"] == "UP", 10)
    fresh = [client.submit_by_name(f"{TASKS}:noop") for _ in range(20)]
    after = outcomes(fresh, 10)
    gate.open()
    print(f"  time limit {faults2_tasks.TIME_LIMIT}s on 6 stuck calls: {dict(result)} in "
          f"{took:.1f}s [{verdict(result.get(TaskTimeLimit.__name__, 0) != 6)}]; node UP "
          f"again: {ok}; 20 new calls: {dict(after)}")


# -- defect 8 -------------------------------------------------------------------------------------


def watch() -> None:
    print("== defect 8: another session watches client A's 200 token ids")
    with Rig() as rig:
        rig.gateway()
        rig.agent("a1", "--cores", "2")
        owner = rig.client()
        gate = Gate(rig, "watch")
        tokens = [owner.submit_by_name(f"{TASKS}:gated_light", gate.args(i)) for i in range(200)]
        wait_for(lambda: rig.status()["counts"].get("submitted", 0) >= 200, 10)
        thief = RawSession(rig.address, client_id=f"thief-{uuid.uuid4().hex[:6]}")
        thief.send(pb.ClientFrame(watch=[t.token_id for t in tokens]))
        time.sleep(0.5)  # let its watch land before the results exist
        gate.open()
        got = thief.collect(lambda r: len(results(r)) + len(rejected(r)) >= 200, timeout=10)
        result = outcomes(tokens, 10)
        thief.close()
        stolen = len(results(got))
        print(f"  owner: {dict(result)}; other session: {stolen} results, "
              f"{len(rejected(got))} rejected "
              f"({dict(Counter(r.error_type for r in rejected(got)))}) "
              f"[{verdict(stolen > 0 or result.get('lost', 0) > 0)}]")


# -- defect 9 -------------------------------------------------------------------------------------


def slow(calls: int = 50_000, size: int = 2048) -> None:
    print(f"== defect 9: a session submits {calls:,} calls returning {size} B and never reads")
    with Rig() as rig:
        rig.gateway()
        rig.agent("a1", "--cores", "2")
        rig.agent("a2", "--cores", "2")
        client_id = f"slow-{uuid.uuid4().hex[:6]}"
        base = rig.rss()
        done0 = rig.status()["counts"].get("completed", 0)
        session = RawSession(rig.address, client_id=client_id, read=False)
        ids = _submit_blobs(session, calls, size)
        peak = _peak_rss_until(rig, lambda: rig.status()["counts"].get("completed", 0)
                               - done0 >= calls, 180)
        end = rig.rss()
        session.start_reading()
        session.collect(lambda r: False, timeout=15)
        code = session.error.code().name if session.error else "still open after 15 s"
        detail = session.error.details()[:60] if session.error else ""
        session.close()
        time.sleep(2.0)  # the gateway's own clean-up after the cancel
        after = rig.rss()
        mib = 2**20
        print(f"  gateway RSS {base / mib:.0f} MiB; growth peak +{(peak - base) / mib:.0f}, "
              f"end +{(end - base) / mib:.0f}, 2 s after cancel +{(after - base) / mib:.0f} MiB "
              f"[{verdict(end - base > 40 * mib)}] (bound asked: < 40 MiB)")
        print(f"  slow session closed by the gateway: {code} {detail} "
              f"[{verdict(code != 'RESOURCE_EXHAUSTED')}]")
        fetched = _watch_all(rig, client_id, ids)
        print(f"  a new session of the same client id fetched {fetched:,}/{calls:,} results "
              f"from Redis [{verdict(fetched != calls)}]")


def _submit_blobs(session: RawSession, calls: int, size: int) -> list[str]:
    ids = [uuid.uuid4().hex for _ in range(calls)]
    for start in range(0, calls, 1000):
        session.send(pb.ClientFrame(submit=[
            task_item("blob", (size, i), token_id)
            for i, token_id in enumerate(ids[start:start + 1000], start)]))
    return ids


def _peak_rss_until(rig: Rig, done: Any, timeout: float) -> int:
    peak, deadline = rig.rss(), time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        peak = max(peak, rig.rss())
        time.sleep(0.1)
    return max(peak, rig.rss())


def _watch_all(rig: Rig, client_id: str, ids: list[str]) -> int:
    session = RawSession(rig.address, client_id=client_id)
    fetched = 0
    for start in range(0, len(ids), 1000):
        chunk = ids[start:start + 1000]
        session.send(pb.ClientFrame(watch=chunk))
        got = session.collect(lambda r, c=chunk: len(results(r)) + len(rejected(r)) >= len(c),
                              timeout=15)
        fetched += len(results(got))
    session.close()
    return fetched


# -- defect 10 ------------------------------------------------------------------------------------


class LostSessions(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lost = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "session lost" in record.getMessage():
            self.lost += 1


def drops(runs: int = 5) -> None:
    print(f"== defect 10: {runs} runs of 20,000 no-op calls from 4 threads, one client each")
    handler = LostSessions()
    logging.getLogger("tokengate.shared.client").addHandler(handler)
    with Rig() as rig:
        rig.gateway()
        rig.agent("a1", "--cores", "2")
        rig.agent("a2", "--cores", "2")
        for burst, label in ((5000, "all at once"), (1000, "bursts of 1,000 per thread")):
            calls = items = lost = 0
            for _ in range(runs):
                before_lost, before = handler.lost, _items(rig)
                _four_threads(rig, burst)
                calls, items = calls + 20_000, items + _items(rig) - before
                lost += handler.lost - before_lost
            print(f"  {label}: {calls:,} calls, the gateway counted {items:,} items "
                  f"({items / calls:.3f} per call), sessions lost {lost} [{verdict(lost > 0)}]")
        lost, rounds = _receipt_race(rig, handler, 5)
        print(f"  slow done-callback probe (the race made certain): sessions lost {lost} in "
              f"{rounds} rounds [{verdict(lost > 0)}]")


def _items(rig: Rig) -> int:
    return rig.status()["counts"].get("gateway_client_items", 0)


def _four_threads(rig: Rig, burst: int) -> None:
    client = rig.client()

    def submit() -> None:
        for _ in range(5000 // burst):
            batch = [client.submit_by_name(f"{TASKS}:noop") for _ in range(burst)]
            for token in batch:
                token.get(timeout=120)

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.close()


def _receipt_race(rig: Rig, handler: LostSessions, rounds: int) -> tuple[int, int]:
    """A gated call whose done-callback sends 300 more and waits until the gateway has them:
    their frame takes the pending receipts while the first reply's marker is not queued yet."""
    lost0 = handler.lost
    for i in range(rounds):
        client, gate = rig.client(), Gate(rig, f"race{i}")
        before, done, more = _items(rig), threading.Event(), []
        blocker = client.submit_by_name(f"{TASKS}:gated_light", gate.args(i))

        def callback(_token: Any, client: Any = client, before: int = before,
                     more: list = more, done: threading.Event = done) -> None:
            more.extend(client.submit_by_name(f"{TASKS}:noop") for _ in range(300))
            wait_for(lambda: _items(rig) >= before + 301, 10)
            done.set()

        blocker.add_done_callback(callback)
        gate.open()
        done.wait(20)
        outcomes(more, 20)
        client.close()
    return handler.lost - lost0, rounds


SCENARIOS = {"hung": hung, "watch": watch, "slow": slow, "drops": drops,
             "twogateways": twogateways, "bounds": bounds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", nargs="?", default="all", choices=["all", *SCENARIOS])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.ERROR)  # warnings are counted (sessions lost), not printed
    logging.getLogger("tokengate.shared.client").setLevel(logging.WARNING)
    logging.getLogger("grpc._channel").setLevel(logging.CRITICAL)  # counted, not printed
    print(f"TokenGate issue 8, defects 7-12: {os.cpu_count()} CPUs, Python "
          f"{sys.version.split()[0]}")
    for name, scenario in SCENARIOS.items():
        if args.scenario in ("all", name):
            start = time.monotonic()
            scenario()
            print(f"  ({time.monotonic() - start:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
