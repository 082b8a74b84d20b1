"""``tokengate dashboard`` and ``tokengate top``: the cluster live, in a browser or a terminal.

``add_dashboard_commands(subparsers)`` plugs both into the cluster commands' parser (so
``python -m tokengate.cli_cluster dashboard`` works too, as ``tokengate up`` runs it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import shutil
import sys
import time
from collections.abc import Iterator
from typing import Any

from tokengate._signals import stop_event_on_signals
from tokengate.shared.auth import read_token
from tokengate.shared.channel import TlsConfig


def _tls(args: argparse.Namespace) -> TlsConfig | None:
    if not (args.tls_ca or args.tls_cert):
        return None
    return TlsConfig(ca=args.tls_ca or "", cert=args.tls_cert or "", key=args.tls_key or "")


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gateway", help="HOST:PORT of the gateway (default: "
                        "TOKENGATE_GATEWAY or 127.0.0.1:50051)")
    parser.add_argument("--token-file", help="file holding the cluster token "
                        "(default: TOKENGATE_TOKEN, TOKENGATE_TOKEN_FILE)")
    parser.add_argument("--operator-token-file", help="file holding the gateway's operator "
                        "token, when it has one (default: TOKENGATE_OPERATOR_TOKEN[_FILE])")
    parser.add_argument("--tls-ca", help="CA certificate (PEM) of the gateway")
    parser.add_argument("--tls-cert", help="this client's certificate (PEM)")
    parser.add_argument("--tls-key", help="this client's private key (PEM)")


def _config(args: argparse.Namespace, **extra: Any) -> Any:
    from tokengate.dashboard.config import DashboardConfig, read_password_file

    password = read_password_file(args.password_file) if getattr(
        args, "password_file", None) else None
    operator = read_token(None, args.operator_token_file) if args.operator_token_file \
        else None
    values: dict[str, Any] = {"gateway": args.gateway, "password": password,
                              "token": read_token(None, args.token_file) or None,
                              "operator_token": operator, "tls": _tls(args)}
    return DashboardConfig.from_env(**{**values, **extra})


def cmd_dashboard(args: argparse.Namespace) -> int:
    from tokengate.dashboard.app import Dashboard

    config = _config(args, listen=args.listen, show_payloads=True if args.show_payloads else None,
                     poll_interval=args.poll_interval,
                     allowed_hosts=tuple(args.allowed_host) if args.allowed_host else None)
    stop = stop_event_on_signals()
    dashboard = Dashboard(config).start()
    print(f"tokengate dashboard on {dashboard.url} (gateway {config.gateway})", flush=True)
    try:
        stop.wait()
    finally:
        dashboard.stop()
    return 0


# -- top --------------------------------------------------------------------------------


@contextlib.contextmanager
def _keys() -> Iterator[Any]:
    """stdin in cbreak mode (keys without Enter) when it is a terminal; restored after."""
    if not sys.stdin.isatty():
        yield None
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:
        yield sys.stdin
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _wait_key(stdin: Any, seconds: float) -> str:
    if stdin is None:
        time.sleep(seconds)
        return ""
    ready, _, _ = select.select([stdin], [], [], seconds)
    return os.read(stdin.fileno(), 16).decode(errors="replace") if ready else ""


def cmd_top(args: argparse.Namespace) -> int:
    from tokengate.dashboard.app import client_config
    from tokengate.dashboard.memory import ViewMemory
    from tokengate.dashboard.source import ClusterSource
    from tokengate.dashboard.terminal import render_frame

    config = _config(args, password="-")
    source = ClusterSource(client_config(config))
    memory = ViewMemory(gateway=config.gateway)
    try:
        if args.once:
            view = memory.step(source.read())
            size = shutil.get_terminal_size((120, 60))
            print(render_frame(view, size.columns, 10_000))
            return 0 if view["panels"]["gateway"]["ok"] else 1
        return _top_loop(source, memory, args.interval, render_frame)
    finally:
        source.close()


def _top_loop(source: Any, memory: Any, interval: float, render: Any) -> int:
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    with _keys() as stdin:
        while True:
            started = time.monotonic()
            view = memory.step(source.read(memory.series_since))
            size = shutil.get_terminal_size((120, 40))
            frame = render(view, size.columns, size.lines - 1, color)
            # home, each line over the last frame's (erasing its rest), then erase below
            lines = [*frame.split("\n"), " q quits"]
            sys.stdout.write("\x1b[H" + "\x1b[K\n".join(lines) + "\x1b[K\x1b[J")
            sys.stdout.flush()
            if "q" in _wait_key(stdin, max(0.05, interval - (time.monotonic() - started))):
                sys.stdout.write("\n")
                return 0


def add_dashboard_commands(commands: Any) -> None:
    db = commands.add_parser("dashboard", help="serve the live dashboard (browser)")
    _options(db)
    db.add_argument("--listen", help="HOST:PORT to serve on (default 127.0.0.1:8080; beyond "
                    "loopback the password needs 12+ characters)")
    db.add_argument("--password-file", help="file holding the operators' password (default: "
                    "TOKENGATE_DASHBOARD_PASSWORD)")
    db.add_argument("--show-payloads", action="store_true", help="show task argument "
                    "summaries and launch results (hidden by default)")
    db.add_argument("--poll-interval", type=float, help="seconds between reads of the gateway "
                    "while a page is open (default 1)")
    db.add_argument("--allowed-host", action="append", help="a Host name the page may be "
                    "reached by (repeat; needed behind a proxy or a DNS name)")
    db.set_defaults(handler=cmd_dashboard)

    top = commands.add_parser("top", help="the dashboard's live view in a terminal")
    _options(top)
    top.add_argument("--once", action="store_true", help="print one frame and exit")
    top.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    top.set_defaults(handler=cmd_top)
