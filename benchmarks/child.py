"""One system's part of a harness run, in a process of its own.

    python -m benchmarks.child SPEC.json OUT.json

The harness writes the spec (system, workloads, sizes, the run's Redis, CPU work per W3 task)
and starts this module in a new process group; it starts the system, runs each workload,
and rewrites OUT.json after each one, so a crash loses only the workload it was in. A
workload that raises is reported ``error: ...`` and the next one runs. SIGTERM stops the
system (``finally``) before the process exits.

Separate processes keep the systems apart: one's threads, imports and leftovers never load
another's figures, and one that crashes cannot take the run with it.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

import redis

from benchmarks import suite
from benchmarks.sizes import Sizes, from_dict
from benchmarks.systems import Context, System, build
from benchmarks.table import summary

WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6")


def run_workload(name: str, system: System, sizes: Sizes, spec: dict[str, Any],
                 rds: redis.Redis | None) -> dict[str, Any]:
    if name == "W1":
        return suite.w1_throughput(system, sizes, rds)
    if name == "W2":
        return suite.w2_round_trip(system, sizes, rds)
    if name == "W3":
        return suite.w3_cpu_bound(system, sizes, int(spec["spin_iterations"]))
    if name == "W4":
        return suite.w4_sleeps(system, sizes)
    if name == "W5":
        return suite.w5_mixed(system, sizes)
    if name == "W6":
        return suite.w6_flood(system, sizes)
    raise ValueError(f"unknown workload {name!r}")


def progress(system: str, workload: str, text: str) -> None:
    print(f"[bench] {system:<19} {workload:<3} {text}", file=sys.stderr, flush=True)


def _write(out: Path, result: dict[str, Any]) -> None:
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    tmp.replace(out)


def _error(exc: BaseException) -> str:
    return f"error: {type(exc).__name__}: {exc}".splitlines()[0][:300]


def _run_all(system: System, spec: dict[str, Any], result: dict[str, Any], out: Path) -> None:
    sizes = from_dict(spec["sizes"])
    rds = redis.Redis.from_url(spec["context"]["redis_url"]) if system.uses_redis else None
    for workload in spec["workloads"]:
        began = time.perf_counter()
        try:
            data = {"status": "ok", **run_workload(workload, system, sizes, spec, rds)}
        except Exception as exc:  # reported, and the next workload runs
            logging.getLogger(__name__).debug("%s %s failed", system.name, workload,
                                              exc_info=True)
            data = {"status": _error(exc)}
        data["seconds"] = time.perf_counter() - began
        result["workloads"][workload] = data
        progress(system.name, workload, f"{summary(workload, data)}  ({data['seconds']:.1f} s)")
        _write(out, result)


def run(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    name = spec["system"]
    result: dict[str, Any] = {"status": "ok", "workloads": {}}
    system = build(name, Context(**spec["context"]))
    try:
        began = time.perf_counter()
        system.start()
        result.update(version=system.version(), setup=system.setup(), slots=system.slots,
                      start_s=time.perf_counter() - began)
        progress(name, "-", f"started in {result['start_s']:.1f} s ({result['version']})")
        _write(out, result)
        _run_all(system, spec, result, out)
    except Exception as exc:  # the system itself failed: reported, the harness goes on
        result["status"] = _error(exc)
        progress(name, "-", result["status"])
    finally:
        _write(out, result)
        try:
            system.stop()
        except Exception as exc:
            progress(name, "-", f"stop failed: {_error(exc)}")
    _write(out, result)
    return result


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    spec_path, out_path = (argv or sys.argv[1:])[:2]
    signal.signal(signal.SIGTERM, _terminate)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    run(spec, Path(out_path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
