"""Settings of the guards; every default is documented here and only here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tokengate.shared import envconfig
from tokengate.shared.envconfig import setting
from tokengate.shared.errors import ConfigurationError


@dataclass(frozen=True, kw_only=True)
class GuardsConfig:
    """What the guards do (``docs/configuration.md`` lists the variables, ``docs/guards.md``
    explains each guard).

    The Guard House is passive by default: it observes and reports and never refuses; with
    ``auto_block`` a function whose failure rate reaches ``failure_threshold`` after
    ``min_attempts`` finished attempts is refused at submit until an operator re-enables it.
    Spike detection and convergence are off unless asked for: a call is never held back, and
    a core's pattern never narrowed, by default.
    """

    auto_block: bool = setting(False, doc="Guard House: refuse a function over its failure "
                               "threshold until re-enabled (default: observe only)")
    failure_threshold: float = setting(0.5, doc="Guard House: failure rate that blocks, in "
                                       "(0, 1]")
    min_attempts: int = setting(10, doc="Guard House: finished attempts before it may block")
    spike_detection: bool = setting(False, doc="quarantine calls whose predicted cost is far "
                                    "above their function's history")
    spike_threshold: float = setting(3.0, doc="spike: deviation above the mean that "
                                     "quarantines (3.0 = 300 %)")
    spike_warmup: int = setting(20, doc="spike: calls of a function before it is judged")
    quarantine_dir: str = setting("quarantine", doc="where quarantined calls are kept")
    retries: bool = setting(True, doc="retry transient errors (OSError, RetryableError) of "
                            "idempotent functions by their complexity level's policy")
    memory_budget_bytes: int = setting(75 * 1024 * 1024, doc="overflow guard: bytes queued "
                                       "tokens' arguments may hold (the seed's 75 MB; 0: off)")
    convergence: bool = setting(False, doc="adjust each core's active mailboxes to its "
                                "pressure")
    convergence_interval: float = setting(1.0, doc="convergence: seconds between looks")
    convergence_min_active: int = setting(1, doc="convergence: fewest active mailboxes a core "
                                          "keeps")
    history_size: int = setting(1000, doc="execution records kept in the ring buffer")
    dump_dir: str = setting("dumps", doc="where history dumps go")
    metrics_port: int | None = setting(None, doc="serve the scheduler's Prometheus /metrics "
                                       "here (0: any free port; none: not served)")
    metrics_addr: str = setting("127.0.0.1", doc="address the metrics server binds")

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
