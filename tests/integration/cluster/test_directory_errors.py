"""The shard directory's edge: an error reply that is not an outage is a LedgerError naming
the directory, not "Redis cannot serve now" (a real redis-server, a key of the wrong type)."""

from __future__ import annotations

import uuid

import pytest
import redis
from tokengate.gateway.directory import Directory
from tokengate.shared.errors import LedgerError, RedisUnavailable


def test_a_wrong_type_key_is_a_ledger_error_and_an_outage_is_unavailable(redis_url: str) -> None:
    prefix = f"tg-dir-{uuid.uuid4().hex[:8]}:"
    directory = Directory(redis_url, prefix)
    try:
        directory.add("s1")
        assert directory.known("s1")
        raw = redis.Redis.from_url(redis_url)
        raw.delete(directory.key)
        raw.set(directory.key, "not a set")  # what a stray writer might leave
        with pytest.raises(LedgerError, match="shard directory") as caught:
            directory.add("s2")
        assert not isinstance(caught.value, RedisUnavailable)
        raw.delete(directory.key)
        raw.close()
    finally:
        directory.close()
    with pytest.raises(RedisUnavailable):  # no server there: an outage, as before
        Directory("redis://127.0.0.1:1/0", prefix)
