"""Settings of an agent's link to the gateway; every default is documented here.

Read from ``TOKENGATE_*`` through :mod:`tokengate.shared.envconfig` (the table of all
variables: ``docs/configuration.md``).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

from tokengate.shared import envconfig, labels, storage
from tokengate.shared.channel import Keepalive, TlsConfig
from tokengate.shared.codec import DEFAULT_MAX_PAYLOAD
from tokengate.shared.envconfig import setting
from tokengate.shared.errors import ConfigurationError


@dataclass(frozen=True, kw_only=True)
class LinkConfig:
    """How an agent reaches the gateway."""

    gateway: str = setting("127.0.0.1:50051", env="TOKENGATE_GATEWAY",
                           doc="HOST:PORT of the gateway (agents and clients); several, "
                               "comma-separated, for a cluster of gateways")
    token: str = setting("", secret=True, doc="the cluster's shared token")
    name: str = setting(factory=socket.gethostname, env="TOKENGATE_NODE_NAME",
                        doc="this node's name, unique in the cluster (default: host name)")
    includes: tuple[str, ...] = setting((), env="TOKENGATE_INCLUDE",
                                        doc="modules (comma-separated) whose tasks it runs")
    labels: tuple[str, ...] = setting(
        (), env="TOKENGATE_LABELS", doc="this agent's labels, key=value (comma-separated, e.g. "
        "gpu=a100,zone=eu): calls whose task requires labels run only on agents carrying them")
    storage: str = setting(
        "", env="TOKENGATE_STORAGE", doc="NAME=TIER (e.g. nas1=SLOW): the storage this agent's "
        "tasks' storage_speed refers to is the shared storage NAME, capped at TIER's writer "
        "count across every agent declaring it (the smallest tier wins); empty: a local disk, "
        "capped per agent")
    heartbeat_interval: float = setting(1.0, env="TOKENGATE_HEARTBEAT",
                                        doc="seconds between an idle agent's heartbeats")
    allow_pickle: bool = setting(False, doc="accept pickle-coded calls")
    max_result_bytes: int = setting(DEFAULT_MAX_PAYLOAD, doc="a result larger than this "
                                    "fails with PayloadTooLarge")
    max_backoff: float = setting(2.0, doc="longest pause between reconnection attempts")
    home_grace: float = setting(2.0, doc="seconds an agent keeps trying the first of several "
                                "gateways (its own) before it moves to the next")
    tls: TlsConfig = field(default_factory=TlsConfig)
    keepalive: Keepalive = field(default_factory=Keepalive)

    def __post_init__(self) -> None:
        if self.heartbeat_interval <= 0:
            raise ConfigurationError("heartbeat_interval must be > 0")
        if not self.name:
            raise ConfigurationError("an agent needs a node name")
        labels.parse(self.labels)  # a bad label stops the agent here, naming the shape
        storage.parse(self.storage)  # so does a bad storage declaration

    @classmethod
    def from_env(cls, **overrides: Any) -> LinkConfig:
        return envconfig.from_env(cls, **envconfig.given(**overrides))
