"""Running a parsed command: logging set up once, a TokenGateError exits 2 with its message.

Both entry points use it: ``tokengate`` (:mod:`tokengate.cli`) and
``python -m tokengate.cli_cluster`` (how ``tokengate up`` starts its children).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from tokengate.shared.errors import TokenGateError


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args) or 0)
    except TokenGateError as exc:
        print(f"tokengate: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
