"""Settings of the local scheduler; every default is documented here and only here."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from tokengate.shared import envconfig
from tokengate.shared.errors import ConfigurationError


@dataclass(frozen=True, kw_only=True)
class SchedulerConfig:
    """How one host's scheduler is laid out.

    - ``cores``: scheduler cores; None means the detected usable cores (allowed CPUs capped
      by the cgroup quota).
    - ``workers_per_core``: worker threads per core, one mailbox each (seed: 4).
    - ``mailbox_capacity``: tokens one mailbox may hold (seed: 120).
    - ``submit_timeout``: seconds a submission may wait for room (backpressure or a full drain
      hold) before it fails with ``AdmissionTimeout``; None waits as long as it takes.
    - ``hold_capacity``: submissions held while draining; None means the total mailbox
      capacity (``cores * workers_per_core * mailbox_capacity``).
    - ``backlog_capacity``: tokens ``enqueue`` (the agent's link) may keep waiting for mailbox
      room; beyond it a token fails with ``AdmissionTimeout`` ("agent over capacity"). None
      means the total mailbox capacity.
    - ``processes_per_core``: worker processes per core for ``execution: process`` tasks.
    - ``pin_threads``: pin each worker thread to its core's CPU (Linux).
    - ``stop_timeout``: seconds ``stop()`` waits for admitted work before failing what is left.
    - ``node_name``: the name this scheduler reports; the host name by default.
    """

    cores: int | None = None
    workers_per_core: int = 4
    mailbox_capacity: int = 120
    submit_timeout: float | None = 30.0
    hold_capacity: int | None = None
    backlog_capacity: int | None = None
    processes_per_core: int = 1
    pin_threads: bool = True
    stop_timeout: float = 30.0
    node_name: str = field(default_factory=socket.gethostname)

    def __post_init__(self) -> None:
        for name in ("workers_per_core", "mailbox_capacity", "processes_per_core"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.cores is not None and self.cores < 1:
            raise ConfigurationError(f"cores must be at least 1, got {self.cores}")
        if self.backlog_capacity is not None and self.backlog_capacity < 0:
            raise ConfigurationError(f"backlog_capacity must be >= 0 or None, got "
                                     f"{self.backlog_capacity}")
        if self.submit_timeout is not None and self.submit_timeout < 0:
            raise ConfigurationError("submit_timeout must be >= 0 or None")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> SchedulerConfig:
        """Read ``TOKENGATE_<FIELD>`` variables, then apply ``overrides``."""
        return envconfig.from_env(cls, environ, **overrides)
