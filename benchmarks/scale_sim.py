"""A scale plan, simulated: G gateways, S Redis masters, A agents, C clients.

    python benchmarks/scale_sim.py [--agents 1000] [--clients 100000]
                                   [--targets 50000,200000] [--task-ms 10] [--seed 1]

Pure Python, no network, a few seconds. A model of a TokenGate cluster sharded by gateway
(docs/scale.md), fed only with per-token and per-message costs measured on this machine kind
(``Costs``: each constant names its source). For each target throughput and each way of
framing (``Framing``: today's code, and the plan's) it prints how many gateways and Redis
masters the load needs, sessions, agent links and memory per gateway, what sets each count
(the bottleneck), the heartbeat load, and what losing one shard costs. Then where shard names
land on masters (Redis Cluster hash slots), and a discrete-event run of dispatch balance:
agents spread over gateways by hash against an even spread.

The model's one idea: a frame costs a gRPC message, whatever it carries, so what a token costs
a gateway follows how many tokens ride in each frame, and that follows the rate on each
stream. With 100,000 clients at 2 calls/s each, every client frame carries one call.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
from collections import Counter
from dataclasses import dataclass, replace

SLOTS = 16384  # Redis Cluster hash slots


@dataclass(frozen=True)
class Costs:
    """Measured inputs, CPU in microseconds, each with its source (docs/scale.md, "Inputs")."""

    # docs/cluster.md "Throughput": the gateway's CPU per token in frames of 2,000
    gw_token_us: float = 17.5
    # DESIGN.md, building blocks: one gRPC message ~110-120 us of CPU on each side
    gw_message_us: float = 120.0
    # DESIGN.md: one EVALSHA in a batch, ~8 us of the caller's CPU
    gw_script_us: float = 8.0
    # docs/cluster.md, one round trip: write lane 248 us for 3 scripts sent alone, 83 each,
    # less the 8 above: the hand-off to the lane and back, once per lane cycle
    gw_lane_cycle_us: float = 75.0
    # docs/cluster.md "Throughput": agents 14.7 and 14.5 us per token
    agent_token_us: float = 14.6
    # docs/redis-cpu.md: ledger_bench, 8.26-8.68 us of redis-server per token, 200 a batch
    redis_token_us: float = 8.5
    # measured for scale.md: sessions_bench's loaded phase, INFO commandstats and cpu, 119.8
    # us per token at 2.88 scripts per token, less the line above and a round trip a script
    redis_script_us: float = 28.0
    # measured for scale.md: redis-server CPU per PING round trip, 10.5-10.9 us
    redis_roundtrip_us: float = 10.7
    # measured for scale.md: the monitor's ZADD XX + ZRANGE, per agent per tick, 0.7-1.0 us
    redis_agent_tick_us: float = 1.0
    # docs/cluster.md "Many clients": gateway memory per open session, and idle
    session_kib: float = 50.6
    gateway_base_mib: float = 58.0
    # gateway/config.py, result_ttl: about 1.2 KB per final token with a small result
    token_bytes: float = 1200.0
    # docs/cluster.md: one no-op's round trip, p50 1.31 ms
    round_trip_s: float = 0.0013


@dataclass(frozen=True)
class Limits:
    """Defaults and budgets a plan keeps to."""

    max_sessions: int = 10_000        # gateway/config.py max_sessions
    max_agents: int = 1_000           # gateway/config.py max_agents
    gateway_cores: float = 0.7        # assumed: a gateway is one event loop (one core), 30% spare
    redis_cores: float = 0.7          # assumed: a master is one thread, 30% spare
    heartbeat_s: float = 1.0          # node_agent/link_config.py: an idle agent's heartbeat
    monitor_s: float = 1.0            # gateway/registry.py: the monitor's tick, min(1, timeout / 4)


@dataclass(frozen=True)
class Framing:
    """How long each hop waits for more to ride in a frame (seconds). A frame leaves with the
    first item and carries whatever else arrives within the window."""

    name: str
    client_send_s: float      # client -> gateway calls, gateway -> client results (assumed)
    accept_wait_s: float      # the accept waits this long for the result to ride with (0: alone)
    receipt_s: float          # shared/client.py RECEIVED_LINGER: receipts wait for a call
    dispatch_s: float         # gateway -> agent (assumed: one event-loop pass)
    agent_send_s: float       # agent -> gateway outcomes (assumed: one frame's send)
    ack_s: float = 0.003      # docs/cluster.md: an ack waits up to 3 ms for a dispatch to ride
    lane_s: float = 0.0003    # the write lane's cycle: scripts queued meanwhile share one (assumed)
    message_us: float | None = None  # a per-message cost other than Costs.gw_message_us


TODAY = Framing("today", client_send_s=0.0002, accept_wait_s=0.0, receipt_s=0.05,
                dispatch_s=0.001, agent_send_s=0.0002)
COALESCED = Framing("coalesced", client_send_s=0.0002, accept_wait_s=0.005, receipt_s=1.0,
                    dispatch_s=0.002, agent_send_s=0.002)
LEAN = replace(COALESCED, name="coalesced+lean", message_us=25.0)  # bare grpc.aio, measured
FRAMINGS = (TODAY, COALESCED, LEAN)


def frames(rate: float, window: float) -> float:
    """Frames per second on a stream of Poisson items at ``rate``: a frame opens with an item
    and takes what arrives within ``window`` (1 + rate * window items each)."""
    return rate / (1.0 + rate * window) if rate > 0 else 0.0


def alone(rate: float, window: float) -> float:
    """The chance that nothing else (at ``rate``) comes within ``window`` to ride with."""
    return math.exp(-rate * window)


@dataclass(frozen=True)
class PerToken:
    """Messages and scripts per token at the gateway, from the rates on its streams."""

    client_msgs: float
    agent_msgs: float
    scripts: float
    agent_frames: float    # frames an agent sends per token (its outcomes)
    receipt_wait_s: float  # how long a final token waits in Redis for its receipt

    @property
    def messages(self) -> float:
        return self.client_msgs + self.agent_msgs


def per_token(client_rate: float, agent_rate: float, task_s: float, f: Framing,
              costs: Costs = Costs()) -> PerToken:
    """Per-client calls/s and per-agent tokens/s -> what one token costs in frames."""
    rc, ra = client_rate, agent_rate
    submit = frames(rc, f.client_send_s) / rc
    result_late = max(0.0, f.accept_wait_s - costs.round_trip_s)
    rides = 1.0 - math.exp(-result_late / task_s) if task_s > 0 else float(result_late > 0)
    accept = submit * (1.0 - rides)
    result = frames(rc, f.client_send_s) / rc
    receipt_frames = frames(rc, f.receipt_s) / rc
    receipt = receipt_frames * alone(rc, f.receipt_s)
    dispatch = frames(ra, f.dispatch_s) / ra
    outcome = frames(ra, f.agent_send_s) / ra
    ack = outcome * alone(ra * dispatch, f.ack_s)
    return PerToken(client_msgs=submit + accept + result + receipt,
                    agent_msgs=dispatch + outcome + ack,
                    scripts=submit + outcome + receipt_frames, agent_frames=outcome,
                    receipt_wait_s=(1.0 - alone(rc, f.receipt_s)) / rc)


@dataclass(frozen=True)
class Load:
    tokens_s: float
    clients: int
    agents: int
    task_s: float


@dataclass(frozen=True)
class Gateway:
    """One gateway and its shard at ``gateways`` gateways: CPU in cores, memory in MiB."""

    gateways: int
    tokens_s: float
    sessions: float
    agents: float
    cpu: float
    heartbeat_cpu: float
    redis_cpu: float
    memory_mib: float
    in_flight: float


def one_gateway(load: Load, gateways: int, f: Framing, costs: Costs = Costs(),
                limits: Limits = Limits()) -> Gateway:
    """What one of ``gateways`` gateways and its shard carry (clients, agents spread evenly)."""
    tg = load.tokens_s / gateways
    sessions, agents = load.clients / gateways, load.agents / gateways
    pt = per_token(load.tokens_s / load.clients, load.tokens_s / load.agents, load.task_s, f, costs)
    message_us = costs.gw_message_us if f.message_us is None else f.message_us
    scripts_s = tg * pt.scripts
    cycles_s = frames(scripts_s, f.lane_s)
    up_frames = load.tokens_s / load.agents * pt.agent_frames  # an agent's frames per second
    idle_beats = agents * alone(up_frames, limits.heartbeat_s) / limits.heartbeat_s
    heartbeat = idle_beats * 2 * message_us * 1e-6  # the heartbeat in, its ack out alone
    cpu = (tg * (costs.gw_token_us + pt.messages * message_us + pt.scripts * costs.gw_script_us)
           + cycles_s * costs.gw_lane_cycle_us) * 1e-6 + heartbeat
    ticks = 1.0 / limits.monitor_s  # monitor: serving check, ZADD, ZRANGE; lease renewal
    redis = (tg * (costs.redis_token_us + pt.scripts * costs.redis_script_us)
             + cycles_s * costs.redis_roundtrip_us
             + ticks * (4 * costs.redis_roundtrip_us + agents * costs.redis_agent_tick_us)) * 1e-6
    memory = costs.gateway_base_mib + (sessions + agents) * costs.session_kib / 1024
    life = load.task_s + costs.round_trip_s + pt.receipt_wait_s  # Little's law: tokens in Redis
    return Gateway(gateways, tg, sessions, agents, cpu, heartbeat, redis, memory, tg * life)


@dataclass(frozen=True)
class Plan:
    framing: str
    per_token: PerToken
    gateway: Gateway
    masters: int
    gateways_set_by: str
    masters_set_by: str
    gateway_us: float  # gateway CPU per token, all of it
    redis_us: float


def plan(load: Load, f: Framing, costs: Costs = Costs(), limits: Limits = Limits()) -> Plan:
    """The fewest gateways that carry ``load`` within every limit, then the fewest masters."""
    floor = {"sessions per gateway": math.ceil(load.clients / limits.max_sessions),
             "agent links per gateway": math.ceil(load.agents / limits.max_agents)}
    g, set_by = max(floor.values()), max(floor, key=floor.get)
    while True:
        gw = one_gateway(load, g, f, costs, limits)
        if gw.cpu > limits.gateway_cores:
            set_by = "gateway CPU"
        elif gw.redis_cpu > limits.redis_cores:
            set_by = "one shard's Redis CPU"
        else:
            break
        g += 1
    per_master = max(1, int(limits.redis_cores // gw.redis_cpu))  # shards one master can hold
    masters = math.ceil(g / per_master)
    masters_by = "Redis CPU" if per_master < g else "one master holds every shard"
    pt = per_token(load.tokens_s / load.clients, load.tokens_s / load.agents, load.task_s, f,
                   costs)
    return Plan(f.name, pt, gw, masters, set_by, masters_by,
                gateway_us=gw.cpu / gw.tokens_s * 1e6, redis_us=gw.redis_cpu / gw.tokens_s * 1e6)


# -- where shard names land: Redis Cluster hash slots ---------------------------------------------


def crc16(data: bytes) -> int:
    """CRC16-CCITT (XMODEM), the checksum Redis Cluster hashes keys with."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        crc &= 0xFFFF
    return crc


