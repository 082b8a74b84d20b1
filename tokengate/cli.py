"""The ``tokengate`` command. The only module (with benchmarks) that prints."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _cmd_demo(args: argparse.Namespace) -> int:
    from tokengate.demo import run_demo, summary_lines

    result = run_demo(seconds=args.seconds, wave_size=args.wave_size)
    print("\n".join(summary_lines(result)))
    return 0 if result.failed == 0 else 1


def _cmd_topology(args: argparse.Namespace) -> int:
    from tokengate.node_agent.policy import build_policy
    from tokengate.node_agent.topology import detect

    topology = detect()
    info = topology.describe()
    info["policy"] = {
        weight.value: list(pref.allowed_cores)
        for weight, pref in build_policy(topology.usable_cores).items()
    }
    print(json.dumps(info, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tokengate", description=__doc__)
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log more (-v info, -vv debug)")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run a mixed workload in-process and summarise it")
    demo.add_argument("--seconds", type=float, default=5.0, help="how long to submit waves")
    demo.add_argument("--wave-size", type=int, default=22, help="tokens per wave")
    demo.set_defaults(handler=_cmd_demo)
    topology = commands.add_parser("topology", help="print the detected CPU topology and policy")
    topology.set_defaults(handler=_cmd_topology)
    from tokengate.cli_guards import add_guard_commands

    add_guard_commands(commands)
    from tokengate.cli_cluster import add_cluster_commands

    add_cluster_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from tokengate.cli_run import run

    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
