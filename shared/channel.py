"""gRPC channel options and TLS settings shared by the client and the agent."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import grpc
from tokengate.shared.errors import ConfigurationError

MAX_MESSAGE_BYTES = 64 * 1024 * 1024

CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
    ("grpc.enable_retries", 0),  # streams are resent by TokenGate itself; no retry buffering
]


@dataclass(frozen=True, kw_only=True, slots=True)
class TlsConfig:
    """TLS for a gRPC peer. Empty paths mean plaintext (loopback or a trusted network).

    ``ca``: the CA that signed the gateway's certificate (clients and agents).
    ``cert``/``key``: this peer's own certificate (the gateway; a client for mTLS).
    """

    ca: str = ""
    cert: str = ""
    key: str = ""

    @classmethod
    def from_env(cls, prefix: str = "TOKENGATE_TLS_") -> TlsConfig:
        return cls(ca=os.environ.get(prefix + "CA", ""), cert=os.environ.get(prefix + "CERT", ""),
                   key=os.environ.get(prefix + "KEY", ""))

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


def open_channel(address: str, tls: TlsConfig | None = None) -> grpc.Channel:
    if tls is not None and tls.enabled:
        creds = grpc.ssl_channel_credentials(
            root_certificates=_read(tls.ca), private_key=_read(tls.key),
            certificate_chain=_read(tls.cert),
        )
        return grpc.secure_channel(address, creds, options=CHANNEL_OPTIONS)
    return grpc.insecure_channel(address, options=CHANNEL_OPTIONS)


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials:
    """Server TLS; with ``ca`` set, clients must present a certificate it signed (mTLS)."""
    key, cert = _read(tls.key), _read(tls.cert)
    if key is None or cert is None:
        raise ConfigurationError("gateway TLS needs both a certificate and its key")
    root = _read(tls.ca)
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=root,
                                       require_client_auth=root is not None)
