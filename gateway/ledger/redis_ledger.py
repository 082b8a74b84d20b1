"""The ledger in Redis: one Lua script call per batch on the hot path.

The scripts (``lua/*.lua``, each with a header documenting its keys and arguments) share
``lua/lib.lua`` and are templates over :mod:`.schema`'s names, filled in when they are
loaded. Redis connection errors become :class:`RedisUnavailable` here.

Scripts go out on a connection of the calling thread's own (``_ThreadConns``): no pool
check-out per call, one reconnection and resend if that connection turns out dead (a Redis
restart), as the pooled client's retry did.

Ordering: ``submit_begin`` lets the gateway dispatch new calls while their ``submit`` script
is in flight. An agent's report on those calls could then, on another connection, reach Redis
first and find no token. So every report (``start``, ``complete``) first waits until each
submission sent before it has been answered: ``_Tickets`` is that barrier (it guards only the
set of open tickets, under its own condition).

A submission whose reply is lost (Redis restarted or stalled past the socket timeout) may or
may not have been stored, and its calls may be on their way to agents already. Its script is
run again, on a new connection, until Redis answers (for up to ``STORE_RETRY`` seconds), with
its ticket held: ``submit.lua`` answers a call it stored on the first run as it did then, so
the gateway learns what happened to each. Reports wait meanwhile, as they wait for any
submission sent before them.

``trouble_at`` is when Redis last failed a call or kept one waiting longer than
``STALL_SECONDS`` (wall time, written by any thread as a single float store): the registry
judges no agent lost on heartbeats it could not record meanwhile.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from importlib import resources
from string import Template
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import msgpack
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import SentinelConnectionPool, SentinelManagedConnection
from tokengate.gateway.ledger import schema
from tokengate.gateway.ledger.base import AUDIT_KEEP, EXPIRE_BATCH, DrainState, LossPolicy
from tokengate.gateway.ledger.connect import client_from_url, is_sentinel_url
from tokengate.gateway.ledger.rows import (
    Adoption,
    Applied,
    AuditEntry,
    Claimed,
    KillOutcome,
    LostToken,
    NewToken,
    Outcome,
    Requeued,
    StartReport,
    SubmitStatus,
    TaskRule,
    TokenRecord,
)
from tokengate.shared.errors import Fenced, RedisUnavailable
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.tags import Weight

logger = logging.getLogger(__name__)

T = TypeVar("T")

SCRIPTS = ("submit", "claim", "start", "complete", "requeue", "join", "kill", "forget",
           "expire")
UNAVAILABLE_REPLIES = frozenset({"LOADING", "MISCONF", "OOM", "READONLY", "BUSY", "MASTERDOWN",
                                 "NOREPLICAS", "NOEPOCH"})  # NOEPOCH: lib.lua's fence, until
                                                            # the lease renews the epoch a
                                                            # Redis restart lost
DEMOTED_REPLIES = frozenset({"READONLY", "MASTERDOWN"})  # a replica now: ask for the primary
_SCRIPT_REPLY = re.compile(r"\s-([A-Z]+)\s")  # the code of an error a script's command got
NOT_TWICE = frozenset({"claim", "kill", "expire"})  # a second run of these would not be a no-op
SOCKET_TIMEOUT = 10.0  # seconds a reply may take before the connection counts as dead
# A Redis Cluster moving the shard's slot: MOVED (it moved: follow it), ASK and TRYAGAIN (it
# is moving), CLUSTERDOWN (no master for it yet). Each is "unavailable, try again".
CLUSTER_MOVING = (redis.exceptions.AskError, redis.exceptions.TryAgainError,
                  redis.exceptions.ClusterDownError)
RELOOK_EVERY = 1.0  # seconds between looks for the slot's master after connection errors
STALL_SECONDS = 1.0  # a Redis call that takes longer is a stall (SIGSTOP, a long fork)
STORE_RETRY = 60.0  # seconds a submission whose reply was lost is run again
RETRY_PAUSE = (0.05, 0.5)  # first and longest pause between those runs
TICKET_WAIT = STORE_RETRY + 30.0  # a report waits this long for prior submissions at most


def script_text(name: str) -> str:
    """A script as Redis runs it: lib.lua, then the script, with the names filled in."""
    folder = resources.files("tokengate.gateway.ledger").joinpath("lua")
    body = folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")
    if name != "lease":
        body = folder.joinpath("lib.lua").read_text(encoding="utf-8") + "\n" + body
    return Template(body).substitute(schema.lua_names())


def _reply_code(exc: redis.ResponseError) -> str:
    """An error reply's code ("READONLY"), also when a script's command got it (Redis 6:
    "Error running script ... -NOREPLICAS Not enough good replicas to write.")."""
    text = str(exc)
    code = text.split(" ", 1)[0]
    if code == "Error" and (inner := _SCRIPT_REPLY.search(text)) is not None:
        return inner.group(1)
    return code


def _unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says Redis cannot serve now (down, restarting, loading, stalled, a
    primary demoted, too few replicas for ``min-replicas-to-write``)."""
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, *CLUSTER_MOVING)):
        return True
    return isinstance(exc, redis.ResponseError) and _reply_code(exc) in UNAVAILABLE_REPLIES