def keyslot(key: str) -> int:
    """A key's hash slot: of its hash tag (the first ``{...}``, if not empty), else the key."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            key = key[start + 1:end]
    return crc16(key.encode()) % SLOTS


def master_of(slot: int, masters: int) -> int:
    """The master owning ``slot`` when slots are split evenly in ranges (redis-cli --cluster
    create does this)."""
    return slot * masters // SLOTS


def shards_per_master(names: list[str], masters: int) -> Counter[int]:
    return Counter(master_of(keyslot(f"tokengate:{{{n}}}:epoch"), masters) for n in names)


def balanced_names(count: int, masters: int) -> list[str]:
    """``count`` shard names, as many on each master as can be: ``<master>-<k>`` for the
    smallest k whose slot is in that master's range."""
    names: list[str] = []
    for i in range(count):
        m, k = i % masters, 0
        while master_of(keyslot(f"{m}-{k}"), masters) != m or f"{m}-{k}" in names:
            k += 1
        names.append(f"{m}-{k}")
    return names


# -- dispatch balance: a discrete-event run ----------------------------------------------------


def fifo_waits(arrivals: list[float], services: list[float], servers: int) -> list[float]:
    """Waits of a FIFO queue with ``servers`` identical servers: each token starts on the
    server that frees first (exact for first come, first served)."""
    free = [0.0] * servers
    waits = []
    for at, service in zip(arrivals, services, strict=True):
        start = max(at, heapq.heappop(free))
        waits.append(start - at)
        heapq.heappush(free, start + service)
    return waits


