"""The ``tokengate`` command. The only module (with benchmarks) that prints."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from types import ModuleType


def _cmd_demo(args: argparse.Namespace) -> int:
    from tokengate.demo import run_demo, summary_lines

    def show(banner: list[str]) -> None:
        if not args.verbose:  # with -v it is logged already
            print("\n".join(banner), flush=True)

    result = run_demo(seconds=args.seconds, wave_size=args.wave_size, on_start=show)
    print("\n".join([*summary_lines(result), result.guard_report]))
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


def _cmd_bench(args: argparse.Namespace) -> int:
    """Run the benchmark harness of the source checkout this package was installed from."""
    harness = _find_harness()
    argv = [flag for flag, on in (("--quick", args.quick), ("--smoke", args.smoke),
                                  ("--no-report", args.no_report)) if on]
    for flag, value in (("--only", args.only), ("--workloads", args.workloads),
                        ("--json", args.json), ("--report", args.report)):
        if value:
            argv += [flag, value]
    return int(harness.main(argv))


def _find_harness() -> ModuleType:
    """``benchmarks/`` is not installed with the package: it is found beside the
    ``tokengate`` package of a source checkout (an editable install), or not at all."""
    import importlib
    from pathlib import Path

    from tokengate.shared.errors import ConfigurationError

    root = Path(__file__).resolve().parent.parent
    if not (root / "benchmarks" / "harness.py").is_file():
        raise ConfigurationError(
            f"tokengate bench needs the benchmarks/ folder of a source checkout beside the "
            f"package (looked in {root}); clone the repository, pip install -e '.[bench]', "
            f"and run it there (or python -m benchmarks)")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    harness = importlib.import_module("benchmarks.harness")
    if Path(harness.__file__ or "").resolve().parent != root / "benchmarks":
        raise ConfigurationError(f"another 'benchmarks' package shadows TokenGate's: "
                                 f"{harness.__file__}")
    return harness


def _add_bench(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser("bench", help="benchmarks against the peers installed, one "
                                "run (a source checkout's benchmarks/; python -m benchmarks)")
    size = bench.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller sizes (under 3 minutes)")
    size.add_argument("--smoke", action="store_true", help="tiny sizes (figures meaningless)")
    bench.add_argument("--only", help="systems, comma-separated (python -m benchmarks --help "
                       "lists them)")
    bench.add_argument("--workloads", help="W1..W6, comma-separated")
    bench.add_argument("--json", help="results file (default benchmarks/results/latest.json)")
    bench.add_argument("--report", help="Markdown report (default docs/benchmarks.md)")
    bench.add_argument("--no-report", action="store_true", help="no report or charts")
    bench.set_defaults(handler=_cmd_bench)


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
    _add_bench(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from tokengate.cli_run import run

    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
