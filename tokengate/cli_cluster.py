"""``tokengate gateway|agent|up|status|drain|resume|kill|reenable|dashboard|top``: the
cluster's commands.

``add_cluster_commands(subparsers)`` plugs them into ``tokengate``'s parser; this module also
runs alone (``python -m tokengate.cli_cluster ...``), which is how ``tokengate up`` starts
its child processes.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from tokengate._signals import stop_event_on_signals
from tokengate.shared.auth import read_token
from tokengate.shared.channel import TlsConfig
from tokengate.shared.errors import ConfigurationError
from tokengate.shared.redis_server import die_with_parent

logger = logging.getLogger(__name__)

GONE_WORKERS_ENV = "TOKENGATE_GATEWAY_WORKERS"  # the threaded gateway's setting, refused now


def _tls(args: argparse.Namespace) -> TlsConfig | None:
    if not (args.tls_ca or args.tls_cert):
        return None
    return TlsConfig(ca=args.tls_ca or "", cert=args.tls_cert or "", key=args.tls_key or "")


def parse_cpus(text: str) -> set[int]:
    """``"0"``, ``"0-3"``, ``"0,2,4-5"`` -> CPU numbers."""
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            cpus.update(range(int(low), int(high or low) + 1))
    except ValueError:
        raise ConfigurationError(f"--cpus {text!r}: use CPU numbers like 0-3 or 0,2") from None
    return cpus


# -- roles -----------------------------------------------------------------------------------


def cmd_gateway(args: argparse.Namespace) -> int:
    from tokengate.gateway.config import GatewayConfig
    from tokengate.gateway.server import serve_forever

    if args.workers is not None or os.environ.get(GONE_WORKERS_ENV):
        raise ConfigurationError(
            "--workers (TOKENGATE_GATEWAY_WORKERS) is gone: the gateway no longer holds a "
            "thread per session; its limits are --max-sessions and --max-agents")
    config = GatewayConfig.from_env(
        listen=args.listen, redis_url=args.redis, token=_token(args), shard=args.shard,
        operator_token=read_token(None, args.operator_token_file) or None
        if args.operator_token_file else None,
        agent_token=read_token(None, args.agent_token_file) or None
        if args.agent_token_file else None,
        heartbeat_timeout=args.heartbeat_timeout, max_attempts=args.max_attempts,
        max_pending=args.max_pending, result_ttl=args.result_ttl, key_ttl=args.key_ttl,
        placement_timeout=args.placement_timeout,
        redis_replicas=args.redis_replicas, redis_replica_timeout=args.redis_replica_timeout,
        max_sessions=args.max_sessions, max_agents=args.max_agents,
        session_outbox_bytes=args.session_outbox_bytes, metrics_port=args.metrics_port,
        fair_depth=args.fair_depth, client_quota=args.client_quota,
        client_weights=tuple(args.client_weight) if args.client_weight else None,
        client_quotas=tuple(args.client_quotas) if args.client_quotas else None,
        allow_pickle=True if args.allow_pickle else None, tls=_tls(args))
    stop = stop_event_on_signals()

    def ready(port: int) -> None:
        host = config.listen.rpartition(":")[0]
        print(f"tokengate gateway listening on {host}:{port}", flush=True)

    serve_forever(config, stop, ready)
    return 0


def _token(args: argparse.Namespace) -> str | None:
    return read_token(None, args.token_file) or None if args.token_file else None


def cmd_agent(args: argparse.Namespace) -> int:
    from tokengate import _backend
    from tokengate.node_agent.agent import AgentConfig, NodeAgent
    from tokengate.node_agent.config import SchedulerConfig
    from tokengate.node_agent.guards.settings import GuardsConfig
    from tokengate.node_agent.link_config import LinkConfig

    if args.path:
        sys.path[:0] = args.path
    if args.cpus:
        os.sched_setaffinity(0, parse_cpus(args.cpus))  # before the topology is detected
    includes = tuple(m.strip() for spec in args.include or () for m in spec.split(",") if m)
    labels = tuple(t.strip() for spec in args.label or () for t in spec.split(",") if t.strip())
    link = LinkConfig.from_env(
        gateway=args.gateway, token=_token(args), name=args.name, includes=includes or None,
        labels=labels or None, storage=args.storage,
        heartbeat_interval=args.heartbeat, allow_pickle=True if args.allow_pickle else None,
        tls=_tls(args))
    scheduler = SchedulerConfig.from_env(node_name=link.name, **{
        k: v for k, v in (("workers_per_core", args.workers_per_core),
                          ("mailbox_capacity", args.mailbox_capacity), ("cores", args.cores),
                          ("stuck_after", args.stuck_after))
        if v is not None})
    agent = NodeAgent(AgentConfig(link=link, scheduler=scheduler,
                                  guards=GuardsConfig.from_env()))
    stop = stop_event_on_signals()
    agent.start()
    _backend.install(agent.nested)  # tasks that submit tasks run them on this host
    gc.freeze()  # what it loaded to start is never garbage: no full collection scans it again
    if not args.verbose:  # with -v the runtime logged it at INFO
        print("\n".join(agent.runtime.banner()))
    print(f"tokengate agent {link.name} -> {link.gateway} ({len(agent.link.tasks)} tasks)",
          flush=True)
    try:
        refused = agent.wait(stop)
    finally:
        _backend.uninstall(agent.nested)
        agent.stop(grace=args.stop_grace)
    if refused:
        raise ConfigurationError(refused)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from tokengate.cli_up import run_up

    return run_up(args)


# -- operator commands ---------------------------------------------------------------------


def _client(args: argparse.Namespace) -> Any:
    from tokengate.shared.client import open_client

    return open_client(args.gateway, token=_token(args), connect_timeout=args.timeout)


def cmd_status(args: argparse.Namespace) -> int:
    """The status of the gateway given; of each one, when several are (each gateway shows
    the shards it serves: the cluster is all of them)."""
    from tokengate.shared.channel import addresses
    from tokengate.shared.client import open_client
    from tokengate.shared.client_config import ClientConfig
    from tokengate.shared.status import describe, format_status

    every = addresses(ClientConfig.from_env(address=args.gateway).address)
    infos: dict[str, Any] = {}
    for address in every:
        client = open_client(address, token=_token(args), connect_timeout=args.timeout)
        try:
            infos[address] = describe(client.status())
        finally:
            client.close()
    if len(every) == 1:
        info = infos[every[0]]
        print(json.dumps(info, indent=2, default=str) if args.json else format_status(info))
    elif args.json:
        print(json.dumps(infos, indent=2, default=str))
    else:
        print("\n\n".join(f"== gateway {address}\n{format_status(info)}"
                           for address, info in infos.items()))
    return 0


def cmd_drain(args: argparse.Namespace) -> int:
    client = _client(args)
    try:
        print(client.drain(args.node or "", args.reason or ""))
    finally:
        client.close()
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    client = _client(args)
    try:
        print(client.resume(args.node or ""))
    finally:
        client.close()
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    client = _client(args)
    try:
        reply = client.kill(args.token_id)
    finally:
        client.close()
    print(f"{args.token_id}: {reply.outcome}: {reply.message}")
    return 0 if reply.ok else 1


def cmd_reenable(args: argparse.Namespace) -> int:
    client = _client(args)
    try:
        reply = client.reenable(args.function, actor=args.actor or "cli")
    finally:
        client.close()
    print(f"{args.function}: {reply.outcome}: {reply.message}")
    return 0 if reply.ok else 1


# -- parser ----------------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--token-file", help="file holding the cluster token "
                        "(default: TOKENGATE_TOKEN, TOKENGATE_TOKEN_FILE)")
    parser.add_argument("--tls-ca", help="CA certificate (PEM) of the gateway")
    parser.add_argument("--tls-cert", help="this peer's certificate (PEM)")
    parser.add_argument("--tls-key", help="this peer's private key (PEM)")


def client_options(parser: argparse.ArgumentParser) -> None:
    """The options of every command that talks to the gateway as a client."""
    parser.add_argument("--gateway", help="HOST:PORT, or several with commas (default: "
                        "TOKENGATE_GATEWAY or 127.0.0.1:50051)")
    parser.add_argument("--token-file", help="file holding the cluster (or operator) token")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to reach it")


def add_cluster_commands(commands: Any) -> None:
    """Add gateway, agent, up, status, drain, resume, kill, dashboard and top to
    ``tokengate``'s parser."""
    from tokengate.cli_dashboard import add_dashboard_commands
    from tokengate.cli_history import add_history_commands
    from tokengate.cli_result import add_result_command

    _add_gateway(commands)
    _add_agent(commands)
    _add_up(commands)
    _add_operator_commands(commands)
    add_dashboard_commands(commands)
    add_result_command(commands)
    add_history_commands(commands)