@dataclass(frozen=True)
class Balance:
    placement: str
    agents_min: int
    agents_max: int
    idle_gateways: int     # gateways with no agent: their tokens never run
    worst_utilisation: float  # of the gateways with agents
    waited_share: float    # tokens that waited over 10 task times (or never ran)
    p99_wait_ms: float     # of the tokens that ran
    worst_p99_ms: float


def dispatch_balance(load: Load, gateways: int, workers: int, placement: str, seconds: float,
                     rng: random.Random) -> Balance:
    """Clients hashed over gateways; agents hashed (``"hash"``) or dealt evenly
    (``"even"``); each gateway dispatches only to its own agents (sharding by gateway)."""
    if placement == "hash":
        agents = Counter(rng.randrange(gateways) for _ in range(load.agents))
    else:
        agents = Counter(i % gateways for i in range(load.agents))
    clients = Counter(rng.randrange(gateways) for _ in range(load.clients))
    ran, stuck, worst_p99, worst_util = [], 0, 0.0, 0.0
    for g in range(gateways):
        rate = load.tokens_s * clients[g] / load.clients
        at, arrivals = 0.0, []
        while (at := at + rng.expovariate(rate)) < seconds:
            arrivals.append(at)
        if not agents[g]:
            stuck += len(arrivals)
            continue
        worst_util = max(worst_util, rate * load.task_s / (agents[g] * workers))
        mine = fifo_waits(arrivals, [rng.expovariate(1 / load.task_s) for _ in arrivals],
                          agents[g] * workers)
        worst_p99 = max(worst_p99, percentile(mine, 0.99))
        ran += mine
    long = (sum(w > 10 * load.task_s for w in ran) + stuck) / (len(ran) + stuck)
    return Balance(placement, min(agents[g] for g in range(gateways)), max(agents.values()),
                   sum(1 for g in range(gateways) if not agents[g]), worst_util, long,
                   percentile(ran, 0.99) * 1e3, worst_p99 * 1e3)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


