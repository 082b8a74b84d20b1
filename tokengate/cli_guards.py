"""``tokengate quarantine list|show|replay|drop``: the quarantine from the command line.

``replay`` runs the call in an embedded coordinator in this process. It imports only the
modules given with ``--include`` (as an agent does), and refuses a record whose function lives
in a module that was not included.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
from typing import Any

from tokengate.node_agent.guards.quarantine import DEFAULT_DIR, QuarantineRecord, QuarantineStore
from tokengate.shared.errors import ConfigurationError, TokenGateError


def _store(args: argparse.Namespace) -> QuarantineStore:
    return QuarantineStore(args.dir)


def _when(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def _cmd_list(args: argparse.Namespace) -> int:
    store = _store(args)
    records = store.list()
    if args.json:
        print(json.dumps([rec.to_json() for rec in records], indent=2))
        return 0
    if not records:
        print(f"no quarantined calls in {store.directory}")
        return 0
    print(f"{len(records)} quarantined call(s) in {store.directory}")
    print(f"{'ID':<36} {'WHEN':<19} {'DEVIATION':>10}  REPLAY  TASK")
    for rec in records:
        replay = "yes" if rec.replayable else "no"
        print(f"{rec.quarantine_id:<36} {_when(rec.timestamp):<19} "
              f"{rec.deviation_percent:>9.1f}%  {replay:<6}  {rec.task}")
    return 0


def _show_lines(rec: QuarantineRecord) -> list[str]:
    lines = [
        f"id:              {rec.quarantine_id}",
        f"task:            {rec.task}",
        f"operation type:  {rec.operation_type}",
        f"quarantined at:  {_when(rec.timestamp)}",
        f"reason:          {rec.reason}",
        f"predicted cost:  {rec.predicted_cost}  (history mean {rec.historical_mean}, "
        f"{rec.deviation_percent:.1f}% above)",
        f"replayable:      {'yes' if rec.replayable else 'no (arguments not storable)'}",
        "args:",
    ]
    lines += [f"  [{i}] {summary}" for i, summary in enumerate(rec.args_summary)] or ["  -"]
    lines.append("kwargs:")
    lines += [f"  {key} = {summary}" for key, summary in rec.kwargs_summary.items()] or ["  -"]
    return lines


def _cmd_show(args: argparse.Namespace) -> int:
    rec = _store(args).load(args.id)
    print(json.dumps(rec.to_json(), indent=2) if args.json else "\n".join(_show_lines(rec)))
    return 0


def _cmd_drop(args: argparse.Namespace) -> int:
    store = _store(args)
    ids = [rec.quarantine_id for rec in store.list()] if args.all else args.ids
    if not ids:
        raise ConfigurationError("name the quarantine ids to drop, or pass --all")
    for quarantine_id in ids:
        store.drop(quarantine_id)
        print(f"dropped {quarantine_id}")
    return 0


def _import_included(modules: list[str], rec: QuarantineRecord) -> None:
    module = rec.task.partition(":")[0]
    if module not in modules:
        raise ConfigurationError(
            f"{rec.quarantine_id} calls {rec.task}; replay imports only the modules you "
            f"include: add --include {module}")
    for name in modules:
        importlib.import_module(name)


def _cmd_replay(args: argparse.Namespace) -> int:
    from tokengate.coordinator import OperationsCoordinator

    rec = _store(args).load(args.id)
    _import_included(args.include, rec)
    with OperationsCoordinator(quarantine_dir=args.dir) as coordinator:
        token = coordinator.replay_quarantined(rec.quarantine_id, drop=not args.keep)
        try:
            result: Any = token.get(timeout=args.timeout)
        except TokenGateError:
            raise
        except Exception as exc:  # the task's own failure: report it, keep the record
            print(f"replay of {rec.quarantine_id} failed: {type(exc).__name__}: {exc}")
            return 1
    print(f"replayed {rec.quarantine_id} as {token.token_id}: {result!r}")
    if not args.keep:
        print(f"dropped {rec.quarantine_id} from {args.dir}")
    return 0


def add_guard_commands(subparsers: Any) -> None:
    """Add ``quarantine`` and its sub-commands to the ``tokengate`` parser."""
    quarantine = subparsers.add_parser("quarantine", help="list, show, replay or drop "
                                       "calls the spike detector quarantined")
    actions = quarantine.add_subparsers(dest="quarantine_command", required=True)

    def action(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help_text)
        parser.add_argument("--dir", default=DEFAULT_DIR,
                            help=f"quarantine directory (default: ./{DEFAULT_DIR})")
        parser.set_defaults(handler=handler)
        return parser

    action("list", _cmd_list, "list quarantined calls").add_argument(
        "--json", action="store_true", help="print the records as JSON")
    show = action("show", _cmd_show, "show one quarantined call")
    show.add_argument("id")
    show.add_argument("--json", action="store_true", help="print the whole record as JSON")
    replay = action("replay", _cmd_replay, "run a quarantined call again, here")
    replay.add_argument("id")
    replay.add_argument("--include", action="append", default=[], metavar="MODULE",
                        help="module to import for the task (repeatable); required")
    replay.add_argument("--keep", action="store_true", help="keep the record after success")
    replay.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
    drop = action("drop", _cmd_drop, "delete quarantined calls")
    drop.add_argument("ids", nargs="*")
    drop.add_argument("--all", action="store_true", help="drop every record")
