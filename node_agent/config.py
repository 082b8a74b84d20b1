"""Settings of the local scheduler; every default is documented here and only here."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass

from tokengate.shared import envconfig
from tokengate.shared.envconfig import setting
from tokengate.shared.errors import ConfigurationError


@dataclass(frozen=True, kw_only=True)
class SchedulerConfig:
    """How one host's scheduler is laid out (``docs/configuration.md`` lists the variables)."""

    cores: int | None = setting(None, doc="scheduler cores; none: the CPUs this process may "
                                "use, capped by the cgroup quota")
    workers_per_core: int = setting(4, doc="pinned worker threads per core, one bounded "
                                    "mailbox each (the seed's 4)")
    mailbox_capacity: int = setting(120, doc="tokens one mailbox holds (the seed's 120)")
    submit_timeout: float | None = setting(30.0, doc="seconds a submission may wait for room "
                                           "before AdmissionTimeout (none: no limit)")
    hold_capacity: int | None = setting(None, doc="submissions held during a drain; none: "
                                        "the total mailbox capacity")
    backlog_capacity: int | None = setting(
        None, doc="tokens an agent's link may keep waiting for mailbox room before they fail "
        "with AdmissionTimeout (agent over capacity); none: the total mailbox capacity")
    park_capacity: int = setting(
        100_000, doc="calls made on an event loop's thread that may wait, parked, for room "
        "(the loop never waits); past it such a call raises AdmissionTimeout")
    submit_lead: int = setting(
        64, doc="calls 'await fn.submit_async()' may leave parked before it waits for its own "
        "call's admission (0: every call waits for its own)")
    processes_per_core: int = setting(1, doc="worker processes per core for execution: process")
    pin_threads: bool = setting(True, doc="pin each worker thread to its core's CPU (Linux)")
    stop_timeout: float = setting(30.0, doc="seconds stop() waits for admitted work before "
                                  "failing what is left")
    stuck_after: float = setting(
        10.0, doc="seconds one call may hold a worker before its mailbox counts as blocked: "
        "an agent routes nothing more there, hands what waits behind it back to the gateway "
        "(never started: it runs elsewhere), and shows STUCK once every worker is blocked")
    key_ttl: int = setting(
        86_400, doc="seconds an idempotency key (fn.options(key=...)) is kept after its "
        "call finished: the same key within it returns that call's token, not a new run")
    node_name: str = setting(factory=socket.gethostname, env="TOKENGATE_NODE_NAME",
                             doc="this node's name, unique in the cluster (default: host name)")

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
        if self.key_ttl < 0:
            raise ConfigurationError(f"key_ttl must be >= 0, got {self.key_ttl}")
        if self.stuck_after <= 0:
            raise ConfigurationError(f"stuck_after must be > 0, got {self.stuck_after}")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> SchedulerConfig:
        """Read ``TOKENGATE_<FIELD>`` variables, then apply ``overrides``."""
        return envconfig.from_env(cls, environ, **overrides)
