"""The yardstick: a bare gRPC bidirectional-stream echo between two Python processes.

    python -m benchmarks.echo --rounds 300 --repeats 3 --out echo.json

Starts ``python -m benchmarks.echo --serve`` (a threaded ``grpc.server`` whose one method
streams every message straight back), opens one stream to it from this process, and times
``rounds`` sequential round trips of one 32-byte message, after a warm-up, ``repeats`` times.
The client feeds its stream from a queue, as the TokenGate client does, so the figure holds
the same thread hand-offs a token's hop has, and nothing else. p50/p99 are the median of the
rounds' p50/p99.
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from tokengate.shared.redis_server import child_env, die_with_parent

from tokengate.report import percentile

METHOD = "/tokengate.bench.Echo/Stream"
MESSAGE = b"x" * 32


def _echo(requests: Any, context: Any) -> Any:
    yield from requests


def serve() -> int:
    """Serve on a free loopback port; print it; stop when stdin closes."""
    die_with_parent()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler(
        "tokengate.bench.Echo", {"Stream": grpc.stream_stream_rpc_method_handler(_echo)})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdin.read()
    server.stop(1)
    return 0


def _round(send: queue.SimpleQueue[bytes | None], replies: Any, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        began = time.perf_counter()
        send.put(MESSAGE)
        next(replies)
        samples.append(time.perf_counter() - began)
    return sorted(samples)


def measure(rounds: int, repeats: int) -> dict[str, Any]:
    server = subprocess.Popen([sys.executable, "-m", "benchmarks.echo", "--serve"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=child_env())
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        send: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        replies = channel.stream_stream(METHOD)(iter(send.get, None))
        _round(send, replies, max(50, rounds))  # warm-up
        results = [_round(send, replies, rounds) for _ in range(repeats)]
        send.put(None)
        channel.close()
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(10)
    return {"status": "ok", "round_trips": rounds, "repeats": repeats,
            "p50_ms": statistics.median(percentile(r, 0.5) for r in results) * 1e3,
            "p99_ms": statistics.median(percentile(r, 0.99) for r in results) * 1e3,
            "grpc": grpc.__version__}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="write the JSON here (default: stdout)")
    args = parser.parse_args(argv)
    if args.serve:
        return serve()
    result = json.dumps(measure(args.rounds, args.repeats), indent=1)
    if args.out:
        Path(args.out).write_text(result, encoding="utf-8")
    else:
        print(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
