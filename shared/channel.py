"""gRPC channel options, TLS and keepalive settings shared by the client, agent and gateway.

Keepalive is how a peer learns that the other end is gone when nothing tells it so: a host
powered off or a cable pulled sends no RST, and a stream on such a connection would wait
forever (an idle one) or for TCP's ~15 minutes of retransmissions (one with data unsent).
Each side pings every ``interval`` seconds and closes the connection when a ping, or data
it sent, goes unanswered for ``timeout`` seconds (gRPC sets ``TCP_USER_TIMEOUT`` to it). A
dead peer is thus noticed within ``timeout`` seconds of the first unanswered write, and
within ``interval + timeout`` on a quiet connection. See ``docs/network.md``.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from tokengate.shared.envconfig import from_env, setting
from tokengate.shared.errors import ConfigurationError

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MIN_KEEPALIVE = 1.0  # seconds: the shortest ping interval; gateways accept pings this often


@dataclass(frozen=True, kw_only=True, slots=True)
class Keepalive:
    """How soon a peer gives up on a connection whose other end went silent."""

    interval: float = setting(
        10.0, env="TOKENGATE_KEEPALIVE",
        doc="seconds between HTTP/2 pings on a connection (gateway, agents, clients; at "
            "least 1)")
    timeout: float = setting(
        5.0, env="TOKENGATE_KEEPALIVE_TIMEOUT",
        doc="seconds a ping or sent data may go unanswered before the connection is closed "
            "as dead (a peer lost without a word is noticed in about this, at most "
            "interval + timeout)")

    def __post_init__(self) -> None:
        if self.interval < MIN_KEEPALIVE or self.timeout <= 0:
            raise ConfigurationError(f"keepalive interval must be >= {MIN_KEEPALIVE:g}s and "
                                     "its timeout > 0")

    @classmethod
    def from_env(cls) -> Keepalive:
        return from_env(cls)

    def options(self) -> list[tuple[str, int]]:
        """Channel or server arguments: ping every ``interval``, with or without calls."""
        return [("grpc.keepalive_time_ms", round(self.interval * 1000)),
                ("grpc.keepalive_timeout_ms", round(self.timeout * 1000)),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.max_pings_without_data", 0)]


CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    *Keepalive().options(),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
    ("grpc.enable_retries", 0),  # streams are resent by TokenGate itself; no retry buffering
    # Each client its own connection: gRPC shares one connection between every channel of a
    # process to the same address by default, so a new client's first call could ride on a
    # connection another client still holds to a gateway that just died ("Stream removed").
    ("grpc.use_local_subchannel_pool", 1),
]


@dataclass(frozen=True, kw_only=True, slots=True)
class TlsConfig:
    """TLS for a gRPC peer. Empty paths mean plaintext (loopback or a trusted network).

    ``ca``: the CA that signed the gateway's certificate (clients and agents).
    ``cert``/``key``: this peer's own certificate (the gateway; a client for mTLS).
    """

    ca: str = setting("", env="TOKENGATE_TLS_CA",
                      doc="CA certificate (PEM) that signed the gateway's certificate; on the "
                          "gateway: require client certificates signed by it (mTLS)")
    cert: str = setting("", env="TOKENGATE_TLS_CERT", doc="this peer's certificate (PEM)")
    key: str = setting("", env="TOKENGATE_TLS_KEY", doc="this peer's private key (PEM)")

    @classmethod
    def from_env(cls) -> TlsConfig:
        return from_env(cls)

    @property
    def enabled(self) -> bool:
        return bool(self.ca or self.cert)


def _read(path: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read TLS file {path}: {exc}") from None


def addresses(text: str | Sequence[str]) -> list[str]:
    """Gateway addresses: ``"gw1:50051,gw2:50051"`` or a list; at least one."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    found = [p.strip() for p in parts if p.strip()]
    if not found:
        raise ConfigurationError("no gateway address given (HOST:PORT, or several with commas)")
    return found


def channel_options(keepalive: Keepalive | None = None) -> list[tuple[str, int]]:
    """``CHANNEL_OPTIONS`` with ``keepalive``'s pings instead of the default ones."""
    if keepalive is None:
        return CHANNEL_OPTIONS
    mine = dict(keepalive.options())
    return [(k, mine.pop(k, v)) for k, v in CHANNEL_OPTIONS]


def open_channel(address: str, tls: TlsConfig | None = None,
                 keepalive: Keepalive | None = None) -> grpc.Channel:
    options = channel_options(keepalive)
    if tls is not None and tls.enabled:
        creds = grpc.ssl_channel_credentials(
            root_certificates=_read(tls.ca), private_key=_read(tls.key),
            certificate_chain=_read(tls.cert),
        )
        return grpc.secure_channel(address, creds, options=options)
    return grpc.insecure_channel(address, options=options)


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials:
    """Server TLS; with ``ca`` set, clients must present a certificate it signed (mTLS)."""
    key, cert = _read(tls.key), _read(tls.cert)
    if key is None or cert is None:
        raise ConfigurationError("gateway TLS needs both a certificate and its key")
    root = _read(tls.ca)
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=root,
                                       require_client_auth=root is not None)


def speaks_tls(address: str, timeout: float = 1.0) -> bool:
    """Whether the server at ``address`` answers a TLS handshake (a hint for a plaintext
    client that cannot reach it). A server asking for a client certificate counts too."""
    host, _, port = address.rpartition(":")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)),
                                      timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host.strip("[]") or None):
            return True
    except ssl.SSLError as exc:
        return "ALERT" in str(exc.reason or "").upper()
    except (OSError, ValueError):
        return False
