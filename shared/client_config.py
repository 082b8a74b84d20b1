"""Settings of a cluster client; every default is documented here.

Read from ``TOKENGATE_*`` through :mod:`tokengate.shared.envconfig` (the table of all
variables: ``docs/configuration.md``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from tokengate.shared import envconfig
from tokengate.shared.channel import Keepalive, TlsConfig
from tokengate.shared.codec import DEFAULT_MAX_PAYLOAD, codec_id
from tokengate.shared.envconfig import setting

DEFAULT_GATEWAY = "127.0.0.1:50051"


def new_client_id() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True, kw_only=True)
class ClientConfig:
    """How a client reaches the gateway."""

    address: str = setting(DEFAULT_GATEWAY, env="TOKENGATE_GATEWAY",
                           doc="HOST:PORT of the gateway (agents and clients); several, "
                               "comma-separated, for a cluster of gateways")
    spread: bool = setting(True, env="TOKENGATE_CLIENT_SPREAD",
                           doc="with several gateway addresses, start at a random one (clients "
                               "spread over the gateways); false: at the first")
    shard: str = setting("", env="TOKENGATE_CLIENT_SHARD",
                         doc="the shard to name on every call (default: the one the first "
                             "gateway names); its tokens are reached from any gateway")
    token: str = setting("", secret=True, doc="the cluster's shared token")
    client_id: str = setting(factory=new_client_id,
                             doc="this client's id: its tokens are its own, and only it may "
                                 "watch them (default: random per client)")
    codec: str = setting("msgpack", doc="msgpack (plain data) or pickle (opt-in; the gateway "
                         "and agents must allow it too)")
    window: int = setting(20_000, env="TOKENGATE_CLIENT_WINDOW",
                          doc="calls the gateway has not acknowledged before submit waits")
    submit_timeout: float | None = setting(
        None, env="TOKENGATE_CLIENT_SUBMIT_TIMEOUT",
        doc="seconds submit may wait for the window (none: as long as it takes), and seconds "
            "a call the gateway could not store (RedisUnavailable: Redis restarting or "
            "stalled) is offered again before it fails (none: 60)")
    park_capacity: int = setting(
        100_000, env="TOKENGATE_CLIENT_PARK_CAPACITY",
        doc="calls made on an event loop's thread or on the session thread (its tokens' done "
            "callbacks: a chain's next step) that may wait, parked, for the window (those "
            "threads never wait); past it such a call raises AdmissionTimeout")
    submit_lead: int = setting(
        64, env="TOKENGATE_CLIENT_SUBMIT_LEAD",
        doc="calls 'await fn.submit_async()' may leave parked before it waits for its own "
            "call's admission (0: every call waits for its own)")
    connect_timeout: float = setting(5.0, doc="seconds connect waits for the gateway")
    max_payload: int = setting(DEFAULT_MAX_PAYLOAD, doc="largest encoded arguments of one "
                               "call, in bytes")
    tls: TlsConfig = field(default_factory=TlsConfig)
    keepalive: Keepalive = field(default_factory=Keepalive)

    def __post_init__(self) -> None:
        codec_id(self.codec)

    @classmethod
    def from_env(cls, **overrides: Any) -> ClientConfig:
        return envconfig.from_env(cls, **envconfig.given(**overrides))