# -- the report ---------------------------------------------------------------------------------


def row(cells: list[object], widths: list[int]) -> str:
    return "  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                     for i, (c, w) in enumerate(zip(cells, widths, strict=True)))


def report_plans(agents: int, clients: int, targets: list[int], task_s: float) -> list[Plan]:
    head = ["target/s", "framing", "msgs/tok", "gw us/tok", "redis us/tok", "gateways",
            "masters", "sess/gw", "agents/gw", "MiB/gw", "gateways set by", "in flight/shard"]
    widths = [9, 14, 8, 9, 12, 8, 7, 7, 9, 6, 21, 15]
    print(row(head, widths))
    plans = []
    for target in targets:
        load = Load(target, clients, agents, task_s)
        for f in FRAMINGS:
            p = plan(load, f)
            plans.append(p)
            gw = p.gateway
            print(row([f"{target:,}", f.name, f"{p.per_token.messages:.2f}",
                       f"{p.gateway_us:.0f}", f"{p.redis_us:.1f}", gw.gateways, p.masters,
                       f"{gw.sessions:,.0f}", f"{gw.agents:.1f}", f"{gw.memory_mib:.0f}",
                       p.gateways_set_by, f"{gw.in_flight:,.0f}"], widths))
    return plans


def report_calibration() -> None:
    """The model against a measured run: sessions_bench, 1,000 sessions on one gateway."""
    load = Load(558.0, 1000, 2, 0.0)
    gw = one_gateway(load, 1, TODAY)
    print(f"calibration, sessions_bench (1,000 sessions at 0.5 calls/s + a probe, one gateway, "
          f"2 agents): model gateway {gw.cpu / load.tokens_s * 1e6:.0f} us/token, redis "
          f"{gw.redis_cpu / load.tokens_s * 1e6:.0f} us/token; measured 780-1,020 and 113-161")