def _redis_errors(method: Callable[..., T]) -> Callable[..., T]:
    """A RedisLedger method: Redis's unavailability becomes RedisUnavailable, a fenced
    script :class:`Fenced`, and failures and stalls are noted in ``trouble_at``."""
    @functools.wraps(method)
    def wrapper(self: RedisLedger, *args: Any, **kwargs: Any) -> T:
        began = time.monotonic()
        try:
            return method(self, *args, **kwargs)
        except redis.RedisError as exc:
            if isinstance(exc, redis.ResponseError) and str(exc).startswith("FENCED"):
                self.fenced(str(exc))
                raise Fenced(f"this gateway no longer holds its shard: {exc}") from None
            if not _unavailable(exc):
                raise
            if str(exc).startswith("NOEPOCH") and self.on_no_epoch is not None:
                self.on_no_epoch()
            if isinstance(exc, redis.ResponseError) and _reply_code(exc) in DEMOTED_REPLIES:
                self._conns.drop()  # its next connection asks (Sentinel) for the primary
            self.follow(exc)
            self.errors += 1
            self.trouble_at = time.time()
            raise RedisUnavailable(f"Redis cannot serve now: {exc}") from None
        finally:
            if time.monotonic() - began > STALL_SECONDS:
                self.trouble_at = time.time()
    return wrapper


def _pack(value: Any) -> bytes:
    # Lua's cmsgpack reads raw strings, not the bin type.
    return msgpack.packb(value, use_bin_type=False)


def _unpack(reply: bytes) -> Any:
    """A script's msgpack-packed reply (Lua's cmsgpack writes raw strings)."""
    return msgpack.unpackb(reply, raw=True)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


_STATUS = {int(s): s for s in SubmitStatus}


def _statuses(reply: bytes) -> list[SubmitStatus]:
    status = _STATUS
    return [status[s] for s in _unpack(reply)]


def _start_rows(reports: Sequence[StartReport]) -> bytes:
    """start.lua's rows: one flat array, three values per report."""
    flat: list[Any] = []
    for r in reports:
        flat += (r.token_id, r.attempt, r.at)
    return _pack(flat)


def _complete_rows(outcomes: Sequence[Outcome]) -> bytes:
    """complete.lua's rows: one flat array, four values per outcome."""
    flat: list[Any] = []
    for o in outcomes:
        flat += (o.token_id, o.state.value, o.attempt, o.result)
    return _pack(flat)


def _applied_rows(reply: bytes, outcomes: Sequence[Outcome]) -> list[Applied]:
    """complete.lua's flat reply (code, created, ...) as one Applied per outcome."""
    flat = _unpack(reply)
    if len(flat) != 2 * len(outcomes):
        raise AssertionError(f"complete.lua answered {len(flat)} values for "
                             f"{len(outcomes)} outcomes")
    return [Applied(o.token_id, False) if code == 0 else
            Applied(o.token_id, code == 1, float(created), code == 2)
            for o, code, created in zip(outcomes, flat[::2], flat[1::2], strict=True)]


def _read_script_reply(conn: Any, script: Any, args: list[Any]) -> Any:
    """The reply of a script sent by hand (``args`` as ``RedisLedger._args`` makes them:
    1, the fence's key, then the epoch and the script's own); after a Redis restart (no
    script), run it again."""
    try:
        return conn.read_response()
    except redis.exceptions.NoScriptError:
        return script(keys=args[1:2], args=args[2:])


def _at(url: str, host: str, port: int) -> str:
    """``url`` with another host and port (the same password, database and options)."""
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{auth}@{host}:{port}" if auth else
                                     f"{host}:{port}"))


Node = tuple[str, int]


def _slot_owner(client: redis.Redis, key: str) -> tuple[Node, list[Node]] | None:
    """The master of the Redis Cluster slot of ``key`` and every node of the cluster
    (masters and replicas), from one CLUSTER SLOTS; None if Redis is not a cluster."""
    try:
        if not client.info("cluster").get("cluster_enabled"):
            return None
        slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
        ranges = client.execute_command("CLUSTER", "SLOTS")
    except redis.RedisError as exc:
        if _unavailable(exc):
            raise RedisUnavailable(f"Redis cannot serve now: {exc}") from None
        raise
    def node(entry: Any) -> Node:
        return _text(entry[0]) or "127.0.0.1", int(entry[1])
    nodes = list(dict.fromkeys(node(n) for _, _, *served in ranges for n in served))
    for first, last, master, *_ in ranges:
        if first <= slot <= last:
            return node(master), nodes
    raise RedisUnavailable(f"no Redis Cluster master serves slot {slot} (of {key!r}) now")


def _requeued(reply: list[Any]) -> Requeued:
    failed, perw = reply[0], reply[1]
    return Requeued(
        failed=[LostToken(_text(failed[i]), int(failed[i + 1]), _text(failed[i + 2]))
                for i in range(0, len(failed), 3)],
        requeued={_text(perw[i]): int(perw[i + 1]) for i in range(0, len(perw), 2)})