def _add_gateway(commands: Any) -> None:
    gw = commands.add_parser("gateway", help="run the gateway (gRPC server, Redis bookkeeping)")
    gw.add_argument("--listen", help="HOST:PORT to listen on (default 127.0.0.1:50051)")
    gw.add_argument("--redis", help="Redis URL, password included (default TOKENGATE_REDIS or "
                    "redis://127.0.0.1:6379/0); a Sentinel-watched primary: "
                    "redis+sentinel://[:password@]host1:port1,host2:port2/<service>?db=N")
    gw.add_argument("--shard", help="this gateway's shard of the cluster's bookkeeping (default "
                    "0); several gateways on one Redis each take their own")
    gw.add_argument("--redis-replicas", type=int, help="replicas that must confirm each "
                    "batch of writes (WAIT) before it is acknowledged (default 0: no wait)")
    gw.add_argument("--redis-replica-timeout", type=float, help="seconds to wait for them "
                    "before the batch fails (default 1)")
    gw.add_argument("--heartbeat-timeout", type=float, help="seconds before an agent is lost")
    gw.add_argument("--max-attempts", type=int, help="runs a token gets across lost agents")
    gw.add_argument("--placement-timeout", type=float, help="seconds a waiting token may go "
                    "without a live agent that has its task and required labels before it "
                    "fails with PlacementTimeout (default 60; 0: forever)")
    gw.add_argument("--max-pending", type=int, help="waiting tokens held before new calls get "
                    "GatewayBusy (clients wait and retry)")
    gw.add_argument("--max-sessions", type=int, help="client sessions served at once; past "
                    "it new ones get GatewayBusy (default 10000)")
    gw.add_argument("--max-agents", type=int, help="agent links served at once (default 1000)")
    gw.add_argument("--workers", type=int, help=argparse.SUPPRESS)  # gone: said so, clearly
    gw.add_argument("--fair-depth", type=int, help="tokens in flight over all clients past "
                    "which a client's calls beyond its weighted share wait at the gateway "
                    "(default 256; 0: first come, first served)")
    gw.add_argument("--client-weight", action="append", metavar="CLIENT_ID=WEIGHT",
                    help="a client's weight in the fair shares (repeatable; others weigh 1)")
    gw.add_argument("--client-quota", type=int, help="most tokens in flight per client "
                    "(default 0: no quota)")
    gw.add_argument("--client-quotas", action="append", metavar="CLIENT_ID=N",
                    help="one client's quota, instead of --client-quota (repeatable)")
    gw.add_argument("--result-ttl", type=int, help="seconds finished tokens stay in Redis "
                    "(default 600; ~1.2 KB each)")
    gw.add_argument("--key-ttl", type=int, help="seconds an idempotency key is kept after its "
                    "call finished (default 86400)")
    gw.add_argument("--allow-pickle", action="store_true", help="accept pickle-coded calls")
    gw.add_argument("--operator-token-file", help="file holding the operator token (controls "
                    "and watching any client's tokens need it; default: the cluster token)")
    gw.add_argument("--agent-token-file", help="file holding the token agents join with "
                    "(set, the cluster token cannot join as an agent; default: the cluster "
                    "token)")
    gw.add_argument("--session-outbox-bytes", type=int, help="results waiting for a slow "
                    "client before its session is cut off (default 8 MiB)")
    gw.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this "
                    "loopback port (0: any)")
    _common(gw)
    gw.set_defaults(handler=cmd_gateway)


