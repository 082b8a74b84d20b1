"""Read py-spy's collapsed stacks (``--format raw --threads``) and say where samples go.

    python -m benchmarks.profile_summary DIR/roundtrip-gateway.txt [--top 12]

For each thread: its samples, and the innermost Python frame (with the native leaf below it,
when ``--native``) that each sample was in, most frequent first. With ``--idle`` every thread
is sampled at every tick, so a thread's samples are its wall time and the frames show what it
waits in; a leaf in ``epoll_wait``/``pthread_cond_*``/``sem_*``/``recv`` is waiting, anything
else is CPU.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from pathlib import Path

WAITING = re.compile(r"epoll_wait|epoll_pwait|poll\b|select|pthread_cond|sem_|futex|"
                     r"sock_recv|recv\b|nanosleep|clock_nanosleep|take_gil|PyThread_acquire|"
                     r"lock_PyThread|acquire_timed|0x[0-9a-f]+ \(libc")


def _python_frame(frames: list[str]) -> str:
    for frame in reversed(frames):
        if re.search(r"\(.*\.py:\d+\)", frame):
            return frame
    return frames[-1] if frames else "?"


def parse(path: Path) -> dict[str, Counter[str]]:
    """thread name -> Counter of 'python frame | leaf' -> samples."""
    threads: dict[str, Counter[str]] = defaultdict(Counter)
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        head, *frames = stack.split(";")
        name = head.split(": ", 1)[-1] if ": " in head else head
        name = re.sub(r"\d+$", "N", name)
        leaf = frames[-1] if frames else "?"
        kind = "wait" if WAITING.search(leaf) or WAITING.search(_python_frame(frames)) \
            else "cpu"
        threads[name][f"[{kind}] {_python_frame(frames)} | {leaf}"] += int(count)
    return threads


def summary(path: Path, top: int = 12) -> str:
    threads = parse(path)
    total = sum(sum(c.values()) for c in threads.values())
    lines = [f"{path.name}: {total} samples"]
    for name, counter in sorted(threads.items(), key=lambda kv: -sum(kv[1].values())):
        n = sum(counter.values())
        cpu = sum(v for k, v in counter.items() if k.startswith("[cpu]"))
        lines.append(f"  thread {name}: {n} samples, {cpu} not waiting")
        lines += [f"    {v:6d}  {k}" for k, v in counter.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args(argv)
    for path in args.files:
        print(summary(path, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