def _queue(queue: Weight | str) -> str:
    """A queue's name: a bare weight is its own queue."""
    return queue.value if isinstance(queue, Weight) else queue


def _lost_rows(flat: list[Any]) -> list[LostToken]:
    return [LostToken(_text(flat[i]), int(flat[i + 1]), _text(flat[i + 2]))
            for i in range(0, len(flat), 3)]


class _ThreadConns:
    """The Redis connection of the calling thread, made with the client's settings but
    outside its pool: it lives as long as its thread (and closes with it), and a dead one is
    dropped and made anew. Not ``pool.make_connection()``: the pool counts what it makes
    against ``max_connections`` and only a release gives the count back, so every thread
    that ended and every connection dropped in a Redis restart used up one of its hundred
    slots until it refused all ("Too many connections"). Scripts may be pipelined on it
    (``pending`` replies not read yet, in the order they were sent)."""

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self._make = _connection_factory(pool)
        self._local = threading.local()
        self._target = 0  # bumped when the shard's slot moved to another node

    def retarget(self, host: str, port: int) -> None:
        """New connections go to ``host:port``; each thread's current one is dropped before
        its next use (``get``)."""
        self._make = functools.partial(self._make, host=host, port=port)
        self._target += 1

    def pending(self) -> int:
        """Replies sent on this thread's connection and not read yet (pipelined)."""
        return getattr(self._local, "pending", 0)

    def generation(self) -> int:
        """Bumped whenever the connection is dropped: a reply sent before is lost."""
        return getattr(self._local, "generation", 0)

    def sent(self, delta: int) -> None:
        self._local.pending = self.pending() + delta

    def wrote(self) -> None:
        """A script went out on this thread's connection: replicas have not confirmed it."""
        self._local.unconfirmed = True

    def unconfirmed(self) -> tuple[bool, bool]:
        """(whether a connection died holding writes not confirmed, whether the current one
        holds some), both cleared: the caller confirms them now or fails their batch."""
        local = self._local
        lost, held = getattr(local, "lost", False), getattr(local, "unconfirmed", False)
        local.lost = local.unconfirmed = False
        return lost, held

    def get(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "target", 0) != self._target:
            self.drop()  # made for a node that no longer serves the slot
            conn = None
        if conn is None:
            self._local.target = self._target
            conn = self._make()
            # Connected here, as the pool connects what it hands out: a Sentinel-managed
            # connection asks for the primary's address only in connect(); left to the first
            # send, it would connect to its default host instead.
            conn.connect()
            self._local.conn = conn
        return conn

    def fresh(self) -> Any:
        """The connection for a new command: one the server closed meanwhile (it
        restarted), or that holds a reply nobody asked for, is replaced first. A command
        written to a dead connection may or may not have run; this way one sent while Redis
        is down is refused at once, and only one in flight when it dies is in doubt."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            # One redis-py closed (after an error) is stale too: reconnecting by itself, a
            # Sentinel-managed connection would not ask for the primary again.
            try:
                stale = not conn.is_connected or conn.can_read(0)
            except redis.ConnectionError:
                stale = True
            if stale:
                self.drop()
        return self.get()

    def drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if getattr(self._local, "unconfirmed", False):  # WAIT on a new one cannot vouch
            self._local.lost, self._local.unconfirmed = True, False  # for these
        self._local.conn = None
        self._local.pending = 0
        self._local.generation = self.generation() + 1
        if conn is not None:
            conn.disconnect()


def _connection_factory(pool: redis.ConnectionPool) -> Callable[[], Any]:
    """Makes connections as ``pool`` would. A Sentinel pool's connections hold the pool (its
    proxy) and ask it, each time they connect, for the primary's address, which it asks the
    sentinels for: so a connection made after a failover reaches the new primary."""
    kwargs = dict(pool.connection_kwargs)
    if isinstance(pool, SentinelConnectionPool) and \
            issubclass(pool.connection_class, SentinelManagedConnection):
        kwargs.setdefault("connection_pool", getattr(pool, "proxy", None) or
                          weakref.proxy(pool))  # redis-py < 5.1 put no proxy in the kwargs
    return functools.partial(pool.connection_class, **kwargs)


class _Tickets:
    """Submissions sent and not yet answered (ticket -> the thread that reads the answer);
    reports wait for those sent before them by other threads. A thread never waits for its
    own: it reads that answer only after what it does now (a give-back of calls its agent's
    closed link refused, in the middle of an early dispatch, waited on itself)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._open: dict[int, int] = {}
        self._next = 0

    def take(self) -> int:
        with self._changed:
            self._next += 1
            self._open[self._next] = threading.get_ident()
            return self._next

    def done(self, ticket: int) -> None:
        with self._changed:
            self._open.pop(ticket, None)
            self._changed.notify_all()

    def wait_prior(self, timeout: float = TICKET_WAIT) -> bool:
        """Wait until every submission other threads sent before now is answered (True).
        Each is answered or given up within STORE_RETRY; past ``timeout`` a bug left one
        open: say so, and go on (False)."""
        with self._changed:
            if not self._open:
                return True
            horizon, me = self._next, threading.get_ident()

            def clear() -> bool:
                return all(t > horizon or owner == me for t, owner in self._open.items())
            if self._changed.wait_for(clear, timeout):
                return True
            logger.error("a report went ahead of submissions still unanswered after %.0fs "
                         "(tickets %s)", timeout, sorted(self._open)[:5])
            return False


