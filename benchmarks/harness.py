"""``python -m benchmarks`` / ``tokengate bench``: every workload on every system, one run.

Starts one real redis-server for the run, measures the yardstick (a bare gRPC stream echo),
then runs each system in a process of its own (``benchmarks.child``; its own process group,
stopped on Ctrl-C, error or timeout) and collects the results: a table on stdout, a progress
line per system and workload on stderr, a JSON file, and a Markdown report with charts.
A peer that is not installed is reported "skipped: not installed"; one that fails is
reported "error: ..." and the run goes on.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tokengate.shared.errors import ConfigurationError, TokenGateError
from tokengate.shared.redis_server import RedisServer, child_env

from benchmarks import machine
from benchmarks.child import WORKLOADS
from benchmarks.sizes import PRESETS, Sizes
from benchmarks.systems import SYSTEMS, missing_modules
from benchmarks.table import format_table, table_rows

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "latest.json"
DEFAULT_REPORT = ROOT / "docs" / "benchmarks.md"
PRETEND_ENV = "TOKENGATE_BENCH_PRETEND_MISSING"
SKIPPED = "skipped: not installed"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The harness's options (``tokengate bench`` adds the same ones)."""
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller sizes (under 3 minutes)")
    size.add_argument("--smoke", action="store_true", help="tiny sizes, for tests (figures "
                      "meaningless)")
    parser.add_argument("--only", help="systems to run, comma-separated (default all): "
                        + ", ".join(SYSTEMS))
    parser.add_argument("--workloads", help="workloads to run, comma-separated (default "
                        "all): " + ",".join(WORKLOADS))
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="results file "
                        "(default benchmarks/results/latest.json)")
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT, help="Markdown report "
                        "(default docs/benchmarks.md; charts go to <its dir>/benchmarks/)")
    parser.add_argument("--no-report", action="store_true", help="write no report or charts")
    parser.add_argument("--from-json", type=Path, help="run nothing: print the table and "
                        "write the report again from this results file (a run's JSON)")
    parser.add_argument("--pretend-missing", default=os.environ.get(PRETEND_ENV, ""),
                        help="report these systems as not installed (for tests)")


def _names(text: str | None, valid: tuple[str, ...], what: str) -> list[str]:
    if not text:
        return list(valid)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ConfigurationError(f"unknown {what} {', '.join(unknown)}; valid: "
                                 + ", ".join(valid))
    return [n for n in valid if n in names]


def plan(args: argparse.Namespace) -> dict[str, Any]:
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    return {"mode": mode, "sizes": PRESETS[mode],
            "systems": _names(args.only, tuple(SYSTEMS), "system"),
            "workloads": _names(args.workloads, WORKLOADS, "workload"),
            "pretend_missing": frozenset(_names(args.pretend_missing or None, tuple(SYSTEMS),
                                                "system") if args.pretend_missing else ())}


def calibrate_spin(seconds: float) -> int:
    """Iterations of the W3 body that take about ``seconds`` on this thread (best of 3)."""
    from benchmarks.peer_tasks import spin

    probe = 50_000
    best = min(_timed(lambda: spin(probe)) for _ in range(3))
    return max(1_000, int(probe * seconds / max(best, 1e-6)))


def _timed(work: Any) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


def _env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return child_env(dict(os.environ, PYTHONPATH=path))