def _add_agent(commands: Any) -> None:
    ag = commands.add_parser("agent", help="run a node agent: local scheduler + gateway link")
    ag.add_argument("--gateway", help="HOST:PORT of the gateway")
    ag.add_argument("--include", action="append", help="module(s) whose tasks this agent runs "
                    "(repeat, or comma-separate)")
    ag.add_argument("--path", action="append", help="directory to add to sys.path first")
    ag.add_argument("--label", action="append", help="a label of this agent, key=value "
                    "(repeat, or comma-separate), e.g. --label gpu=a100 --label zone=eu: calls "
                    "whose task requires labels run only on agents carrying them")
    ag.add_argument("--storage", help="NAME=TIER, e.g. nas1=SLOW: this agent's tasks' "
                    "storage_speed refers to the shared storage NAME, whose cap (TIER's writer "
                    "count: SLOW 10, MODERATE 25, FAST 50, INSANE 70) holds across every agent "
                    "declaring it, enforced by the gateway; default: a local disk, capped per "
                    "agent")
    ag.add_argument("--name", help="node name, unique in the cluster (default: host name)")
    ag.add_argument("--heartbeat", type=float, help="seconds between heartbeats")
    ag.add_argument("--workers-per-core", type=int)
    ag.add_argument("--mailbox-capacity", type=int)
    ag.add_argument("--cores", type=int, help="scheduler cores (default: detected)")
    ag.add_argument("--stuck-after", type=float, help="seconds one call may hold a worker "
                    "before what waits behind it goes back to the gateway (default 10)")
    ag.add_argument("--cpus", help="run on these CPUs only, e.g. 0-1 (several agents on one "
                    "host each get their own cores)")
    ag.add_argument("--allow-pickle", action="store_true", help="accept pickle-coded calls")
    ag.add_argument("--stop-grace", type=float, default=10.0, help="on SIGTERM/Ctrl-C, seconds "
                    "to finish admitted work before handing the rest back (default 10)")
    _common(ag)
    ag.set_defaults(handler=cmd_agent)


