"""The --redis URL: redis+sentinel:// parsed into sentinels, service and database; bad ones
refused with the password hidden; error replies a script wraps still read as Redis being away
(pure logic: no server)."""

from __future__ import annotations

import pytest
import redis
from tokengate.gateway.config import GatewayConfig
from tokengate.gateway.ledger.connect import SentinelTarget, check_url, parse_sentinel_url
from tokengate.gateway.ledger.edge import reply_code as _reply_code
from tokengate.gateway.ledger.edge import unavailable as _unavailable
from tokengate.shared.errors import ConfigurationError


@pytest.mark.parametrize(("url", "target"), [
    ("redis+sentinel://127.0.0.1:26379/mymaster",
     SentinelTarget((("127.0.0.1", 26379),), "mymaster")),
    ("redis+sentinel://:s%40cret@h1:5000,h2:5001,[::1]:5002,h4/tg?db=3",
     SentinelTarget((("h1", 5000), ("h2", 5001), ("::1", 5002), ("h4", 26379)), "tg", 3,
                    "s@cret")),
    ("REDIS+SENTINEL://h1:1/tg?sentinel_password=pw",
     SentinelTarget((("h1", 1),), "tg", 0, None, "pw")),
])
def test_a_sentinel_url_names_the_sentinels_the_service_and_the_database(url, target):
    assert parse_sentinel_url(url) == target


@pytest.mark.parametrize(("url", "says"), [
    ("redis+sentinel://:hunter2@/tg", "at least one sentinel"),
    ("redis+sentinel://:hunter2@h1:port/tg", "not a number"),
    ("redis+sentinel://:hunter2@h1:70000/tg", "out of range"),
    ("redis+sentinel://:hunter2@h1:1/", "name the service"),
    ("redis+sentinel://:hunter2@h1:1/tg?db=x", "db must be a number"),
    ("redis+sentinel://:hunter2@h1:1/tg?replicas=1", "unknown option"),
    ("http://:hunter2@h1:1/0", "use redis://"),
])
def test_a_bad_url_is_refused_saying_why_without_its_password(url, says):
    with pytest.raises(ConfigurationError, match=says) as caught:
        check_url(url)
    assert "hunter2" not in str(caught.value)


def test_plain_urls_pass_and_the_gateway_checks_its_url_and_replica_settings():
    for url in ("redis://:pw@127.0.0.1:6379/0", "rediss://h:6380/1", "unix:///tmp/r.sock"):
        check_url(url)
    good = dict(token="t" * 20, redis_url="redis+sentinel://h1:1,h2:2/tg")
    assert GatewayConfig(**good, redis_replicas=1).validate().redis_replicas == 1
    for bad in ({"redis_url": "redis+sentinel://h1:1"}, {"redis_replicas": -1},
                {"redis_replica_timeout": 0}, {"redis_replica_timeout": 30}):
        with pytest.raises(ConfigurationError):
            GatewayConfig(**{**good, **bad}).validate()


@pytest.mark.parametrize(("reply", "code"), [
    ("READONLY You can't write against a read only replica.", "READONLY"),
    ("Error running script (call to f_0): @user_script:1: @user_script: 1: -NOREPLICAS Not "
     "enough good replicas to write.", "NOREPLICAS"),
    ("Error running script (call to f_0): @user_script:1: @user_script: 1: -READONLY You "
     "can't write against a read only replica.", "READONLY"),
])
def test_a_replica_or_too_few_replicas_mean_redis_is_away_even_inside_a_script(reply, code):
    exc = redis.ResponseError(reply)
    assert _reply_code(exc) == code
    assert _unavailable(exc)


def test_a_scripts_own_error_is_not_taken_for_redis_being_away():
    exc = redis.ResponseError("Error running script (call to f_0): @user_script:3: "
                              "user_script:3: attempt to compare nil with number")
    assert not _unavailable(exc)
