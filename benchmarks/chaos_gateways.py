"""The chaos soak's gateways: one (shard ``0``, as ``tokengate up`` runs it) or several on one
Redis and one key prefix, each serving a shard of its own (``--gateways 2``: ``gateway-a`` on
shard ``a``, ``gateway-b`` on shard ``b``).

:func:`layout` names them; :func:`addresses_for` is an agent's ``--gateway`` list (its own
gateway first, then the others; agents are split over the gateways in turn); the load's
clients are split the same way (:func:`addresses_for`). :class:`ShardAdmins` reads and
controls the cluster through every shard: a gateway's ``Status`` shows its own shard's agents
only, and a shard adopted by another gateway while its own is down is reached there by naming
it (the ``tokengate-shard`` header), so each shard has an operator client that names it and
tries its own gateway first. :func:`merge_nodes` (pure) joins their views.

Threads: the chaos thread and the soak's main thread use a :class:`ShardAdmins` one after the
other, never at once; its clients are made once and closed by :meth:`ShardAdmins.close`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from tokengate.gateway.ledger.schema import DEFAULT_SHARD, shard_prefix
from tokengate.shared.client import ClusterClient
from tokengate.shared.client_config import ClientConfig
from tokengate.shared.errors import BadRequest, TokenGateError
from tokengate.shared.redis_server import free_port

logger = logging.getLogger(__name__)

UP = "UP"


@dataclass(frozen=True)
class GatewaySpot:
    """One gateway of the soak: its role (process name), shard and address."""

    role: str
    shard: str
    address: str


def layout(count: int, first_address: str) -> tuple[GatewaySpot, ...]:
    """One gateway: role ``gateway``, the default shard, ``first_address`` (the soak as it
    always ran). More: ``gateway-a``, ``gateway-b``, ... on shards a, b, ..., the first on
    ``first_address``, the others on free ports."""
    if count < 1 or count > 26:
        raise ValueError(f"gateways: give 1 to 26, not {count}")
    if count == 1:
        return (GatewaySpot("gateway", DEFAULT_SHARD, first_address),)
    host = first_address.rpartition(":")[0]
    spots = []
    for i in range(count):
        shard = chr(ord("a") + i)
        address = first_address if i == 0 else f"{host}:{free_port()}"
        spots.append(GatewaySpot(f"gateway-{shard}", shard, address))
    return tuple(spots)


def addresses_for(spots: tuple[GatewaySpot, ...], index: int) -> str:
    """The address list of the ``index``-th agent (its ``--gateway``) or client of the load:
    its own gateway (the ``index``-th, in turn) first, then the others in order."""
    i = index % len(spots)
    return ",".join(s.address for s in (*spots[i:], *spots[:i]))


def shard_prefixes(key_prefix: str, spots: tuple[GatewaySpot, ...]) -> tuple[str, ...]:
    """Where each shard's keys are (a token is in the shard of the client that made it)."""
    return tuple(shard_prefix(key_prefix, s.shard) for s in spots)


def merge_nodes(views: Iterable[Iterable[tuple[str, str, int]]]) -> dict[str, tuple[str, int]]:
    """Each agent's (state, pid) over every shard's ``(name, state, pid)`` rows: an agent UP
    in any shard is UP (the process serves; a shard it left may still list it as lost or
    disconnected), else the first row seen."""
    nodes: dict[str, tuple[str, int]] = {}
    for view in views:
        for name, state, pid in view:
            if name not in nodes or (state == UP and nodes[name][0] != UP):
                nodes[name] = (state, pid)
    return nodes


class ShardAdmins:
    """An operator client per shard (naming it, its own gateway first) and a client per
    gateway address (a ping there answers for that process, not for the cluster)."""

    def __init__(self, spots: tuple[GatewaySpot, ...], token: str) -> None:
        self.spots = spots
        named = len(spots) > 1  # one gateway: no header, as the soak always called it
        self._shards = {s.shard: _client(addresses_for(spots, i), token,
                                         s.shard if named else "")
                        for i, s in enumerate(spots)}
        self._pings = {s.role: _client(s.address, token, "") for s in spots}
        self._token = token
        self._at: dict[tuple[str, str], ClusterClient] = {}  # (address, shard): made on use

    def ping(self, role: str, timeout: float) -> None:
        self._pings[role].ping(timeout=timeout)

    def nodes(self) -> tuple[dict[str, tuple[str, int]], str]:
        """Every agent's (state, pid) over all shards, and why a shard could not be read
        ("" when every one answered)."""
        views, errors = [], []
        for shard, admin in self._shards.items():
            try:
                views.append([(n.name, n.state, n.pid) for n in admin.status().nodes])
            except TokenGateError as exc:
                errors.append(f"shard {shard}: {exc}")
        return merge_nodes(views), "; ".join(errors)

    def nodes_at(self, address: str, shard: str) -> list[tuple[str, str, int]]:
        """The agents of ``shard`` that the gateway at ``address`` (only) serves: (name,
        state, pid); none when it does not serve the shard (or does not answer). Asking may
        make that gateway adopt the shard, as any call naming it does once its lease lapsed."""
        client = self._at.get((address, shard))
        if client is None:
            client = self._at[address, shard] = _client(address, self._token, shard)
        try:
            return [(n.name, n.state, n.pid) for n in client.status().nodes]
        except TokenGateError:
            return []

    def drain(self, node: str, reason: str) -> str:
        """Drain ``node`` in the shard that knows it (a shard that does not says
        BadRequest)."""
        refused: list[str] = []
        for shard, admin in self._shards.items():
            try:
                return admin.drain(node=node, reason=reason)
            except BadRequest as exc:
                if len(self._shards) == 1:
                    raise
                refused.append(f"shard {shard}: {exc}")
        raise BadRequest("; ".join(refused))

    def resume(self, node: str) -> str:
        """Resume ``node`` in every shard (a node's drain is kept in the shard that drained
        it; resuming a node a shard does not know is a no-op there)."""
        return "; ".join(admin.resume(node=node) for admin in self._shards.values())

    def close(self) -> None:
        for client in [*self._shards.values(), *self._pings.values(), *self._at.values()]:
            client.close()


def _client(addresses: str, token: str, shard: str) -> ClusterClient:
    """A client (not connected: operator calls only) that starts at the first address and,
    given a shard, names it on every call."""
    return ClusterClient(ClientConfig(address=addresses, token=token, spread=False,
                                      shard=shard))
