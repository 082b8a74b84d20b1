"""What the run was measured on: CPU model, cores, memory, Python, OS, package versions."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

PACKAGES = ("tokengate", "grpcio", "redis", "psutil", "msgpack", "dask", "distributed", "ray",
            "celery", "kombu", "dramatiq", "matplotlib", "py-spy")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def redis_server_version(binary: str) -> str:
    import subprocess

    try:
        text = subprocess.run([binary, "--version"], capture_output=True, text=True,
                              timeout=10).stdout
    except OSError:
        return "unknown"
    return next((p.split("=", 1)[1] for p in text.split() if p.startswith("v=")), text.strip())


def describe(redis_binary: str | None = None) -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "cpu_model": cpu_model(),
        "logical_cpus": psutil.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "allowed_cpus": sorted(os.sched_getaffinity(0)),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": f"{platform.system()} {platform.release()}",
        "distribution": _distribution(),
        "load_average_at_start": [round(x, 2) for x in load],
        "redis_server": redis_server_version(redis_binary) if redis_binary else "",
        "packages": versions(),
    }


def _distribution() -> str:
    try:
        info = platform.freedesktop_os_release()
    except OSError:
        return ""
    return info.get("PRETTY_NAME", "")
