"""Gateway settings: one keyword-only dataclass, every default documented here.

``GatewayConfig.from_env()`` reads the ``TOKENGATE_*`` variables through
:mod:`tokengate.shared.envconfig` (the table of all variables: ``docs/configuration.md``);
the CLI overrides them with flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tokengate.gateway import fairness
from tokengate.gateway.ledger.connect import check_url
from tokengate.gateway.ledger.schema import DEFAULT_PREFIX, DEFAULT_SHARD, shard_prefix
from tokengate.shared import envconfig
from tokengate.shared.auth import is_loopback
from tokengate.shared.channel import Keepalive, TlsConfig
from tokengate.shared.codec import DEFAULT_MAX_PAYLOAD
from tokengate.shared.envconfig import setting
from tokengate.shared.errors import ConfigurationError

MAX_REPLICA_WAIT = 5.0  # seconds; a WAIT must end well inside the ledger's socket timeout


def check_shard(name: str) -> str:
    """A shard name (it becomes the Redis hash tag of the shard's keys), or
    ConfigurationError."""
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
        raise ConfigurationError(
            f"shard {name!r}: give a name of 1 to 64 letters, digits, '-', '_' or '.' (it "
            "becomes the Redis hash tag of the shard's keys)")
    return name


@dataclass(frozen=True, kw_only=True, slots=True)
class GatewayConfig:
    """Everything the gateway needs to run."""

    listen: str = setting("127.0.0.1:50051", env="TOKENGATE_LISTEN",
                          doc="gateway gRPC address; loopback unless told otherwise")
    redis_url: str = setting(
        "redis://127.0.0.1:6379/0", env="TOKENGATE_REDIS",
        doc="Redis holding the truth; the password goes in the URL. A primary Sentinel "
        "watches: redis+sentinel://[:password@]host1:port1,host2:port2/<service>?db=N "
        "(docs/redis-failover.md)")
    redis_replicas: int = setting(
        0, doc="replicas that must hold each batch of writes (WAIT) before the gateway tells "
        "anyone of it (accepts, results, dispatches); 0: do not wait (a failover may lose the "
        "last writes acknowledged; docs/redis-failover.md)")
    redis_replica_timeout: float = setting(
        1.0, doc="seconds a batch waits for those replicas; past it the batch fails as if "
        "Redis were away (clients offer their calls again)")
    token: str = setting("", secret=True, doc="the cluster's shared token; required")
    operator_token: str = setting(
        "", secret=True, doc="token with operator rights (drain, resume, kill, re-enable, "
        "quarantine, watching any client's tokens); unset: the cluster token has them")
    agent_token: str = setting(
        "", secret=True, doc="token agents join with; set, the cluster token cannot join as "
        "an agent (so a client cannot ask for other clients' calls); unset: the cluster token")
    key_prefix: str = setting(DEFAULT_PREFIX, doc="prefix of every Redis key of the cluster")
    shard: str = setting(DEFAULT_SHARD, env="TOKENGATE_SHARD", doc="this gateway's shard: its "
                         "part of the bookkeeping, every key under <key_prefix>{<shard>}: (one "
                         "Redis Cluster hash slot); each gateway of a cluster needs its own")
    heartbeat_timeout: float = setting(5.0, doc="seconds without a frame before an agent is "
                                       "declared lost (agents stop starting work after half)")
    max_attempts: int = setting(3, doc="runs a token may get across lost agents")
    result_ttl: int = setting(
        600, doc="seconds a final token and its result stay in Redis when its client has not "
        "confirmed receiving it (about 1.2 KB each for small results)")
    key_ttl: int = setting(
        86_400, doc="seconds a call's idempotency key (and with it the call's token and "
        "outcome) is kept in Redis after the call finished, whatever the client received; "
        "the result TTL when that is longer")
    max_payload: int = setting(DEFAULT_MAX_PAYLOAD, doc="largest encoded arguments of one "
                               "call, in bytes")
    max_pending: int = setting(1_000_000, doc="waiting tokens held in Redis before new calls "
                               "get GatewayBusy (clients wait and offer them again)")
    dispatch_batch: int = setting(1000, doc="most tokens in one dispatch frame")
    chunk_budget: float = setting(
        0.005, doc="seconds of predicted run time one agent may be given from a batch before "
        "the next token goes to another agent (short tasks travel in chunks, fewer frames; "
        "0: spread every token)")
    placement_timeout: float = setting(
        60.0, doc="seconds a waiting token may go without any live agent that has its task "
        "and the labels it requires before it fails with PlacementTimeout (counted from its "
        "creation, and from when its need was last served or the gateway started); 0: wait "
        "for one forever")
    allow_pickle: bool = setting(False, doc="accept pickle-coded calls (authenticated clients)")
    max_sessions: int = setting(
        10_000, doc="client sessions served at once; past it a new session gets GatewayBusy "
        "(each open session costs the gateway about SESSION_KIB KiB)")
    max_agents: int = setting(1_000, doc="agent links served at once; past it a new agent "
                              "gets GatewayBusy")
    session_outbox_bytes: int = setting(
        8 * 1024 * 1024, doc="results waiting for a slow client before its session is cut "
        "off (SessionTooSlow; the results stay in Redis)")
    fair_depth: int = setting(
        256, doc="tokens stored and not finished, over all clients, past which a client's calls "
        "beyond its weighted share wait at the gateway, unstored and unacknowledged, and are "
        "stored in weighted round robin as tokens finish; a client alone may have 8x it "
        "(docs/cluster.md, Fair shares); 0: first come, first served")
    client_weights: tuple[str, ...] = setting(
        (), doc="CLIENT_ID=WEIGHT,...: a client's share of fair_depth is its weight over the "
        f"weights of the clients with calls in flight or held (others weigh 1; at most "
        f"{fairness.MAX_WEIGHT})")
    client_quota: int = setting(
        0, doc="most tokens one client (client id) may have stored and not finished; calls "
        "past it wait at the gateway (0: no quota)")
    client_quotas: tuple[str, ...] = setting(
        (), doc="CLIENT_ID=N,...: quotas of single clients, instead of client_quota "
        "(0: none for that client)")
    max_held: int = setting(
        100_000, doc="calls held at the gateway beyond their clients' shares, over all "
        "sessions, before more get GatewayBusy (clients wait and offer them again)")
    max_held_per_client: int = setting(
        2048, doc="calls of one client held at the gateway beyond its share, past which the "
        "gateway reads no more frames of its sessions until half of them went in (gRPC's "
        "flow control then holds the client back; 0: no cap)")
    metrics_port: int | None = setting(None, env="TOKENGATE_GATEWAY_METRICS_PORT",
                                       doc="serve Prometheus /metrics here (0: any port)")
    tls: TlsConfig = field(default_factory=TlsConfig)
    keepalive: Keepalive = field(default_factory=Keepalive)

    @property
    def ledger_prefix(self) -> str:
        """The prefix of this gateway's shard's keys."""
        return shard_prefix(self.key_prefix, self.shard)

    def fair_policy(self) -> fairness.Policy:
        """The fair-share settings as the gate's policy."""
        return fairness.Policy(
            depth=self.fair_depth, quota=self.client_quota,
            weights=fairness.parse_table(self.client_weights, "client_weights", low=1),
            quotas=fairness.parse_table(self.client_quotas, "client_quotas"))

    @classmethod
    def from_env(cls, **overrides: Any) -> GatewayConfig:
        return envconfig.from_env(cls, **envconfig.given(**overrides))

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
        if self.chunk_budget < 0:
            raise ConfigurationError("chunk_budget must be >= 0 seconds")
        if self.placement_timeout < 0:
            raise ConfigurationError("placement_timeout must be >= 0 (0: no timeout)")
        if self.max_sessions < 1 or self.max_agents < 1:
            raise ConfigurationError("max_sessions and max_agents must be at least 1")
        check_shard(self.shard)
        if self.session_outbox_bytes < 64 * 1024:
            raise ConfigurationError("session_outbox_bytes must be at least 65536")
        check_url(self.redis_url)
        if min(self.fair_depth, self.client_quota, self.max_held, self.max_held_per_client) < 0:
            raise ConfigurationError("fair_depth, client_quota, max_held and "
                                     "max_held_per_client must be >= 0")
        policy = self.fair_policy()
        if any(w > fairness.MAX_WEIGHT for w in policy.weights.values()):
            raise ConfigurationError(f"client_weights: a weight is at most {fairness.MAX_WEIGHT}")
        if self.redis_replicas < 0 or not 0 < self.redis_replica_timeout < MAX_REPLICA_WAIT:
            raise ConfigurationError(
                f"redis_replicas must be >= 0 and redis_replica_timeout between 0 and "
                f"{MAX_REPLICA_WAIT:g} seconds (below the Redis socket timeout)")
        return self
