"""The chaos soak (issue 13): a steady mixed load while processes are killed, frozen and
restarted at random; then every promise of docs/cluster.md is checked against the record.

    python -m benchmarks.chaos --minutes 30 [--seed N] [--faults agent-kill,gateway-kill,...]
                               [--rate 150] [--settle 120] [--gateways 1] [--workdir DIR]

Redis (append-only file, ``appendfsync everysec`` as ``tokengate up`` runs it), a gateway
(``--heartbeat-timeout 3``, a result TTL longer than the run) and three agents run as real
processes (:mod:`benchmarks.chaos_rig`). ``--gateways 2``: two gateways on shards a and b of
one cluster, the agents and the load's clients split over them, each listing its own gateway
first and the other next; ``gateway-kill`` kills them in turn (:mod:`benchmarks.chaos_gateways`).
A load thread submits ``--rate`` calls a second of every weight, idempotent and never-twice,
through the ordinary Python client, one per gateway
(:mod:`benchmarks.chaos_load`; tasks in :mod:`benchmarks.chaos_tasks`, each run leaving a
line on disk). A chaos thread does one fault every 4-10 s (:mod:`benchmarks.chaos_faults`).
A sampler records each process's memory. At the end the load stops, the chaos stops (what it
froze is continued, what it killed restarted, what it drained resumed), the soak waits up to
``--settle`` seconds for every call, then judges the record (:mod:`benchmarks.chaos_checks`,
whose docstring states each criterion, memory included) and prints the table
(:mod:`benchmarks.chaos_report`). Exit status 1 if a check failed.

Nothing here retries a call or leaves out a fault to make a check pass: a failure is the
system's. Logs of every process, ``chaos.log`` (each event, timestamped) and ``runs.log`` (each
execution) stay in the work directory, printed first.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from tokengate.shared.client_config import ClientConfig
from tokengate.shared.rpc import tokengate_pb2 as pb

from benchmarks.chaos_checks import Check, Final, Soak, Stored, run_checks
from benchmarks.chaos_faults import FAULTS, Chaos
from benchmarks.chaos_load import ChaosClient, Load, Record, told_name
from benchmarks.chaos_report import parse_losses, parse_runs, render
from benchmarks.chaos_rig import ChaosRig, MemorySampler
from benchmarks.faults2_rig import TOKEN

logger = logging.getLogger(__name__)

# The client's submit_timeout: a submit waits this long for the client's window, and a call
# refused while Redis is away (restarting, loading its AOF) is offered again this long.
SUBMIT_TIMEOUT = 60.0
FINAL_UP_WAIT = 30.0     # seconds the end waits for every agent to be UP in status
RESULT_TTL_MARGIN = 3600  # the gateway keeps unreceived results this much past the run


@dataclass(frozen=True)
class SoakResult:
    ok: bool
    report: str
    checks: list[Check]
    soak: Soak
    workdir: Path


@dataclass(frozen=True, kw_only=True)
class Settings:
    minutes: float
    seed: int = 1
    faults: tuple[str, ...] = FAULTS
    rate: float = 150.0
    settle: float = 120.0
    heartbeat_timeout: float = 3.0
    sample_rate: float = 0.05
    gateways: int = 1
    workdir: Path | None = None


def run(settings: Settings) -> SoakResult:
    """One soak, start to verdict; the processes are stopped whatever happens."""
    workdir = settings.workdir or Path(tempfile.mkdtemp(prefix="tokengate-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    logger.info("chaos soak: %.1f min, seed %d, faults %s, %d gateway(s); files in %s",
                settings.minutes, settings.seed, ",".join(settings.faults), settings.gateways,
                workdir)
    duration = settings.minutes * 60
    rig = ChaosRig(workdir, heartbeat_timeout=settings.heartbeat_timeout,
                   result_ttl=int(duration + settings.settle + RESULT_TTL_MARGIN),
                   gateways=settings.gateways)
    clients: list[ChaosClient] = []
    record = Record(workdir)
    try:
        rig.start()
        for i in range(len(rig.gateways)):
            clients.append(_client(settings, rig.client_addresses(i), record))
            clients[-1].connect()
        soak = _soak(settings, rig, clients, workdir, duration)
    finally:
        for client in clients:
            client.close()
        rig.close()
        record.close()
    checks = run_checks(soak)
    gateways = f", {settings.gateways} gateways" if settings.gateways > 1 else ""
    title = (f"chaos soak: {settings.minutes:g} min at {settings.rate:g} calls/s, seed "
             f"{settings.seed}, faults {','.join(settings.faults)}{gateways}; files in "
             f"{workdir}")
    return SoakResult(all(c.ok for c in checks), render(soak, checks, title), checks, soak,
                      workdir)


def _client(settings: Settings, addresses: str, record: Record) -> ChaosClient:
    """A load client that starts at the first of ``addresses`` (its own gateway)."""
    return ChaosClient(ClientConfig(address=addresses, token=TOKEN, spread=False,
                                    submit_timeout=SUBMIT_TIMEOUT),
                       record=record, sample_rate=settings.sample_rate, salt=str(settings.seed))


def _soak(settings: Settings, rig: ChaosRig, clients: list[ChaosClient], workdir: Path,
          duration: float) -> Soak:
    runs_log = workdir / "runs.log"
    load = Load(clients, runs_log, rate=settings.rate, seed=settings.seed)
    sampler = MemorySampler(rig)
    started = time.time()
    chaos = Chaos(rig, workdir / "chaos.log", rng=random.Random(settings.seed + 1),
                  faults=settings.faults, started=started)
    for client in clients:
        client.withholding.set()
    sampler.start()
    load.start()
    chaos.start()
    _sleep_until(started + duration * 2 / 3)
    for client in clients:
        client.withholding.clear()
    _sleep_until(started + duration)
    load.stop()
    load_stopped = time.time()
    samples = sampler.stop()
    logger.info("load stopped: %d calls, %d outstanding; stopping the chaos",
                load.made(), load.outstanding())
    chaos.stop()
    left = load.wait_all(settings.settle)
    logger.info("settled: %d calls without an outcome after %.0fs", left, settings.settle)
    final = _final(rig)
    withheld = {i: kept for client in clients for i, kept in client.kept().items()}
    ended, told, accepted = clients[0].record.read()  # one record, shared by every client
    return Soak(
        started=started, load_stopped=load_stopped,
        heartbeat_timeout=settings.heartbeat_timeout, agents=rig.agents,
        calls=tuple(sorted([*ended, *load.unfinished()], key=lambda c: c.seq)),
        told=told,
        accepted=accepted,
        runs=tuple(parse_runs(runs_log.read_text() if runs_log.exists() else "")),
        events=tuple(chaos.events),
        losses=tuple(sorted((loss for role in rig.gateways
                             for loss in parse_losses(rig.log(role))), key=lambda x: x.at)),
        incarnations=tuple(rig.incarnations()),
        samples=tuple(samples),
        stored=tuple(_stored(rig, withheld)),
        final=final, gateways=rig.gateways)



def _sleep_until(when: float) -> None:
    while (left := when - time.time()) > 0:
        time.sleep(min(left, 1.0))


def _final(rig: ChaosRig) -> Final:
    """Which processes run, and each agent's state in ``status`` (waiting, bounded, for all
    of them to be UP)."""
    rig.wait_nodes(lambda nodes: all(nodes.get(a, ("",))[0] == "UP" for a in rig.agents),
                   FINAL_UP_WAIT)
    nodes, error = rig.nodes()  # every shard's agents
    return Final(alive=rig.alive(), nodes={name: state for name, (state, _) in nodes.items()},
                 error=error)


def _stored(rig: ChaosRig, withheld: dict[str, tuple[str, bytes]]) -> list[Stored]:
    """Redis's record of each token whose receipt was withheld, beside what was told (a
    token is in one shard: its client's; found in several, the check is told so)."""
    ids = sorted(withheld)
    prefixes = rig.prefixes
    store = redis.Redis.from_url(rig.redis.url, socket_timeout=30)
    try:
        pipe = store.pipeline(transaction=False)
        for token_id in ids:
            for prefix in prefixes:
                pipe.hmget(f"{prefix}t:{token_id}", "s", "e", "r")
        flat = pipe.execute()
    except redis.RedisError as exc:
        return [Stored(i, withheld[i][0], withheld[i][1], None, "", b"",
                       f"Redis unreadable: {exc}") for i in ids]
    finally:
        store.close()
    out = []
    for n, token_id in enumerate(ids):
        found = [row for row in flat[n * len(prefixes):(n + 1) * len(prefixes)] if row[0]]
        state, error, result = found[0] if found else (None, None, None)
        told, payload = withheld[token_id]
        if len(found) > 1:
            out.append(Stored(token_id, told, payload, state.decode(), "", b"",
                              f"stored in {len(found)} shards"))
            continue
        stored_error, stored_payload = (error or b"").decode(), b""
        if result:
            item = pb.ResultItem.FromString(result)
            told_item = told_name(item)
            stored_error = told_item.partition(":")[2]
            stored_payload = bytes(item.payload)
        out.append(Stored(token_id, told, payload, state.decode() if state else None,
                          stored_error, stored_payload))
    return out


