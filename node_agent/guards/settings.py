"""Settings of the guards; every default is documented here and only here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tokengate.shared import envconfig
from tokengate.shared.errors import ConfigurationError


@dataclass(frozen=True, kw_only=True)
class GuardsConfig:
    """What the guards do. Read from ``TOKENGATE_<FIELD>`` by :meth:`from_env`.

    Guard House
    - ``auto_block`` (False): passive by default - observe and report, never refuse. When True,
      a function whose failure rate reaches ``failure_threshold`` (0.5) after ``min_attempts``
      (10) finished attempts is refused at submit until an operator re-enables it.

    Spike detector and quarantine
    - ``spike_detection`` (False): judge each call's predicted cost against its function's
      history; a call more than ``spike_threshold`` (3.0 = 300 %) above the mean, after
      ``spike_warmup`` (20) calls, is quarantined to ``quarantine_dir`` ("quarantine") instead
      of running. Off by default: a call is never held back unless you ask for it.

    Retries
    - ``retries`` (True): failed attempts of idempotent functions whose error is transient
      (``OSError``, ``RetryableError``) are retried with the policy of the function's complexity
      level (see :mod:`node_agent.guards.retry`) or its own ``retries=`` option.

    Overflow guard
    - ``memory_budget_bytes`` (75 MB, the seed's): bytes that queued tokens and their arguments
      may hold; over it, submission waits. 0 turns the guard off.

    Convergence
    - ``convergence`` (False): adjust each core's active mailboxes every
      ``convergence_interval`` (1.0 s) between ``convergence_min_active`` (1) and the workers
      per core. Off by default: narrowing a core's pattern costs burst throughput until the next
      look widens it again; turn it on where pressure changes slowly.

    Observability
    - ``history_size`` (1000): execution records kept in the ring buffer.
    - ``dump_dir`` ("dumps"): where history dumps go.
    - ``metrics_port`` (None): serve Prometheus ``/metrics`` on this port (0 picks a free one);
      None serves nothing (the metrics are still kept and readable in-process).
    - ``metrics_addr`` ("127.0.0.1"): address the metrics server binds.
    """

    auto_block: bool = False
    failure_threshold: float = 0.5
    min_attempts: int = 10
    spike_detection: bool = False
    spike_threshold: float = 3.0
    spike_warmup: int = 20
    quarantine_dir: str = "quarantine"
    retries: bool = True
    memory_budget_bytes: int = 75 * 1024 * 1024
    convergence: bool = False
    convergence_interval: float = 1.0
    convergence_min_active: int = 1
    history_size: int = 1000
    dump_dir: str = "dumps"
    metrics_port: int | None = None
    metrics_addr: str = "127.0.0.1"

    def __post_init__(self) -> None:
        if not 0.0 < self.failure_threshold <= 1.0:
            raise ConfigurationError("failure_threshold must be in (0, 1]")
        if self.min_attempts < 1 or self.spike_warmup < 1 or self.history_size < 1:
            raise ConfigurationError("min_attempts, spike_warmup, history_size must be >= 1")
        if self.spike_threshold <= 0 or self.convergence_interval <= 0:
            raise ConfigurationError("spike_threshold and convergence_interval must be > 0")
        if self.memory_budget_bytes < 0 or self.convergence_min_active < 1:
            raise ConfigurationError("memory_budget_bytes >= 0, convergence_min_active >= 1")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> GuardsConfig:
        """Read ``TOKENGATE_<FIELD>`` variables, then apply ``overrides``."""
        return envconfig.from_env(cls, environ, **overrides)
