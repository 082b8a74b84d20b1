"""CPU topology of this host, and the worker counts it recommends.

Detection reads the OS (psutil, ``os.sched_getaffinity``, the cgroup CPU quota); the result
is a frozen :class:`CpuTopology` that the pure scheduling policy takes as plain data.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)

# Workers per usable core by workload (seed: 8 cores -> 32 / 24 / 16).
WORKERS_PER_CORE_LIGHT = 4
WORKERS_PER_CORE_MEDIUM = 3
WORKERS_PER_CORE_HEAVY = 2


@dataclass(frozen=True, slots=True)
class CpuTopology:
    """What this process may run on.

    ``allowed_cpus`` are the OS CPU ids this process may use, sorted; scheduler core ``k``
    (1-based, as in the seed) is ``allowed_cpus[k - 1]``. ``quota_cores`` is the cgroup CPU
    quota in cores, or None when unlimited.
    """

    physical_cores: int
    logical_cores: int
    allowed_cpus: tuple[int, ...]
    quota_cores: float | None = None
    core_count_override: int | None = None

    @property
    def smt_enabled(self) -> bool:
        return self.logical_cores > self.physical_cores

    @property
    def smt_ratio(self) -> float:
        return self.logical_cores / self.physical_cores if self.physical_cores else 1.0

    @property
    def usable_cores(self) -> int:
        """Cores the scheduler lays mailboxes on: allowed CPUs, capped by the cgroup quota."""
        if self.core_count_override is not None:
            return self.core_count_override
        usable = len(self.allowed_cpus)
        if self.quota_cores is not None:
            usable = min(usable, max(1, math.ceil(self.quota_cores)))
        return max(1, usable)

    def cpu_for_core(self, core_id: int) -> int:
        return self.allowed_cpus[(core_id - 1) % len(self.allowed_cpus)]

    def recommended_workers(self) -> dict[str, int]:
        cores = self.usable_cores
        return {
            "light": WORKERS_PER_CORE_LIGHT * cores,
            "medium": WORKERS_PER_CORE_MEDIUM * cores,
            "heavy": WORKERS_PER_CORE_HEAVY * cores,
        }

    def describe(self) -> dict[str, object]:
        return {
            "physical_cores": self.physical_cores,
            "logical_cores": self.logical_cores,
            "smt_enabled": self.smt_enabled,
            "smt_ratio": round(self.smt_ratio, 2),
            "allowed_cpus": list(self.allowed_cpus),
            "quota_cores": self.quota_cores,
            "usable_cores": self.usable_cores,
            "recommended_workers": self.recommended_workers(),
        }


def parse_cgroup_v2_quota(text: str) -> float | None:
    """``cpu.max`` holds ``"<quota> <period>"`` or ``"max <period>"``."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    quota, period = int(parts[0]), int(parts[1])
    return quota / period if quota > 0 and period > 0 else None


def parse_cgroup_v1_quota(quota_text: str, period_text: str) -> float | None:
    quota, period = int(quota_text.strip()), int(period_text.strip())
    return quota / period if quota > 0 and period > 0 else None


def read_cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in cores, or None if unlimited or unknown."""
    try:
        v2 = root / "cpu.max"
        if v2.exists():
            return parse_cgroup_v2_quota(v2.read_text())
        v1 = root / "cpu" / "cpu.cfs_quota_us"
        if v1.exists():
            period = (v1.parent / "cpu.cfs_period_us").read_text()
            return parse_cgroup_v1_quota(v1.read_text(), period)
    except (OSError, ValueError):
        logger.debug("could not read the cgroup CPU quota", exc_info=True)
    return None


def allowed_cpus() -> tuple[int, ...]:
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(os.cpu_count() or 1))


def detect() -> CpuTopology:
    logical = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or logical
    topology = CpuTopology(
        physical_cores=physical,
        logical_cores=logical,
        allowed_cpus=allowed_cpus(),
        quota_cores=read_cgroup_quota(),
    )
    logger.info("CPU topology: %s", topology.describe())
    return topology


def for_cores(cores: int) -> CpuTopology:
    """This host's topology, with the scheduler told to lay out ``cores`` cores.

    For an operator (or a test) that wants another core count than the detected one:
    scheduler cores beyond the allowed CPUs wrap around them (see ``cpu_for_core``).
    """
    if cores < 1:
        raise ValueError(f"cores must be at least 1, got {cores}")
    detected = detect()
    return CpuTopology(
        physical_cores=detected.physical_cores,
        logical_cores=detected.logical_cores,
        allowed_cpus=detected.allowed_cpus,
        quota_cores=detected.quota_cores,
        core_count_override=cores,
    )
