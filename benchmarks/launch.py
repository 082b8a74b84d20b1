"""Run a peer's worker command as a child that stops when the harness dies.

    python -m benchmarks.launch celery -A benchmarks.celery_app worker ...
    python -m benchmarks.launch dramatiq benchmarks.dramatiq_actors ...

The harness starts peers' workers through this module so that each asks the kernel for
SIGTERM when its parent goes (``die_with_parent``), even if the harness is killed outright.
"""

from __future__ import annotations

import sys

from tokengate.shared.redis_server import die_with_parent


def main() -> int:
    die_with_parent()
    tool, *args = sys.argv[1:]
    sys.argv = [tool, *args]
    if tool == "celery":
        from celery.__main__ import main as celery_main

        celery_main()
        return 0
    if tool == "dramatiq":
        from dramatiq.cli import main as dramatiq_main

        return int(dramatiq_main() or 0)
    raise SystemExit(f"unknown worker command {tool!r}")


if __name__ == "__main__":
    raise SystemExit(main())
