"""``tokengate history`` and ``tokengate guards report``: the cluster's records and reputations.

``history --out DIR`` asks every gateway given for the execution history of its agents and
writes one JSON file in ``DIR`` (:mod:`tokengate.cluster_history`); it prints the file's path
and exits 1 if an agent did not answer (the file then holds the others' records).
``guards report`` prints the seed's Guard House report for the cluster (the gateway's
``Guards`` view, summed over nodes).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tokengate.cli_cluster import client_options
from tokengate.shared.auth import read_token
from tokengate.shared.errors import ConfigurationError


def _addresses(args: argparse.Namespace) -> list[str]:
    from tokengate.shared.channel import addresses
    from tokengate.shared.client_config import ClientConfig

    return addresses(ClientConfig.from_env(address=args.gateway).address)


def _client(args: argparse.Namespace, address: str) -> Any:
    from tokengate.shared.client import open_client

    token = read_token(None, args.token_file) or None if args.token_file else None
    return open_client(address, token=token, connect_timeout=args.timeout)


def cmd_history(args: argparse.Namespace) -> int:
    """Every gateway given is asked (each serves the agents linked to it)."""
    from tokengate.cluster_history import build_document, missing_nodes, write_document

    if args.limit < 0:
        raise ConfigurationError(f"--limit {args.limit}: give a count, 0 for all")
    replies = []
    for address in _addresses(args):
        client = _client(args, address)
        try:
            replies.append(client.history(args.node or "", args.limit))
        finally:
            client.close()
    document = build_document(replies)
    path = write_document(document, args.out)
    print(path)
    for node in document["nodes"]:
        state = (f"{node['count']} records ({node['total_recorded']} recorded, keeps "
                 f"{node['capacity']})" if node["answered"] else f"no records: {node['message']}")
        print(f"  {node['node']}: {state}")
    if not document["nodes"]:
        print("  no agent is connected", file=sys.stderr)
    missing = missing_nodes(document)
    if missing:
        print(f"tokengate: no history from {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


def cmd_guards_report(args: argparse.Namespace) -> int:
    from tokengate.guard_report import cluster_report
    from tokengate.shared.status import describe

    client = _client(args, _addresses(args)[0])
    try:
        reply, nodes = client.guards(), describe(client.status())["nodes"]
    finally:
        client.close()
    modes = {node["name"]: node["snapshot"].get("guard_house", {}).get("mode", "unknown")
             for node in nodes if node.get("snapshot")}
    print(cluster_report(reply, modes))
    return 0


def add_history_commands(commands: Any) -> None:
    """Add ``history`` and ``guards report`` to ``tokengate``'s parser."""
    history = commands.add_parser("history", help="write every agent's execution history "
                                  "to one JSON file (needs operator rights)")
    client_options(history)
    history.add_argument("--out", default="dumps", help="folder for the file (default dumps/)")
    history.add_argument("--node", help="only this agent")
    history.add_argument("--limit", type=int, default=0,
                         help="newest N records of each agent (default: all each keeps)")
    history.set_defaults(handler=cmd_history)

    guards = commands.add_parser("guards", help="the cluster's Guard House")
    actions = guards.add_subparsers(dest="guards_command", required=True)
    report = actions.add_parser("report", help="the seed's Guard House report, by health class")
    client_options(report)
    report.set_defaults(handler=cmd_guards_report)
