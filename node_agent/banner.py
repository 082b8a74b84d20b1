"""The start-up banner, in the seed's spirit: what this host is and how its scheduler is laid out.

Pure: :func:`banner_lines` turns plain facts (:class:`BannerFacts`) into lines of text;
:func:`facts_of` reads them from a scheduler and its guards' settings. The runtime logs the
lines at INFO when it starts (an agent, an embedded coordinator, ``tokengate demo``); the CLI
prints them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

RULE = "=" * 70


@dataclass(frozen=True, slots=True, kw_only=True)
class BannerFacts:
    node: str
    topology: Mapping[str, Any]          # Topology.describe()
    cores: int                           # cores the scheduler uses
    workers_per_core: int
    mailbox_capacity: int
    chains: Mapping[str, tuple[int, ...]]  # weight -> its cores, preferred first
    overflow_budget_bytes: int           # 0: no overflow guard
    auto_block: bool
    failure_threshold: float
    min_attempts: int


def _topology_lines(topology: Mapping[str, Any]) -> list[str]:
    recommended = topology.get("recommended_workers", {})
    return [
        "CPU topology:",
        f"  Physical cores: {topology.get('physical_cores')}",
        f"  Logical cores: {topology.get('logical_cores')}",
        f"  SMT enabled: {topology.get('smt_enabled')} (ratio {topology.get('smt_ratio')}x)",
        f"  Usable cores: {topology.get('usable_cores')} "
        f"(CPUs allowed: {len(topology.get('allowed_cpus', ()))})",
        "Recommended worker counts:",
        f"  Light workload (I/O bound): {recommended.get('light')}",
        f"  Medium workload (mixed): {recommended.get('medium')}",
        f"  Heavy workload (CPU bound): {recommended.get('heavy')}",
    ]


def _guard_lines(facts: BannerFacts) -> list[str]:
    budget = (f"{facts.overflow_budget_bytes / 2**20:.0f} MB" if facts.overflow_budget_bytes
              else "off (no memory budget for queued work)")
    mode = (f"auto-block (refuses a function failing {100 * facts.failure_threshold:.0f}% "
            f"of at least {facts.min_attempts} calls)" if facts.auto_block
            else "passive monitoring (auto-blocking DISABLED, observation only)")
    return [f"Overflow guard budget: {budget}", f"Guard House: {mode}"]


def _layout_lines(facts: BannerFacts) -> list[str]:
    wpc = facts.workers_per_core
    lines = [f"Core affinity policy for {facts.cores} cores:"]
    for weight, chain in facts.chains.items():
        lines.append(f"  {weight.capitalize()}: {list(chain)} (preferred: {chain[0]})")
    lines += [f"Core-pinned mailboxes: {facts.cores} cores x {wpc} workers = "
              f"{facts.cores * wpc} workers, {facts.mailbox_capacity} tokens each",
              "Core-worker mapping:"]
    lines += [f"  Core {core}: Workers {list(range((core - 1) * wpc, core * wpc))}"
              for core in range(1, facts.cores + 1)]
    return lines


def banner_lines(facts: BannerFacts) -> list[str]:
    return [RULE, f"TokenGate node {facts.node}", RULE, *_topology_lines(facts.topology),
            *_guard_lines(facts), *_layout_lines(facts), RULE]


def facts_of(scheduler: Any, guards_config: Any) -> BannerFacts:
    """The facts of a started or built :class:`LocalScheduler` and its ``GuardsConfig``."""
    return BannerFacts(
        node=scheduler.config.node_name, topology=scheduler.topology.describe(),
        cores=scheduler.num_cores, workers_per_core=scheduler.config.workers_per_core,
        mailbox_capacity=scheduler.config.mailbox_capacity,
        chains={weight.value: pref.allowed_cores for weight, pref in scheduler.policy.items()},
        overflow_budget_bytes=guards_config.memory_budget_bytes or 0,
        auto_block=guards_config.auto_block, failure_threshold=guards_config.failure_threshold,
        min_attempts=guards_config.min_attempts)