class RedisLedger:
    """Token, queue, agent, drain and audit state in one Redis database."""

    def __init__(self, client: redis.Redis, *,
                 prefix: str = schema.shard_prefix(schema.DEFAULT_PREFIX, schema.DEFAULT_SHARD),
                 result_ttl: int = 600, replicas: int = 0,
                 replica_timeout: float = 1.0, key_ttl: int = 86_400) -> None:
        self.redis = client
        self.prefix = prefix
        self.result_ttl = result_ttl
        self.key_ttl = key_ttl  # a keyed call's hash is kept this long once final
        self.replicas = replicas  # confirm_writes waits for this many (0: it does not wait)
        self.replica_timeout = replica_timeout
        self.epoch = ""  # the fencing epoch this gateway holds (set by the lease)
        self.on_fenced: Callable[[str], None] | None = None  # told once a script is fenced
        self.on_no_epoch: Callable[[], None] | None = None  # told when Redis lost the epoch
        self._fence = [self.key(schema.EPOCH)]
        self.cluster_seeds: list[str] = []  # on a Redis Cluster: nodes to ask for the slot
        self._target_lock = threading.Lock()  # guards retargeting and _looked_at
        self._looked_at = 0.0
        self._scripts = {name: client.register_script(script_text(name)) for name in SCRIPTS}
        self._lease = client.register_script(script_text("lease"))
        self._tickets = _Tickets()
        self._conns = _ThreadConns(client.connection_pool)
        self.errors = 0  # Redis calls that failed (approximate: not under a lock)
        self.trouble_at = 0.0  # when Redis last failed or stalled a call (module docstring)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisLedger:
        """A ledger on ``url``: ``redis://``, ``rediss://``, ``unix://`` or
        ``redis+sentinel://`` (:mod:`.connect`). On a Redis Cluster (``url`` names any
        node), on the master that owns the shard's hash slot: every key of the shard is
        there, so the gateway talks to that node alone, on the same pipelined connections as
        to a single Redis."""
        # A short retry budget: an outage is answered with RedisUnavailable within a second.
        options: dict[str, Any] = dict(
            socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=2, health_check_interval=30,
            retry=Retry(ExponentialBackoff(cap=0.25, base=0.02), retries=3))
        client = client_from_url(url, **options)
        if is_sentinel_url(url):
            return cls(client, **kwargs)
        prefix = kwargs.get("prefix", cls.__init__.__kwdefaults__["prefix"])
        view = _slot_owner(client, prefix + schema.EPOCH)
        if view is None:
            return cls(client, **kwargs)
        owner, nodes = view
        client.close()
        client = redis.Redis.from_url(_at(url, *owner), **options)
        logger.info("Redis Cluster: shard %r is served by %s:%d", prefix, *owner)
        ledger = cls(client, **kwargs)
        ledger.cluster_seeds = [url, *(_at(url, *node) for node in nodes)]
        return ledger

    def follow(self, exc: BaseException) -> None:
        """On a Redis Cluster, follow the shard's slot after ``exc``: to where a MOVED
        says, or, after a connection error, to where the cluster says now."""
        if isinstance(exc, redis.exceptions.MovedError):
            self.retarget(exc.host, int(exc.port))
        elif isinstance(exc, redis.ConnectionError | redis.TimeoutError):
            self.relook()

    def retarget(self, host: str, port: int) -> None:
        """The shard's slot is served by ``host:port`` now (a Redis Cluster moved it, or
        promoted a replica): every connection made from here on goes there, and each
        thread's current one is dropped before its next use."""
        pool = self.redis.connection_pool
        with self._target_lock:
            if (pool.connection_kwargs.get("host"), pool.connection_kwargs.get("port")) == \
                    (host, port):
                return
            pool.connection_kwargs.update(host=host, port=port)
            self._conns.retarget(host, port)
            pool.disconnect()
            pool.reset()  # the pooled connections keep their address: made anew from here
        logger.warning("Redis Cluster: shard %r is served by %s:%d now", self.prefix, host, port)

    def relook(self) -> None:
        """After a connection error on a Redis Cluster: ask the cluster (the first of its
        nodes known at start that answers, at most once a second) which master serves the
        shard's slot now."""
        if not self.cluster_seeds:
            return
        now = time.monotonic()
        with self._target_lock:
            if now - self._looked_at < RELOOK_EVERY:
                return
            self._looked_at = now
        for seed in self.cluster_seeds:
            probe = redis.Redis.from_url(seed, socket_timeout=1, socket_connect_timeout=1)
            try:
                view = _slot_owner(probe, self.key(schema.EPOCH))
            except (redis.RedisError, RedisUnavailable):
                continue
            finally:
                probe.close()
            if view is not None:
                self.retarget(*view[0])  # a no-op if it is where we already are
            return

    def key(self, *parts: str) -> str:
        return self.prefix + "".join(parts)

    def fenced(self, message: str) -> None:
        """A script was refused: another gateway holds this shard's epoch now."""
        logger.critical("fenced: %s", message)
        if self.on_fenced is not None:
            self.on_fenced(message)

    def _args(self, args: list[Any]) -> list[Any]:
        """What goes after EVALSHA's sha: one key (the epoch's: the fence, and the slot a
        Redis Cluster routes by), the epoch held, then the script's own arguments."""
        return [1, *self._fence, self.epoch, *args]

    @_redis_errors
    def confirm_writes(self) -> None:
        """Wait until ``replicas`` replicas hold every write this thread sent since it last
        asked (docs/redis-failover.md); RedisUnavailable if they do not within
        ``replica_timeout``, or if a connection holding such writes died (a WAIT on another
        one cannot vouch for them: after a failover it asks the new primary). A no-op with
        ``replicas`` 0 or nothing sent.

        WAIT counts replicas that acknowledged the offset of the *waiting connection's* last
        write, so a bumped counter goes first: that offset is then the primary's latest,
        covering writes this thread made through the pool too (a script reloaded after
        NOSCRIPT)."""
        if not self.replicas:
            return
        conns = self._conns
        lost, held = conns.unconfirmed()
        if lost:
            raise RedisUnavailable("a Redis connection closed before replicas confirmed its "
                                   "writes: they may be lost in a failover")
        if not held:
            return
        conn = conns.get()  # the connection the writes went out on (dead: the send raises)
        try:
            conn.send_packed_command(conn.pack_commands([
                ("INCR", self.key(schema.REPLICATED)),
                ("WAIT", self.replicas, int(self.replica_timeout * 1000))]))
            conn.read_response()
            acked = int(conn.read_response())
        except BaseException:
            conns.drop()
            raise
        if acked < self.replicas:
            raise RedisUnavailable(f"{acked} of {self.replicas} Redis replicas confirmed the "
                                   f"writes within {self.replica_timeout}s")

    def _run(self, name: str, *args: Any) -> Any:
        """Run a script on this thread's connection; once more on a new one if it was dead
        (a Redis restart). A script that may have run before its reply was lost is sent
        again only if running it twice changes nothing (not ``claim``, not ``kill``)."""
        script = self._scripts[name]
        full = self._args([self.prefix, *args])
        if self._conns.pending():  # replies of pipelined scripts are due first on it: their
            self._conns.drop()     # readers run them again, after this one (a rare path)
        for last in (False, True):
            sent = False
            try:
                self._send(script, full)
                sent = True
                return _read_script_reply(self._conns.get(), script, full)
            except BaseException as exc:
                self._conns.drop()  # it may hold a reply not read: never reuse it
                retry = isinstance(exc, redis.ConnectionError | redis.TimeoutError) and \
                    (not sent or name not in NOT_TWICE)
                if last or not retry:
                    raise
        raise AssertionError("unreachable")

    def _send(self, script: Any, args: list[Any]) -> None:
        """Send a script. Behind replies not read yet the connection is not checked (the
        check would read them as stale); alone, a dead one is replaced first."""
        conns = self._conns
        conn = conns.get() if conns.pending() else conns.fresh()
        conn.send_command("EVALSHA", script.sha, *args)
        conns.wrote()

    def _begin(self, name: str, *args: Any) -> Callable[[], Any]:
        """Send a script behind those this thread sent and has not read yet (one pipeline:
        one write and one read for many scripts); the function that reads its reply. The
        readers must be called in the order the scripts were sent.

        Redis runs a connection's commands in order, so pipelined scripts keep the order
        they were queued in. If the connection dies with replies unread, each reader runs
        its script again on a new connection, in the same order, when running it twice
        changes nothing; ``claim`` and ``kill`` raise instead (they may have run)."""
        script = self._scripts[name]
        full = self._args([self.prefix, *args])
        conns = self._conns
        try:
            self._send(script, full)
        except (redis.ConnectionError, redis.TimeoutError):
            conns.drop()  # nothing of this one went out: its reader sends it, in its turn
            return functools.partial(self._run, name, *args)
        conns.sent(1)
        conn, generation = conns.get(), conns.generation()

        def read() -> Any:
            if conns.generation() != generation:  # the connection died under an earlier one
                if name in NOT_TWICE:
                    raise redis.ConnectionError(f"the reply to {name} was lost")
                return self._run(name, *args)
            try:
                reply = _read_script_reply(conn, script, full)
            except redis.ResponseError:  # an error reply, read whole: the connection is fine
                conns.sent(-1)
                raise
            except BaseException as exc:
                conns.drop()  # it may hold a reply not read: never reuse it
                if isinstance(exc, redis.ConnectionError | redis.TimeoutError) and \
                        name not in NOT_TWICE:
                    return self._run(name, *args)
                raise
            conns.sent(-1)
            return reply
        return read

    def close(self) -> None:
        """Close the client's pooled connections (this thread's own close with it)."""
        self._conns.drop()
        self.redis.close()

    @_redis_errors
    def ping(self) -> bool:
        return bool(self.redis.ping())

    @_redis_errors
    def lease(self, mode: str, record: bytes, ttl: float,
              replaces: bytes = b"") -> tuple[bool, bytes]:
        ok, value = self._lease(keys=[self.key(schema.LEASE), self.key(schema.EPOCH),
                                      self.key(schema.WANTED)],
                                args=[mode, record, int(ttl * 1000), replaces])
        value = value if isinstance(value, bytes) else b""
        if ok and mode != "release":
            self.epoch = value.decode()
            return True, b""
        return bool(ok), value

    # -- hot path -------------------------------------------------------------------------

    @staticmethod
    def _rows(tokens: Sequence[NewToken]) -> bytes:
        """submit.lua's rows, one flat array: per run of tokens of one owner and session (a
        frame is one), the owner, the session, the count, then seven values per token (the
        third is the queue it would wait in, which the route field starts with too; the
        last the digest of a keyed call, or "")."""
        # Weight and TokenState members are str: msgpack packs them as their values.
        flat: list[Any] = []
        owner = session = None
        head = 0
        for t in tokens:
            if t.owner != owner or t.session != session:
                owner, session, head = t.owner, t.session, len(flat) + 2
                flat += (owner, session, 0)
            flat[head] += 1
            queue = t.queue or t.weight.value
            flat += (t.token_id, f"{queue}\t{session}\t{t.task}", queue,
                     1 if t.idempotent else 0, t.item, t.agent, t.key)
        return _pack(flat)

    @_redis_errors
    def submit(self, tokens: Sequence[NewToken]) -> list[SubmitStatus]:
        return _statuses(self._run("submit", time.time(), self._rows(tokens), self.key_ttl))

    @_redis_errors
    def submit_begin(self, tokens: Sequence[NewToken], forget: Sequence[str] = (),
                     ) -> Callable[[], list[SubmitStatus]]:
        """Send the submit script now (and ``forget`` for results the client received,
        behind it), behind whatever this thread sent and has not read yet (see ``_begin``);
        the returned function reads the replies. Raises if the script could not be sent
        at all: then nothing was stored.

        What the caller does in between (dispatching) overlaps the Redis round trip. Reports
        on these tokens wait (``_Tickets``) until the reply has been read.
        """
        submit, drop = self._scripts["submit"], self._scripts["forget"]
        args = self._args([self.prefix, time.time(), self._rows(tokens), self.key_ttl])
        owner = tokens[0].owner if tokens else ""
        drop_args = self._args([self.prefix, _pack(list(forget)), owner]) if forget else None
        conns = self._conns
        try:
            self._send(submit, args)
        except (redis.ConnectionError, redis.TimeoutError):
            # Dead (a Redis restart): replies sent before on it are lost, and their readers
            # run those scripts again; this one goes once more, on a new connection.
            conns.drop()
            self._send(submit, args)
        conns.sent(1)
        conn, generation = conns.get(), conns.generation()
        if drop_args is not None:
            try:
                self._send(drop, drop_args)
                conns.sent(1)
            except (redis.ConnectionError, redis.TimeoutError):
                drop_args = None  # the receipts expire at their TTL; the reader sees it dead
        ticket = self._tickets.take()
        return functools.partial(self._finish_submit, ticket, args, drop_args, conn,
                                 generation)

    @_redis_errors
    def _finish_submit(self, ticket: int, args: list[Any], drop_args: list[Any] | None,
                       conn: Any, generation: int) -> list[SubmitStatus]:
        """Read what ``submit_begin`` sent; if the reply is lost, run the script again."""
        submit, drop = self._scripts["submit"], self._scripts["forget"]
        conns = self._conns
        try:
            try:
                if conns.generation() != generation:
                    raise redis.ConnectionError("the connection died under an earlier script")
                reply = _read_script_reply(conn, submit, args)
                conns.sent(-1)
            except BaseException as exc:  # it may hold a reply not read: never reuse it
                conns.drop()
                if not _unavailable(exc):
                    raise
                logger.warning("the reply to a submission was lost (%s): running it again",
                               exc)
                return _statuses(self._submit_again(args))
            try:
                if drop_args is not None:
                    _read_script_reply(conn, drop, drop_args)
                    conns.sent(-1)
            except redis.ResponseError as exc:
                conns.sent(-1)
                logger.warning("received results not dropped now: %s", exc)
            except (redis.RedisError, OSError) as exc:  # the receipts expire at their TTL
                conns.drop()
                logger.warning("received results not dropped now: %s", exc)
            return _statuses(reply)
        finally:
            self._tickets.done(ticket)

    def _submit_again(self, args: list[Any]) -> Any:
        """Run a submission again until Redis answers, for up to STORE_RETRY seconds."""
        deadline = time.monotonic() + STORE_RETRY
        pause, longest = RETRY_PAUSE
        while True:
            try:
                return self._run("submit", *args[4:])  # after 1, key, epoch, prefix
            except redis.RedisError as exc:
                if not _unavailable(exc) or time.monotonic() + pause > deadline:
                    raise
                self.follow(exc)
                self.trouble_at = time.time()
            time.sleep(pause)  # Redis is away: nothing to wait on but time
            pause = min(longest, pause * 2)

    @_redis_errors
    def claim(self, queue: Weight | str, count: int, agent: str, budget: int,
              ) -> list[Claimed]:
        return self.claim_begin(queue, count, agent, budget)()

    @_redis_errors
    def claim_begin(self, queue: Weight | str, count: int, agent: str, budget: int,
                    ) -> Callable[[], list[Claimed]]:
        read = self._begin("claim", _queue(queue), count, agent, budget)
        return functools.partial(self._claimed, read)

    @_redis_errors
    def _claimed(self, read: Callable[[], Any]) -> list[Claimed]:
        flat = _unpack(read())
        return [Claimed(flat[i].decode(), int(flat[i + 1]), flat[i + 2])
                for i in range(0, len(flat), 3)]

    @_redis_errors
    def start(self, agent: str, reports: Sequence[StartReport]) -> int:
        return self.start_begin(agent, reports)()

    @_redis_errors
    def start_begin(self, agent: str, reports: Sequence[StartReport]) -> Callable[[], int]:
        self._tickets.wait_prior()
        read = self._begin("start", agent, _start_rows(reports))
        return functools.partial(self._started, read)

    @_redis_errors
    def _started(self, read: Callable[[], Any]) -> int:
        return int(read())

    @_redis_errors
    def complete(self, agent: str, outcomes: Sequence[Outcome]) -> list[Applied]:
        return self.complete_begin(agent, outcomes)()

    @_redis_errors
    def complete_begin(self, agent: str, outcomes: Sequence[Outcome],
                       ) -> Callable[[], list[Applied]]:
        self._tickets.wait_prior()
        read = self._begin("complete", agent, self.result_ttl, _complete_rows(outcomes))
        return functools.partial(self._applied, read, outcomes)

    @_redis_errors
    def _applied(self, read: Callable[[], Any], outcomes: Sequence[Outcome]) -> list[Applied]:
        return _applied_rows(read(), outcomes)

    @_redis_errors
    def give_back(self, agent: str, ids: Sequence[str], policy: LossPolicy,
                  returned: bool = False) -> Requeued:
        """Tokens placed on ``agent`` that never reached it (or, ``returned``, that it never
        started and gave back as it left): back with the same attempt."""
        if not ids:
            return Requeued()
        self._tickets.wait_prior()
        mode = "returned" if returned else "transit"
        return _requeued(self._run("requeue", agent, mode, policy.max_attempts,
                                   policy.ttl, policy.message, time.time(),
                                   _pack(list(ids)), "0"))

    @_redis_errors
    def lose(self, agent: str, policy: LossPolicy) -> Requeued:
        """``agent`` is lost: deregister it and give back all it held, as after a loss."""
        self._tickets.wait_prior()
        return _requeued(self._run("requeue", agent, "lost", policy.max_attempts, policy.ttl,
                                   policy.message, time.time(), "", "1"))

    @_redis_errors
    def join(self, agent: str, incarnation: str, held: Sequence[str], record: dict[str, Any],
             rules: Sequence[TaskRule], policy: LossPolicy) -> Adoption:
        self._tickets.wait_prior()
        revoked, failed, perw, restarted = self._run(
            "join", agent, incarnation, _pack(list(held)),
            _pack({**record, "incarnation": incarnation}), time.time(), policy.max_attempts,
            policy.ttl, policy.message, _pack([[r.name, "1" if r.idempotent else "0"]
                                               for r in rules]))
        return Adoption(revoked=[_text(i) for i in revoked],
                        requeue=_requeued([failed, perw]), restarted=bool(restarted))

    @_redis_errors
    def kill(self, token_id: str, message: str) -> tuple[KillOutcome, str]:
        outcome, agent = self._run("kill", token_id, self.result_ttl, message, time.time())
        return KillOutcome(_text(outcome)), _text(agent)

    @_redis_errors
    def expire(self, queue: Weight | str, cutoff: float, message: str,
               limit: int = EXPIRE_BATCH) -> list[LostToken]:
        """Fail (PlacementTimeout) the tokens of ``queue`` created at or before ``cutoff``,
        among the first ``limit``; the gateway calls it for queues no live agent serves."""
        return _lost_rows(_unpack(self._run("expire", _queue(queue), cutoff, message,
                                            self.result_ttl, time.time(), limit)))

    @_redis_errors
    def forget(self, ids: Sequence[str], owner: str) -> int:
        """Delete the final tokens among ``ids`` that ``owner`` submitted."""
        return int(self._run("forget", _pack(list(ids)), owner))

    # -- reads ----------------------------------------------------------------------------

    @_redis_errors
    def records(self, ids: Sequence[str]) -> list[TokenRecord | None]:
        pipe = self.redis.pipeline(transaction=False)
        for token_id in ids:
            pipe.hgetall(self.key(schema.TOKEN, token_id))
        return [TokenRecord.parse(token_id, {k.decode(): v for k, v in raw.items()})
                for token_id, raw in zip(ids, pipe.execute(), strict=True)]

    @_redis_errors
    def queues(self) -> dict[str, int]:
        """Tokens waiting per queue (each weight's bare queue always; others while they
        hold any)."""
        names = [w.value for w in schema.WEIGHTS]
        names += sorted(_text(n) for n in self.redis.smembers(self.key(schema.QUEUES))
                        if _text(n) not in names)
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.llen(self.key(schema.QUEUE, name))
        return dict(zip(names, pipe.execute(), strict=True))

    def queue_lengths(self) -> dict[Weight, int]:
        """Tokens waiting per weight, over all its queues."""
        return schema.per_weight(self.queues())

    @_redis_errors
    def inflight_ids(self, agent: str) -> set[str]:
        return {m.decode() for m in self.redis.smembers(self.key(schema.INFLIGHT, agent))}

    @_redis_errors
    def inflight_counts(self, agents: Sequence[str]) -> dict[str, int]:
        pipe = self.redis.pipeline(transaction=False)
        for agent in agents:
            pipe.scard(self.key(schema.INFLIGHT, agent))
        return dict(zip(agents, pipe.execute(), strict=True))

    @_redis_errors
    def counts(self) -> dict[str, int]:
        raw = self.redis.hgetall(self.key(schema.COUNTS))
        out = dict.fromkeys(schema.COUNTERS, 0)
        out.update({k.decode(): int(v) for k, v in raw.items()})
        return out

    @_redis_errors
    def executing_counts(self, agents: Sequence[str]) -> tuple[int, dict[str, int]]:
        gauge = TokenState.EXECUTING.value  # the field lib.lua's executing_changed keeps
        fields = [gauge, *(f"{gauge}@{a}" for a in agents)]
        total, *values = (max(0, int(v or 0)) for v in
                          self.redis.hmget(self.key(schema.GAUGES), fields))
        return total, dict(zip(agents, values, strict=True))

    @_redis_errors
    def memory_bytes(self) -> int:
        return int(self.redis.info("memory").get("used_memory", 0))

    # -- agents, tasks ---------------------------------------------------------------------

    @_redis_errors
    def agents(self) -> dict[str, dict[str, Any]]:
        raw = self.redis.hgetall(self.key(schema.AGENTS))
        return {k.decode(): msgpack.unpackb(v, raw=False) for k, v in raw.items()}

    @_redis_errors
    def touch_agents(self, seen: dict[str, float]) -> None:
        """Heartbeats of registered agents (a name deregistered meanwhile stays out)."""
        if seen:
            self.redis.zadd(self.key(schema.SEEN), seen, xx=True)

    @_redis_errors
    def last_seen(self) -> dict[str, float]:
        return {k.decode(): v for k, v in self.redis.zrange(self.key(schema.SEEN), 0, -1,
                                                            withscores=True)}

    @_redis_errors
    def task_rules(self) -> dict[str, bool]:
        raw = self.redis.hgetall(self.key(schema.TASKS))
        return {k.decode(): v == b"1" for k, v in raw.items()}

    # -- drain, audit ----------------------------------------------------------------------

    @_redis_errors
    def set_drain(self, node: str, reason: str) -> None:
        if node:
            self.redis.hset(self.key(schema.NODE_DRAIN), node, reason)
        else:
            self.redis.hset(self.key(schema.DRAIN), mapping={"reason": reason,
                                                             "since": time.time()})

    @_redis_errors
    def clear_drain(self, node: str) -> None:
        if node:
            self.redis.hdel(self.key(schema.NODE_DRAIN), node)
        else:
            self.redis.delete(self.key(schema.DRAIN))

    @_redis_errors
    def drain_state(self) -> DrainState:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.key(schema.DRAIN))
        pipe.hgetall(self.key(schema.NODE_DRAIN))
        cluster, nodes = pipe.execute()
        return DrainState(
            cluster=cluster[b"reason"].decode() if b"reason" in cluster else None,
            since=float(cluster.get(b"since", 0.0)),
            nodes={k.decode(): v.decode() for k, v in nodes.items()})

    @_redis_errors
    def audit(self, entry: AuditEntry) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.lpush(self.key(schema.AUDIT), msgpack.packb(
            [entry.at, entry.actor, entry.action, entry.target, entry.ok, entry.result]))
        pipe.ltrim(self.key(schema.AUDIT), 0, AUDIT_KEEP - 1)
        pipe.execute()

    @_redis_errors
    def audit_log(self, limit: int) -> list[AuditEntry]:
        raw = self.redis.lrange(self.key(schema.AUDIT), 0, max(0, limit - 1))
        return [AuditEntry(*msgpack.unpackb(blob, raw=False)) for blob in reversed(raw)]
