"""Start and stop a peer's worker process (Celery, Dramatiq) for the harness."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tokengate.shared.redis_server import child_env

from benchmarks.systems.base import ROOT


def spawn(tool: str, args: list[str], env: dict[str, str], logdir: str,
          name: str) -> subprocess.Popen[bytes]:
    """``python -m benchmarks.launch TOOL ARGS`` with its output in ``logdir/name.log``."""
    path = Path(logdir or ".") / f"{name}.log"
    full_env = dict(os.environ, **env)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT),
                                                          full_env.get("PYTHONPATH")]))
    with open(path, "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "benchmarks.launch", tool, *args],
                                env=child_env(full_env), stdout=log, stderr=subprocess.STDOUT,
                                cwd=str(ROOT))


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 15.0) -> None:
    """SIGTERM (a warm shutdown), then SIGKILL if it takes longer than ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
