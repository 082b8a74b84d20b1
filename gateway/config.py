"""Gateway settings: one keyword-only dataclass, every default documented here.

``GatewayConfig.from_env()`` reads ``TOKENGATE_*`` variables; the CLI overrides from flags.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

from tokengate.gateway.keys import DEFAULT_PREFIX
from tokengate.shared.auth import is_loopback, read_token
from tokengate.shared.channel import TlsConfig
from tokengate.shared.codec import DEFAULT_MAX_PAYLOAD
from tokengate.shared.errors import ConfigurationError


@dataclass(frozen=True, kw_only=True, slots=True)
class GatewayConfig:
    """Everything the gateway needs to run.

    listen:             gRPC address; loopback unless told otherwise (TOKENGATE_LISTEN)
    redis_url:          Redis holding the truth (TOKENGATE_REDIS), password in the URL
    token:              the cluster's shared token; required (TOKENGATE_TOKEN / _TOKEN_FILE)
    key_prefix:         prefix of every Redis key (TOKENGATE_KEY_PREFIX)
    heartbeat_timeout:  seconds without a frame before an agent is declared lost
    max_attempts:       runs a token may get before losing agents fails it with AgentLost
    result_ttl:         seconds a final token and its result stay in Redis (about 1.2 KB each
                        for small results: 10,000 tasks/s for 600 s keep ~7 GB; lower it for
                        sustained high rates: clients get results pushed, the copy in Redis
                        only serves clients that reconnect)
    max_payload:        largest encoded arguments accepted per call, in bytes
    max_pending:        waiting tokens held in Redis before new ones get GatewayBusy
    dispatch_batch:     most tokens in one dispatch frame
    allow_pickle:       accept pickle-coded calls (authenticated clients only)
    workers:            gRPC server threads; each client session and agent link holds one
                        for its life, so this caps them (TOKENGATE_GATEWAY_WORKERS)
    tls:                server certificate/key; with a CA, clients must present certificates
    """

    listen: str = "127.0.0.1:50051"
    redis_url: str = "redis://127.0.0.1:6379/0"
    token: str = ""
    key_prefix: str = DEFAULT_PREFIX
    heartbeat_timeout: float = 5.0
    max_attempts: int = 3
    result_ttl: int = 600
    max_payload: int = DEFAULT_MAX_PAYLOAD
    max_pending: int = 1_000_000
    dispatch_batch: int = 1000
    allow_pickle: bool = False
    workers: int = 64
    tls: TlsConfig = field(default_factory=TlsConfig)

    @classmethod
    def from_env(cls, **overrides: object) -> GatewayConfig:
        """Settings from ``TOKENGATE_*`` variables, then ``overrides`` that are not None."""
        env = os.environ
        casts = {"listen": ("TOKENGATE_LISTEN", str), "redis_url": ("TOKENGATE_REDIS", str),
                 "key_prefix": ("TOKENGATE_KEY_PREFIX", str),
                 "heartbeat_timeout": ("TOKENGATE_HEARTBEAT_TIMEOUT", float),
                 "max_attempts": ("TOKENGATE_MAX_ATTEMPTS", int),
                 "result_ttl": ("TOKENGATE_RESULT_TTL", int),
                 "max_payload": ("TOKENGATE_MAX_PAYLOAD", int),
                 "max_pending": ("TOKENGATE_MAX_PENDING", int),
                 "workers": ("TOKENGATE_GATEWAY_WORKERS", int)}
        values: dict[str, object] = {name: cast(env[var]) for name, (var, cast) in casts.items()
                                     if var in env}
        values["token"] = read_token()
        values["allow_pickle"] = env.get("TOKENGATE_ALLOW_PICKLE", "").lower() in ("1", "true")
        values["tls"] = TlsConfig.from_env()
        known = {f.name for f in fields(cls)}
        values.update({k: v for k, v in overrides.items() if k in known and v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def validate(self) -> GatewayConfig:
        host = self.listen.rpartition(":")[0]
        if not self.token:
            raise ConfigurationError(
                "the gateway needs the cluster's shared token: set TOKENGATE_TOKEN or "
                "--token-file (every client and agent presents it)")
        if not is_loopback(host) and not self.tls.enabled and len(self.token) < 16:
            raise ConfigurationError(
                f"refusing to listen on {self.listen} beyond loopback with a short token and "
                "no TLS: use a token of at least 16 characters, and TLS on untrusted networks")
        if self.max_attempts < 1 or self.heartbeat_timeout <= 0:
            raise ConfigurationError("max_attempts must be >= 1 and heartbeat_timeout > 0")
        if self.workers < 4:
            raise ConfigurationError("workers must be at least 4 (one per session or agent)")
        return self
