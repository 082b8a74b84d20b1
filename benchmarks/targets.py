"""Issue 10's "figures to reach", judged on one run's results.

Pure: the results dictionary in, one entry per target out, each with the goal, the measured
figure, ``met`` (True, False, or None when a figure it needs was not measured in this run)
and a note.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SPEEDUP_GOAL = 1.7
W6_SERVER_GROWTH_MIB = 100.0  # the system's own processes (not the caller's handles)
W6_CLIENT_KIB_PER_HANDLE = 2.0  # what the caller keeps per submission, at most


def _figure(results: Mapping[str, Any], system: str, workload: str, key: str) -> float | None:
    data = results["systems"].get(system, {}).get("workloads", {}).get(workload, {})
    if data.get("status") != "ok":
        return None
    value = data.get(key)
    return float(value) if value is not None else None


def _target(goal: str, measured: str, met: bool | None, note: str = "") -> dict[str, Any]:
    return {"goal": goal, "measured": measured, "met": met, "note": note}


def _missing(goal: str, what: str) -> dict[str, Any]:
    return _target(goal, "not measured", None, f"{what} did not run in this run")


def _cluster_round_trip(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    p50 = _figure(results, "tokengate-cluster", "W2", "p50_ms")
    p99 = _figure(results, "tokengate-cluster", "W2", "p99_ms")
    actor = _figure(results, "ray-actor", "W2", "p50_ms")
    echo = results.get("yardstick", {}).get("grpc_echo", {})
    echo_p50 = echo.get("p50_ms") if echo.get("status") == "ok" else None
    out = []
    goal = "Cluster W2 p50 at most Ray's threaded actor's"
    if p50 is None or actor is None:
        out.append(_missing(goal, "the cluster's or Ray actor's W2"))
    else:
        out.append(_target(goal, f"{p50:.3f} ms vs {actor:.3f} ms ({p50 / actor:.2f}x)",
                           p50 <= actor))
    goal = "Cluster W2 p50 at most 3 bare gRPC echoes"
    if p50 is None or not echo_p50:
        out.append(_missing(goal, "the cluster's W2 or the echo"))
    else:
        out.append(_target(goal, f"{p50 / echo_p50:.1f} echoes ({p50:.3f} ms / "
                           f"{echo_p50:.3f} ms)", p50 <= 3 * echo_p50))
    goal = "Cluster W2 p99 at most 2x its p50"
    if p50 is None or p99 is None:
        out.append(_missing(goal, "the cluster's W2"))
    else:
        out.append(_target(goal, f"p99 {p99:.3f} ms = {p99 / p50:.2f}x p50", p99 <= 2 * p50))
    return out


def best_distributed_peer(results: Mapping[str, Any]) -> str | None:
    """The distributed peer with the most W1 tasks/s in this run."""
    rates = {name: _figure(results, name, "W1", "tasks_per_s")
             for name, s in results["systems"].items() if s.get("distributed")}
    ran = {name: rate for name, rate in rates.items() if rate is not None}
    return max(ran, key=lambda name: ran[name]) if ran else None


def _cluster_throughput(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    goals = ("Cluster W1 at least 8x the best distributed peer's tasks/s",
             "Cluster W1 CPU per task under 0.1x that peer's")
    ours = _figure(results, "tokengate-cluster", "W1", "tasks_per_s")
    ours_cpu = _figure(results, "tokengate-cluster", "W1", "cpu_us_per_task")
    peer = best_distributed_peer(results)
    if ours is None or ours_cpu is None or peer is None:
        return [_missing(g, "the cluster's W1 or every distributed peer's") for g in goals]
    rate = _figure(results, peer, "W1", "tasks_per_s") or 0.0
    cpu = _figure(results, peer, "W1", "cpu_us_per_task") or 0.0
    label = results["systems"][peer]["label"]
    return [
        _target(goals[0], f"{ours:,.0f} vs {rate:,.0f} tasks/s ({label}): {ours / rate:.1f}x",
                ours >= 8 * rate),
        _target(goals[1], f"{ours_cpu:,.0f} vs {cpu:,.0f} us: {ours_cpu / cpu:.3f}x",
                ours_cpu < 0.1 * cpu),
    ]


def _embedded(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    ours = _figure(results, "tokengate-embedded", "W1", "tasks_per_s")
    pool = _figure(results, "threadpool", "W1", "tasks_per_s")
    goal = "Embedded W1 at least 0.8x ThreadPoolExecutor's"
    if ours is None or pool is None:
        out.append(_missing(goal, "embedded's or the pool's W1"))
    else:
        out.append(_target(goal, f"{ours:,.0f} vs {pool:,.0f} tasks/s: {ours / pool:.2f}x",
                           ours >= 0.8 * pool))
    ours = _figure(results, "tokengate-embedded", "W2", "p50_ms")
    pool = _figure(results, "threadpool", "W2", "p50_ms")
    goal = "Embedded W2 p50 at most 1.5x ThreadPoolExecutor's"
    if ours is None or pool is None:
        out.append(_missing(goal, "embedded's or the pool's W2"))
    else:
        out.append(_target(goal, f"{ours:.3f} vs {pool:.3f} ms: {ours / pool:.2f}x",
                           ours <= 1.5 * pool))
    return out


def _speedups(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for system, mode in (("tokengate-embedded", "embedded"), ("tokengate-cluster", "cluster")):
        goal = f"W3 true speedup at least {SPEEDUP_GOAL}, {mode}"
        value = _figure(results, system, "W3", "speedup")
        if value is None:
            out.append(_missing(goal, f"{mode}'s W3"))
        else:
            note = ("above the 2.0 a 2-CPU machine allows: the serial run was slowed by other "
                    "load on the machine, so the figure is noisy" if value > 2.0 else "")
            out.append(_target(goal, f"{value:.2f} (limit 2.0 on 2 CPUs)",
                               value >= SPEEDUP_GOAL, note))
    return out


BOUNDS = {
    "tokengate-embedded": "queued work is bounded by the mailboxes (2 cores x 4 x 120 = 960 "
                          "tokens); a submission beyond waits in the caller (backpressure)",
    "tokengate-cluster": "the client holds at most its window (20,000) of calls the gateway "
                         "has not acknowledged; agents hold at most their mailboxes "
                         "(4 x 120 each); waiting tokens live in Redis (~1.2 KB each, up to "
                         "max_pending)",
}


def _memory(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for system, mode in (("tokengate-embedded", "embedded"), ("tokengate-cluster", "cluster")):
        goal = f"W6 memory bounded, {mode}"
        data = results["systems"].get(system, {}).get("workloads", {}).get("W6", {})
        if data.get("status") != "ok":
            out.append(_missing(goal, f"{mode}'s W6"))
            continue
        growth = data["growth_mib"]
        client_kib = growth.get("client", 0.0) * 1024 / max(1, data.get("submitted",
                                                                          data["tasks"]))
        servers = {k: v for k, v in growth.items() if k not in ("client", "total")}
        parts = [f"client +{growth.get('client', 0.0):.0f} MiB "
                 f"({client_kib:.2f} KiB per submission, handles kept)"]
        parts += [f"{k} +{v:.0f} MiB" for k, v in sorted(servers.items())]
        met = (client_kib <= W6_CLIENT_KIB_PER_HANDLE
               and all(v <= W6_SERVER_GROWTH_MIB for v in servers.values())
               and bool(data["drained"]))
        note = (f"bound: {BOUNDS[system]}; judged met when every server process grows under "
                f"{W6_SERVER_GROWTH_MIB:.0f} MiB and the caller under "
                f"{W6_CLIENT_KIB_PER_HANDLE:g} KiB per kept handle, with every task done")
        if not data["drained"]:
            rate = data["finished"] / max(data["wall_s"] - data["submit_s"], 1e-9)
            w1 = _figure(results, system, "W1", "tasks_per_s")
            note += (f"; not met because only {data['finished']:,} of {data['tasks']:,} "
                     f"finished within {data['drain_limit_s']:g} s of the last submission "
                     f"(~{rate:,.0f} tasks/s after submitting"
                     + (f", against {w1:,.0f}/s in W1" if w1 else "")
                     + "; not profiled here: most of a flood waits in Redis and is claimed "
                     "from there, where W1's tokens mostly find credit at once)")
        out.append(_target(goal, f"{data['tasks']:,} submissions: " + ", ".join(parts), met,
                           note))
    return out


PROFILE = "docs/cluster.md, Where a token's time goes"
WHY = {  # what is known of why a target falls short, from the profile of the same code
    "Cluster W2 p50 at most Ray's threaded actor's":
        f"a sequential round trip costs ~2.4 ms of CPU over the 4 processes (16 thread "
        f"wake-ups, 4 gRPC messages, 3 Redis scripts in 2 round trips, the outcome stored "
        f"before it is pushed), more than its wall time on 2 CPUs: it is CPU-bound, the "
        f"gateway half of it ({PROFILE})",
    "Cluster W2 p50 at most 3 bare gRPC echoes":
        f"a token crosses 4 links (2 echoes' worth); the rest is work and hand-offs inside "
        f"the processes ({PROFILE})",
    "Cluster W2 p99 at most 2x its p50":
        "the round trip's CPU competes with the machine's other load for 2 CPUs; "
        f"see {PROFILE}",
    "Cluster W1 at least 8x the best distributed peer's tasks/s":
        f"throughput is ~2 CPUs / CPU per task; ~90-100 us per task today, a quarter of it "
        f"in redis-server (~10 commands per token inside the scripts; {PROFILE})",
    "Cluster W1 CPU per task under 0.1x that peer's":
        f"~90-100 us per task: client, gateway, each agent and redis-server ~17-24 us each "
        f"({PROFILE})",
    "Embedded W1 at least 0.8x ThreadPoolExecutor's":
        "not profiled in this work: per no-op the embedded path spends ~20 us of CPU "
        "(token, routing, mailbox, worker wake-up, result) against the pool's ~8-10 us",
    "W3 true speedup at least 1.7, embedded":
        "not known; on this shared machine the figure moved between 1.5 and 2.2 from one "
        "full run to the next (the serial and parallel rounds meet different outside load)",
    "Embedded W2 p50 at most 1.5x ThreadPoolExecutor's":
        "not profiled in this work: the embedded path (token, routing, mailbox, worker "
        "wake-up, result notify) against the pool's bare future",
}


def _why(target: dict[str, Any]) -> dict[str, Any]:
    if target["met"] is False and not target["note"] and target["goal"] in WHY:
        return {**target, "note": WHY[target["goal"]]}
    return target


def evaluate(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every target of issue 10, in the issue's order; a missed one says why, where known."""
    return [_why(t) for t in (*_cluster_round_trip(results), *_cluster_throughput(results),
                              *_embedded(results), *_speedups(results), *_memory(results))]
