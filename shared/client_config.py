"""Settings of a cluster client; every default is documented here."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

from tokengate.shared.auth import read_token
from tokengate.shared.channel import TlsConfig
from tokengate.shared.codec import DEFAULT_MAX_PAYLOAD, codec_id

DEFAULT_GATEWAY = "127.0.0.1:50051"


@dataclass(frozen=True, kw_only=True)
class ClientConfig:
    """How a client reaches the gateway.

    - ``address``: ``HOST:PORT`` of the gateway (TOKENGATE_GATEWAY).
    - ``token``: the cluster's shared token (TOKENGATE_TOKEN or TOKENGATE_TOKEN_FILE).
    - ``codec``: ``msgpack`` (default, plain data) or ``pickle`` (opt-in; the gateway and
      agents must allow it too) (TOKENGATE_CODEC).
    - ``window``: submissions the gateway has not yet acknowledged before ``submit`` waits:
      the client's backpressure, so memory stays bounded however fast it submits.
    - ``submit_timeout``: seconds ``submit`` may wait for the window; None waits as needed.
    - ``connect_timeout``: seconds ``connect`` waits for the gateway to answer.
    - ``max_payload``: largest encoded arguments per call (PayloadTooLarge above it).
    - ``tls``: CA (and client certificate for mTLS) for a TLS gateway.
    """

    address: str = DEFAULT_GATEWAY
    token: str = ""
    codec: str = "msgpack"
    window: int = 20_000
    submit_timeout: float | None = None
    connect_timeout: float = 5.0
    max_payload: int = DEFAULT_MAX_PAYLOAD
    tls: TlsConfig = field(default_factory=TlsConfig)

    def __post_init__(self) -> None:
        codec_id(self.codec)

    @classmethod
    def from_env(cls, **overrides: object) -> ClientConfig:
        env = os.environ
        values: dict[str, object] = {"token": read_token(), "tls": TlsConfig.from_env()}
        if env.get("TOKENGATE_GATEWAY"):
            values["address"] = env["TOKENGATE_GATEWAY"]
        if env.get("TOKENGATE_CODEC"):
            values["codec"] = env["TOKENGATE_CODEC"]
        known = {f.name for f in fields(cls)}
        values.update({k: v for k, v in overrides.items() if k in known and v is not None})
        return cls(**values)  # type: ignore[arg-type]