def report_details(plans: list[Plan], agents: int, task_s: float) -> None:
    costs = Costs()
    for p in plans:
        gw = p.gateway
        lag = gw.tokens_s * 0.010
        print(f"{gw.tokens_s * gw.gateways:>9,.0f} {p.framing:<14} per gateway: "
              f"{gw.tokens_s:,.0f} tokens/s, CPU {gw.cpu:.2f} core (heartbeats "
              f"{gw.heartbeat_cpu:.3f}); shard Redis {gw.redis_cpu:.3f} core; masters set by "
              f"{p.masters_set_by}; shard loss: {gw.in_flight:,.0f} tokens "
              f"({gw.in_flight * costs.token_bytes / 1e6:.1f} MB), {lag:,.0f} tokens' last "
              f"write per 10 ms of replication lag")
    beats = agents / Limits().heartbeat_s
    print(f"heartbeats when every agent is idle: {beats:,.0f} frames/s in all, "
          f"{beats * 2 * costs.gw_message_us * 1e-6:.2f} gateway cores; Redis "
          f"{agents * costs.redis_agent_tick_us * 1e-3:.1f} ms/s (at load: none, frames are "
          f"heartbeats); task time {task_s * 1e3:g} ms")
    for p in plans[:: len(FRAMINGS)]:
        rate = p.gateway.tokens_s * p.gateway.gateways / agents
        own = costs.agent_token_us + p.per_token.agent_msgs * costs.gw_message_us
        print(f"agent CPU at {rate * agents:,.0f} tokens/s ({rate:.0f} per agent): "
              f"{rate * own * 1e-6:.3f} core each by the model, {rate * 555e-6:.3f} at the "
              f"555 us/token sessions_bench measured")


def report_slots(plans: list[Plan]) -> None:
    p = max(plans, key=lambda p: p.masters)
    g, s = p.gateway.gateways, p.masters
    plain = shards_per_master([str(i) for i in range(g)], s)
    even = shards_per_master(balanced_names(g, s), s)
    print(f"{g} shards on {s} masters: named 0..{g - 1}, the busiest master holds "
          f"{max(plain.values())} and {s - len(plain)} hold none; named by slot "
          f"(balanced_names: {', '.join(balanced_names(min(g, 3), s))}, ...): busiest "
          f"{max(even.values())} (ideal {math.ceil(g / s)})")


def report_balance(plans: list[Plan], agents: int, clients: int, seed: int) -> None:
    p = max((p for p in plans if p.framing == COALESCED.name), key=lambda p: p.gateway.gateways)
    workers, util = 4, 0.8
    rate = p.gateway.tokens_s * p.gateway.gateways
    task_s = util * agents * workers / rate
    load = Load(rate, clients, agents, task_s)
    seconds = min(1.0, 120_000 / rate)
    print(f"dispatch balance: {rate:,.0f} tokens/s, {p.gateway.gateways} gateways, {agents} "
          f"agents x {workers} workers, tasks {task_s * 1e3:.0f} ms (mean utilisation "
          f"{util:.0%}), {seconds:g} s simulated")
    for placement in ("hash", "even"):
        b = dispatch_balance(load, p.gateway.gateways, workers, placement, seconds,
                             random.Random(seed))
        print(f"  agents by {placement:<5}: {b.agents_min}-{b.agents_max} agents a gateway "
              f"({b.idle_gateways} with none), worst utilisation {b.worst_utilisation:.2f}, "
              f"waited over 10 tasks' time {b.waited_share:.1%}, p99 wait "
              f"{b.p99_wait_ms:.1f} ms, worst gateway's p99 {b.worst_p99_ms:.1f} ms")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--targets", default="50000,200000", help="tokens/s, comma-separated")
    parser.add_argument("--task-ms", type=float, default=10.0, help="mean task time")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    targets = [int(t) for t in args.targets.split(",")]
    print(f"TokenGate scale plan: {args.agents:,} agents, {args.clients:,} clients, tasks "
          f"{args.task_ms:g} ms; gateways at <= {Limits().gateway_cores} core, masters at <= "
          f"{Limits().redis_cores} core")
    plans = report_plans(args.agents, args.clients, targets, args.task_ms / 1e3)
    report_calibration()
    report_details(plans, args.agents, args.task_ms / 1e3)
    report_slots(plans)
    report_balance(plans, args.agents, args.clients, args.seed)


if __name__ == "__main__":
    main()