def _add_up(commands: Any) -> None:
    up = commands.add_parser("up", help="one machine: embedded Redis, gateway, agents and "
                             "the dashboard")
    up.add_argument("--agents", type=int, default=2, help="agent processes (default 2)")
    up.add_argument("--port", type=int, default=50051, help="gateway port (0: any free port)")
    up.add_argument("--gateways", type=int, default=1, help="gateways, each on a shard of its "
                    "own (default 1); the first on --port, the others on free ports")
    up.add_argument("--redis", help="use this Redis instead of starting one")
    up.add_argument("--include", action="append", help="module(s) the agents import")
    up.add_argument("--path", action="append", help="directory added to the agents' sys.path")
    up.add_argument("--state-dir", help="where the token file and Redis data go "
                    "(default ./.tokengate)")
    up.add_argument("--heartbeat-timeout", type=float, default=5.0)
    up.add_argument("--no-dashboard", action="store_true", help="do not start the dashboard")
    up.add_argument("--dashboard-port", type=int, default=8080, help="the dashboard's port on "
                    "127.0.0.1 (default 8080, or any free one if taken; 0: any)")
    up.add_argument("--demo", action="store_true", help="keep a mixed workload running (the "
                    "seed's operations, tokengate.workloads) so every panel moves")
    up.set_defaults(handler=cmd_up)


def _add_operator_commands(commands: Any) -> None:
    st = commands.add_parser("status", help="nodes, capacity and token counts")
    client_options(st)
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(handler=cmd_status)

    dr = commands.add_parser("drain", help="stop dispatching (cluster, or one --node)")
    client_options(dr)
    dr.add_argument("--node", help="drain only this node")
    dr.add_argument("--reason", help="why (shown in status)")
    dr.set_defaults(handler=cmd_drain)

    rs = commands.add_parser("resume", help="resume after a drain (cluster, or one --node)")
    client_options(rs)
    rs.add_argument("--node", help="resume only this node")
    rs.set_defaults(handler=cmd_resume)

    kl = commands.add_parser("kill", help="kill a queued token anywhere in the cluster, or "
                                          "ask a running one to stop (docs/cancel.md)")
    client_options(kl)
    kl.add_argument("token_id")
    kl.set_defaults(handler=cmd_kill)

    re = commands.add_parser("reenable", help="lift the Guard House's block of a function, "
                                              "cluster-wide (and reset its record)")
    client_options(re)
    re.add_argument("function", help="task name, MODULE:QUALNAME (see the Guard House panel)")
    re.add_argument("--actor", help="who asks (kept in the audit log; default: cli)")
    re.set_defaults(handler=cmd_reenable)


def main(argv: Sequence[str] | None = None) -> int:
    """The cluster roles alone (``python -m tokengate.cli_cluster``), as ``up`` runs them."""
    from tokengate.cli_run import run

    die_with_parent()  # children of ``tokengate up`` (and of the tests) stop with it
    parser = argparse.ArgumentParser(prog="tokengate", description=__doc__)
    parser.add_argument("-v", "--verbose", action="count", default=0)
    add_cluster_commands(parser.add_subparsers(dest="command", required=True))
    return run(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