def _stop_group(proc: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    """SIGTERM the child's process group, then SIGKILL whatever is left in it."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue


def _sweep_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_child(module: str, args: list[str], timeout: float) -> str:
    """Run ``python -m module args`` in a new process group; '' on success, else why not."""
    proc = subprocess.Popen([sys.executable, "-m", module, *args], env=_env(), cwd=str(ROOT),
                            start_new_session=True)
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _stop_group(proc)
        return f"error: timed out after {timeout:.0f} s"
    except BaseException:
        _stop_group(proc)
        raise
    finally:
        _sweep_group(proc.pid)
    return "" if code == 0 else f"error: its process exited with code {code}"


def yardstick(sizes: Sizes, work: Path) -> dict[str, Any]:
    out = work / "echo.json"
    failed = run_child("benchmarks.echo", ["--rounds", str(sizes.echo_rounds), "--repeats",
                                           str(sizes.repeats), "--out", str(out)], 120.0)
    if failed or not out.exists():
        return {"status": failed or "error: no result"}
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    _progress("grpc-echo", "-", f"p50 {result['p50_ms']:.3f} ms, p99 {result['p99_ms']:.3f} ms")
    return result


def _progress(system: str, workload: str, text: str) -> None:
    print(f"[bench] {system:<19} {workload:<3} {text}", file=sys.stderr, flush=True)


def run_system(name: str, the_plan: dict[str, Any], context: dict[str, Any],
               spin_iterations: int, work: Path) -> dict[str, Any]:
    entry = SYSTEMS[name]
    base = {"label": entry.label, "distributed": entry.distributed}
    missing = missing_modules(name, the_plan["pretend_missing"])
    if missing:
        _progress(name, "-", f"{SKIPPED} ({', '.join(missing)})")
        return {**base, "status": SKIPPED, "missing": missing,
                "workloads": {w: {"status": SKIPPED} for w in the_plan["workloads"]}}
    sizes: Sizes = the_plan["sizes"]
    spec = {"system": name, "workloads": the_plan["workloads"], "sizes": sizes.as_dict(),
            "context": context, "spin_iterations": spin_iterations}
    spec_path, out = work / f"{name}.spec.json", work / f"{name}.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    failed = run_child("benchmarks.child", [str(spec_path), str(out)], sizes.system_timeout)
    result = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    result = {**base, "status": "ok", "workloads": {}, **result}
    if failed and result["status"] == "ok" and not result["workloads"]:
        result["status"] = failed
    for workload in the_plan["workloads"]:
        result["workloads"].setdefault(workload, {"status": failed or "error: no result"})
    return result


def collect(the_plan: dict[str, Any], work: Path) -> dict[str, Any]:
    """Start the run's Redis, measure the yardstick and every system; the results as data."""
    sizes: Sizes = the_plan["sizes"]
    redis_server = RedisServer().start()
    try:
        info = machine.describe(redis_server.binary)
        _progress("harness", "-", f"{the_plan['mode']} run: {len(the_plan['systems'])} systems"
                  f" x {','.join(the_plan['workloads'])} on {info['logical_cpus']} CPUs "
                  f"({info['cpu_model']})")
        spin = calibrate_spin(sizes.w3_seconds)
        echo = yardstick(sizes, work)
        context = {"redis_url": redis_server.url, "redis_pid": redis_server.process.pid,  # type: ignore[union-attr]
                   "slots": 32, "logdir": str(work)}
        systems = {name: run_system(name, the_plan, context, spin, work)
                   for name in the_plan["systems"]}
    finally:
        redis_server.stop()
    return {"machine": info, "yardstick": {"grpc_echo": echo}, "systems": systems,
            "spin_iterations": spin}


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def rerender(args: argparse.Namespace) -> int:
    """The table and report of an earlier run, from its JSON (targets judged again)."""
    from benchmarks.report import write_report
    from benchmarks.targets import evaluate

    results = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
    results["targets"] = evaluate(results)
    print(format_table(table_rows(results["systems"], results["harness"]["workloads"])))
    write_json(args.json, results)
    if not args.no_report:
        write_report(args.report, results)
        print(f"report: {args.report}", flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.from_json:
        return rerender(args)
    the_plan = plan(args)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    started = dt.datetime.now(dt.UTC)
    began = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="tokengate-bench-"))
    results = collect(the_plan, work)
    results["harness"] = {
        "mode": the_plan["mode"], "started": started.isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - began, 1), "argv": sys.argv[1:],
        "sizes": the_plan["sizes"].as_dict(), "workloads": the_plan["workloads"],
        "logs": str(work)}
    from benchmarks.targets import evaluate

    results["targets"] = evaluate(results)
    print(format_table(table_rows(results["systems"], the_plan["workloads"])))
    write_json(args.json, results)
    print(f"\nresults: {args.json}", flush=True)
    if not args.no_report:
        from benchmarks.report import write_report

        write_report(args.report, results)
        print(f"report: {args.report}", flush=True)
    _tidy_logs(work, results)
    return 0


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, sort_keys=False) + "\n", encoding="utf-8")


def _tidy_logs(work: Path, results: dict[str, Any]) -> None:
    """Keep the processes' logs only when something failed, and say where."""
    failed = [name for name, s in results["systems"].items()
              if s["status"].startswith("error")
              or any(w["status"].startswith("error") for w in s["workloads"].values())]
    if failed:
        print(f"logs of the started processes ({', '.join(failed)} failed): {work}")
        return
    import shutil

    shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except TokenGateError as exc:
        print(f"benchmarks: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
