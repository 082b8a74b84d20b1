"""From the ``--redis`` URL to a sync Redis client: a plain server, or a primary that
Sentinel watches and replaces.

``redis://``, ``rediss://`` and ``unix://`` URLs go to redis-py's ``Redis.from_url``.
``redis+sentinel://[:password@]host1:port1,host2:port2/<service>?db=N`` names the sentinels
(any number; the port defaults to 26379), the service (the name the sentinels monitor) and
the database; the password is the data servers' (primary and replicas), and
``sentinel_password=`` in the query is the sentinels' own, if they have one. Such a client's
pool asks the sentinels for the current primary each time it makes a connection, so a
connection made after a failover reaches the promoted replica (docs/redis-failover.md).

:func:`parse_sentinel_url` is the pure part (tested without a server); :func:`client_from_url`
builds the client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

import redis
from redis.connection import parse_url
from redis.sentinel import Sentinel
from tokengate.shared.errors import ConfigurationError

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379
PLAIN_SCHEMES = ("redis", "rediss", "unix")
QUERY_KEYS = frozenset({"db", "sentinel_password"})


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """What a ``redis+sentinel://`` URL says."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    password: str | None = None
    sentinel_password: str | None = None


def is_sentinel_url(url: str) -> bool:
    return url.partition("://")[0].lower() == SENTINEL_SCHEME


def _host_port(part: str, url: str) -> tuple[str, int]:
    """``host:port``, ``host`` (the default port) or ``[v6]:port``."""
    if part.startswith("["):
        host, _, tail = part[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else ""
    else:
        host, colon, port = part.rpartition(":")
        if not colon:
            host, port = part, ""
    if not host:
        raise ConfigurationError(f"--redis {_shown(url)}: a sentinel without a host")
    try:
        number = int(port) if port else SENTINEL_PORT
    except ValueError:
        raise ConfigurationError(f"--redis {_shown(url)}: sentinel port {port!r} is not a "
                                 "number") from None
    if not 0 < number < 65536:
        raise ConfigurationError(f"--redis {_shown(url)}: sentinel port {number} is out of "
                                 "range")
    return host, number


def _shown(url: str) -> str:
    """The URL with its password hidden, for messages."""
    head, sep, tail = url.rpartition("@")
    return f"{head.split('//')[0]}//***@{tail}" if sep else url


def parse_sentinel_url(url: str) -> SentinelTarget:
    """``redis+sentinel://[:password@]host1:port1,host2:port2/<service>?db=N``; a bad one
    raises ConfigurationError naming what is wrong (the password hidden)."""
    if not is_sentinel_url(url):
        raise ConfigurationError(f"not a {SENTINEL_SCHEME}:// URL: {_shown(url)}")
    # urlsplit would read "h1:1,h2:2" as one host with a bad port: take the parts by hand.
    rest = url.split("://", 1)[1]
    location, _, query = rest.partition("?")
    netloc, _, path = location.partition("/")
    auth, at, hosts = netloc.rpartition("@")
    password = unquote(auth.partition(":")[2] if ":" in auth else auth) if at else None
    sentinels = tuple(_host_port(p.strip(), url) for p in hosts.split(",") if p.strip())
    if not sentinels:
        raise ConfigurationError(f"--redis {_shown(url)}: name at least one sentinel "
                                 "(host:port)")
    service = unquote(path.strip("/"))
    if not service or "/" in service:
        raise ConfigurationError(f"--redis {_shown(url)}: name the service the sentinels "
                                 "monitor as the path, e.g. redis+sentinel://h1:26379/mymaster")
    options = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    unknown = sorted(set(options) - QUERY_KEYS)
    if unknown:
        raise ConfigurationError(f"--redis {_shown(url)}: unknown option(s) {unknown}; valid: "
                                 f"{sorted(QUERY_KEYS)}")
    try:
        db = int(options.get("db", "0"))
    except ValueError:
        raise ConfigurationError(f"--redis {_shown(url)}: db must be a number") from None
    return SentinelTarget(sentinels, service, db, password or None,
                          options.get("sentinel_password") or None)


def check_url(url: str) -> None:
    """Refuse a URL no client could be built from (ConfigurationError), without connecting."""
    scheme = url.partition("://")[0].lower()
    if scheme == SENTINEL_SCHEME:
        parse_sentinel_url(url)
    elif scheme not in PLAIN_SCHEMES or "://" not in url:
        raise ConfigurationError(
            f"--redis {_shown(url)}: use redis://, rediss://, unix:// or "
            f"{SENTINEL_SCHEME}://host1:port1,host2:port2/<service>")
    else:
        try:
            parse_url(url)  # type: ignore[no-untyped-call]
        except ValueError as exc:
            raise ConfigurationError(f"--redis {_shown(url)}: {exc}") from None


def client_from_url(url: str, **options: Any) -> redis.Redis:
    """A client for ``url``; ``options`` (timeouts, retry, health checks) apply to every
    connection to the data servers. The sentinels are asked with the socket timeouts."""
    if not is_sentinel_url(url):
        return redis.Redis.from_url(url, **options)
    target = parse_sentinel_url(url)
    asking = {k: v for k, v in options.items() if k.startswith("socket_")}
    if target.sentinel_password:
        asking["password"] = target.sentinel_password
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=asking)
    client: redis.Redis = sentinel.master_for(target.service, db=target.db,
                                              password=target.password, **options)
    return client
