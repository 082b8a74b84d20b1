"""CPU time and memory of every process of a system under test.

A :class:`ProcessSet` has named roots (this client, Redis, a gateway, a worker the harness
started...) and covers each root's descendants too, found afresh at every reading (Ray and
Dask start their own). CPU is user + system time, plus the time of children already reaped
(``children_user``/``children_system``), so a process that exits mid-run still counts.
A process that appears during a measurement counts from zero.

Owner: the thread that calls ``cpu()``/``rss()``; :class:`RssSampler` runs one thread of its
own and its ``_peaks`` are read only after ``stop()`` joined it.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator

import psutil

MIB = 2**20


class ProcessSet:
    """Named roots and their descendants."""

    def __init__(self, roots: dict[str, int] | None = None) -> None:
        self.roots: dict[str, int] = dict(roots or {})

    def add(self, name: str, pid: int) -> None:
        self.roots[name] = pid

    def members(self) -> Iterator[tuple[str, psutil.Process]]:
        """(label, process) for every live process. A process belongs to its nearest root
        (the gateway the client started is the gateway's, not the client's); descendants are
        labelled ``<root>/<process name>``."""
        families: dict[str, list[psutil.Process]] = {}
        for name, pid in self.roots.items():
            try:
                root = psutil.Process(pid)
                families[name] = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
        owner: dict[int, str] = {}
        for name in sorted(families, key=lambda n: -len(families[n])):
            for proc in families[name]:
                owner[proc.pid] = name  # smaller families (nearer roots) overwrite
        for name, family in families.items():
            for proc in family:
                if owner.get(proc.pid) != name:
                    continue
                owner.pop(proc.pid)
                yield (name if proc.pid == self.roots[name] else f"{name}/{_name(proc)}"), proc

    def cpu(self) -> dict[int, tuple[str, float]]:
        """pid -> (label, CPU seconds so far)."""
        out = {}
        for label, proc in self.members():
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue
            out[proc.pid] = (label, t.user + t.system + t.children_user + t.children_system)
        return out

    def rss(self) -> dict[int, tuple[str, int]]:
        out = {}
        for label, proc in self.members():
            try:
                out[proc.pid] = (label, proc.memory_info().rss)
            except psutil.Error:
                continue
        return out


def _name(proc: psutil.Process) -> str:
    try:
        return proc.name()
    except psutil.Error:
        return str(proc.pid)


def cpu_delta(before: dict[int, tuple[str, float]],
              after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds spent between two readings, summed by label (processes that vanished in
    between are lost unless their parent reaped them)."""
    spent: dict[str, float] = defaultdict(float)
    for pid, (label, seconds) in after.items():
        base = before.get(pid, (label, 0.0))[1]
        spent[label] += max(0.0, seconds - base)
    return dict(spent)


def group_labels(per_label: dict[str, float], *, depth: int = 1) -> dict[str, float]:
    """Fold labels by their first ``depth`` parts: ``depth=1`` gives one entry per root;
    ``depth=2`` keeps the processes a root started, summed by name (``client/raylet``)."""
    out: dict[str, float] = defaultdict(float)
    for label, value in per_label.items():
        out["/".join(label.split("/")[:depth])] += value
    return dict(out)


class RssSampler:
    """Samples the RSS of a process set every ``interval`` seconds on a thread of its own."""

    def __init__(self, procs: ProcessSet, interval: float = 0.1) -> None:
        self.procs = procs
        self.interval = interval
        self._stop = threading.Event()
        self._peaks: dict[str, int] = {}
        self._peak_total = 0
        self._samples = 0
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)

    def start(self) -> RssSampler:
        self._sample()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        by_label: dict[str, int] = defaultdict(int)
        for label, rss in self.procs.rss().values():
            by_label[label.split("/")[0]] += rss
        for label, rss in by_label.items():
            self._peaks[label] = max(self._peaks.get(label, 0), rss)
        self._peak_total = max(self._peak_total, sum(by_label.values()))
        self._samples += 1

    def stop(self) -> dict[str, float]:
        """Stop sampling; peak MiB per root (descendants folded in) and ``total``, the peak
        of the sum over every process at one instant."""
        self._stop.set()
        self._thread.join()
        self._sample()
        peaks = {label: rss / MIB for label, rss in sorted(self._peaks.items())}
        peaks["total"] = self._peak_total / MIB
        return peaks

    @property
    def samples(self) -> int:
        return self._samples


def rss_now(procs: ProcessSet) -> dict[str, float]:
    """MiB per root (descendants folded in) and ``total``, read once."""
    by_label: dict[str, float] = defaultdict(float)
    for label, rss in procs.rss().values():
        by_label[label.split("/")[0]] += rss / MIB
    out = dict(sorted(by_label.items()))
    out["total"] = sum(by_label.values())
    return out
