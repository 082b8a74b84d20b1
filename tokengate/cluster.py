"""Cluster mode for the facade: ``tokengate.connect`` makes decorated calls use the gateway."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tokengate import _backend
from tokengate.shared.client import ClusterClient, open_client
from tokengate.shared.status import describe, format_status


def connect(address: str | Sequence[str] | None = None, *, token: str | None = None,
            install: bool = True, **options: Any) -> ClusterClient:
    """Connect to the gateway at ``address`` (default ``TOKENGATE_GATEWAY``) with ``token``
    (default ``TOKENGATE_TOKEN``); decorated calls then travel through it until ``close()``.
    ``address`` may name several gateways of one cluster, as a list or comma-separated: the
    client starts at a random one and moves to the next when its gateway goes away.

    Options are :class:`shared.client_config.ClientConfig` fields (``codec="pickle"``,
    ``window``, ``submit_timeout``, ``connect_timeout``, ``tls``).
    """
    if address is not None and not isinstance(address, str):
        address = ",".join(address)
    client = open_client(address, token=token, **options)
    if install:
        _backend.install(client)
        client.close_hooks.append(_backend.uninstall)
    return client


def describe_status(client: ClusterClient) -> str:
    """The cluster's status as ``tokengate status`` prints it."""
    return format_status(describe(client.status()))
