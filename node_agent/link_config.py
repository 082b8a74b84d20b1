"""Settings of an agent's link to the gateway; every default is documented here."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, fields

from tokengate.shared.auth import read_token
from tokengate.shared.channel import TlsConfig
from tokengate.shared.codec import DEFAULT_MAX_PAYLOAD
from tokengate.shared.errors import ConfigurationError


@dataclass(frozen=True, kw_only=True)
class LinkConfig:
    """How an agent reaches the gateway.

    - ``gateway``: ``HOST:PORT`` of the gateway (TOKENGATE_GATEWAY).
    - ``token``: the cluster's shared token (TOKENGATE_TOKEN or TOKENGATE_TOKEN_FILE).
    - ``name``: this node's name, unique in the cluster (TOKENGATE_NODE_NAME; host name).
    - ``includes``: modules to import; only their registered tasks run here
      (TOKENGATE_INCLUDE, comma-separated).
    - ``heartbeat_interval``: seconds between heartbeats when idle (TOKENGATE_HEARTBEAT).
    - ``allow_pickle``: accept pickle-coded calls (TOKENGATE_ALLOW_PICKLE).
    - ``max_result_bytes``: a result larger than this fails with PayloadTooLarge.
    - ``max_backoff``: longest pause between reconnection attempts, in seconds.
    - ``tls``: CA (and client certificate for mTLS) to reach a TLS gateway.
    """

    gateway: str = "127.0.0.1:50051"
    token: str = ""
    name: str = field(default_factory=socket.gethostname)
    includes: tuple[str, ...] = ()
    heartbeat_interval: float = 1.0
    allow_pickle: bool = False
    max_result_bytes: int = DEFAULT_MAX_PAYLOAD
    max_backoff: float = 2.0
    tls: TlsConfig = field(default_factory=TlsConfig)

    def __post_init__(self) -> None:
        if self.heartbeat_interval <= 0:
            raise ConfigurationError("heartbeat_interval must be > 0")
        if not self.name:
            raise ConfigurationError("an agent needs a node name")

    @classmethod
    def from_env(cls, **overrides: object) -> LinkConfig:
        env = os.environ
        values: dict[str, object] = {"token": read_token(), "tls": TlsConfig.from_env()}
        if "TOKENGATE_GATEWAY" in env:
            values["gateway"] = env["TOKENGATE_GATEWAY"]
        if "TOKENGATE_NODE_NAME" in env:
            values["name"] = env["TOKENGATE_NODE_NAME"]
        if "TOKENGATE_INCLUDE" in env:
            values["includes"] = tuple(m.strip() for m in env["TOKENGATE_INCLUDE"].split(",")
                                       if m.strip())
        if "TOKENGATE_HEARTBEAT" in env:
            values["heartbeat_interval"] = float(env["TOKENGATE_HEARTBEAT"])
        values["allow_pickle"] = env.get("TOKENGATE_ALLOW_PICKLE", "").lower() in ("1", "true")
        known = {f.name for f in fields(cls)}
        values.update({k: v for k, v in overrides.items() if k in known and v is not None})
        return cls(**values)  # type: ignore[arg-type]