def _faults(text: str) -> tuple[str, ...]:
    faults = tuple(f.strip() for f in text.split(",") if f.strip())
    unknown = sorted(set(faults) - set(FAULTS))
    if unknown or not faults:
        raise argparse.ArgumentTypeError(f"unknown faults {unknown}; choose from "
                                         f"{','.join(FAULTS)}")
    return faults


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="load duration (default 30)")
    parser.add_argument("--seed", type=int, default=1, help="seed of every random choice")
    parser.add_argument("--faults", type=_faults, default=FAULTS,
                        help=f"comma-separated subset of {','.join(FAULTS)} (default all)")
    parser.add_argument("--rate", type=float, default=150.0, help="calls a second")
    parser.add_argument("--settle", type=float, default=120.0,
                        help="seconds to wait for outstanding calls at the end")
    parser.add_argument("--gateways", type=int, choices=(1, 2), default=1,
                        help="gateways, each on a shard of its own (default 1)")
    parser.add_argument("--workdir", type=Path, help="where logs go (default: a new temp dir)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger("benchmarks.chaos_faults").setLevel(logging.INFO)
        logging.getLogger(__name__).setLevel(logging.INFO)
        logging.getLogger("tokengate.shared.client").setLevel(logging.ERROR)  # reconnects
    result = run(Settings(minutes=args.minutes, seed=args.seed, faults=args.faults,
                          rate=args.rate, settle=args.settle, gateways=args.gateways,
                          workdir=args.workdir))
    print(result.report)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
