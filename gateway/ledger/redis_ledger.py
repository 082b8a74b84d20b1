"""The ledger in Redis: one Lua script call per batch on the hot path.

The module's parts: :mod:`.scripts` (the scripts' text, with the state table's prelude),
:mod:`.codec` (their rows and replies), :mod:`.edge` (Redis errors to TokenGate's),
:mod:`.conns` (each thread's connection), :mod:`.tickets` (the ordering barrier),
:mod:`.redis_core` (client, scripts, slot following) and :mod:`.reads`; here, the steps
that run scripts, and how a script goes out and its reply comes back.

Ordering: ``submit_begin`` lets the gateway dispatch new calls while their ``submit`` script
is in flight; every report (``start``, ``complete``) and give-back first waits for the
submissions other threads sent before it (:class:`~.tickets.Tickets`).

A submission whose reply is lost (Redis restarted or stalled past the socket timeout) may or
may not have been stored, and its calls may be on their way to agents already. Its script is
run again, on a new connection, until Redis answers (for up to ``STORE_RETRY`` seconds), with
its ticket held: ``submit.lua`` answers a call it stored on the first run as it did then, so
the gateway learns what happened to each. Reports wait meanwhile, as they wait for any
submission sent before them.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from tokengate.gateway.ledger import codec, schema
from tokengate.gateway.ledger.base import EXPIRE_BATCH, LossPolicy
from tokengate.gateway.ledger.connect import client_from_url, is_sentinel_url
from tokengate.gateway.ledger.edge import redis_errors, unavailable
from tokengate.gateway.ledger.reads import RedisReads
from tokengate.gateway.ledger.redis_core import DEFAULT_PREFIX
from tokengate.gateway.ledger.rows import (
    Adoption,
    Applied,
    Claimed,
    KillOutcome,
    LostToken,
    NewToken,
    Outcome,
    Requeued,
    StartReport,
    SubmitStatus,
    TaskRule,
)
from tokengate.gateway.ledger.scripts import read_script_reply, script_text
from tokengate.gateway.ledger.slots import at, slot_owner
from tokengate.gateway.ledger.tickets import STORE_RETRY
from tokengate.shared.errors import RedisUnavailable
from tokengate.shared.tags import Weight

__all__ = ["RedisLedger", "script_text"]

logger = logging.getLogger(__name__)

NOT_TWICE = frozenset({"claim", "kill", "expire"})  # a second run of these would not be a no-op
SOCKET_TIMEOUT = 10.0  # seconds a reply may take before the connection counts as dead
RETRY_PAUSE = (0.05, 0.5)  # first and longest pause between those runs


class RedisLedger(RedisReads):
    """Token, queue, agent, drain and audit state in one Redis database."""

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
        prefix = kwargs.get("prefix", DEFAULT_PREFIX)
        view = slot_owner(client, prefix + schema.EPOCH)
        if view is None:
            return cls(client, **kwargs)
        owner, nodes = view
        client.close()
        client = redis.Redis.from_url(at(url, *owner), **options)
        logger.info("Redis Cluster: shard %r is served by %s:%d", prefix, *owner)
        ledger = cls(client, **kwargs)
        ledger.cluster_seeds = [url, *(at(url, *node) for node in nodes)]
        return ledger

    def _args(self, args: list[Any]) -> list[Any]:
        """What goes after EVALSHA's sha: one key (the epoch's: the fence, and the slot a
        Redis Cluster routes by), the epoch held, then the script's own arguments."""
        return [1, *self._fence, self.epoch, *args]

    @redis_errors
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
                return read_script_reply(self._conns.get(), script, full)
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
                reply = read_script_reply(conn, script, full)
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


    @redis_errors
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


    @redis_errors
    def submit(self, tokens: Sequence[NewToken]) -> list[SubmitStatus]:
        rows = codec.submit_rows(tokens)
        return codec.statuses(self._run("submit", time.time(), rows, self.key_ttl))

    @redis_errors
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
        args = self._args([self.prefix, time.time(), codec.submit_rows(tokens), self.key_ttl])
        owner = tokens[0].owner if tokens else ""
        drop_args = self._args([self.prefix, codec.pack(list(forget)), owner]) if forget else None
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

    @redis_errors
    def _finish_submit(self, ticket: int, args: list[Any], drop_args: list[Any] | None,
                       conn: Any, generation: int) -> list[SubmitStatus]:
        """Read what ``submit_begin`` sent; if the reply is lost, run the script again."""
        submit, drop = self._scripts["submit"], self._scripts["forget"]
        conns = self._conns
        try:
            try:
                if conns.generation() != generation:
                    raise redis.ConnectionError("the connection died under an earlier script")
                reply = read_script_reply(conn, submit, args)
                conns.sent(-1)
            except BaseException as exc:  # it may hold a reply not read: never reuse it
                conns.drop()
                if not unavailable(exc):
                    raise
                logger.warning("the reply to a submission was lost (%s): running it again",
                               exc)
                return codec.statuses(self._submit_again(args))
            try:
                if drop_args is not None:
                    read_script_reply(conn, drop, drop_args)
                    conns.sent(-1)
            except redis.ResponseError as exc:
                conns.sent(-1)
                logger.warning("received results not dropped now: %s", exc)
            except (redis.RedisError, OSError) as exc:  # the receipts expire at their TTL
                conns.drop()
                logger.warning("received results not dropped now: %s", exc)
            return codec.statuses(reply)
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
                if not unavailable(exc) or time.monotonic() + pause > deadline:
                    raise
                self.follow(exc)
                self.trouble_at = time.time()
            time.sleep(pause)  # Redis is away: nothing to wait on but time
            pause = min(longest, pause * 2)

    @redis_errors
    def claim(self, queue: Weight | str, count: int, agent: str, budget: int,
              ) -> list[Claimed]:
        return self.claim_begin(queue, count, agent, budget)()

    @redis_errors
    def claim_begin(self, queue: Weight | str, count: int, agent: str, budget: int,
                    ) -> Callable[[], list[Claimed]]:
        read = self._begin("claim", codec.queue_name(queue), count, agent, budget)
        return functools.partial(self._claimed, read)

    @redis_errors
    def _claimed(self, read: Callable[[], Any]) -> list[Claimed]:
        return codec.claimed_rows(read())

    @redis_errors
    def start(self, agent: str, reports: Sequence[StartReport]) -> int:
        return self.start_begin(agent, reports)()

    @redis_errors
    def start_begin(self, agent: str, reports: Sequence[StartReport]) -> Callable[[], int]:
        self._tickets.wait_prior()
        read = self._begin("start", agent, codec.start_rows(reports))
        return functools.partial(self._started, read)

    @redis_errors
    def _started(self, read: Callable[[], Any]) -> int:
        return int(read())

    @redis_errors
    def complete(self, agent: str, outcomes: Sequence[Outcome]) -> list[Applied]:
        return self.complete_begin(agent, outcomes)()

    @redis_errors
    def complete_begin(self, agent: str, outcomes: Sequence[Outcome],
                       ) -> Callable[[], list[Applied]]:
        self._tickets.wait_prior()
        read = self._begin("complete", agent, self.result_ttl, codec.complete_rows(outcomes))
        return functools.partial(self._applied, read, outcomes)

    @redis_errors
    def _applied(self, read: Callable[[], Any], outcomes: Sequence[Outcome]) -> list[Applied]:
        return codec.applied_rows(read(), outcomes)

    @redis_errors
    def give_back(self, agent: str, ids: Sequence[str], policy: LossPolicy,
                  returned: bool = False) -> Requeued:
        """Tokens placed on ``agent`` that never reached it (or, ``returned``, that it never
        started and gave back as it left): back with the same attempt."""
        if not ids:
            return Requeued()
        self._tickets.wait_prior()
        mode = "returned" if returned else "transit"
        return codec.requeued(self._run("requeue", agent, mode, policy.max_attempts,
                                   policy.ttl, policy.message, time.time(),
                                   codec.pack(list(ids)), "0"))

    @redis_errors
    def lose(self, agent: str, policy: LossPolicy) -> Requeued:
        """``agent`` is lost: deregister it and give back all it held, as after a loss."""
        self._tickets.wait_prior()
        return codec.requeued(self._run("requeue", agent, "lost", policy.max_attempts, policy.ttl,
                                   policy.message, time.time(), "", "1"))

    @redis_errors
    def join(self, agent: str, incarnation: str, held: Sequence[str], record: dict[str, Any],
             rules: Sequence[TaskRule], policy: LossPolicy) -> Adoption:
        self._tickets.wait_prior()
        revoked, failed, perw, restarted = self._run(
            "join", agent, incarnation, codec.pack(list(held)),
            codec.pack({**record, "incarnation": incarnation}), time.time(), policy.max_attempts,
            policy.ttl, policy.message, codec.pack([[r.name, "1" if r.idempotent else "0"]
                                               for r in rules]))
        return Adoption(revoked=[codec.text(i) for i in revoked],
                        requeue=codec.requeued([failed, perw]), restarted=bool(restarted))

    @redis_errors
    def kill(self, token_id: str, message: str) -> tuple[KillOutcome, str]:
        outcome, agent = self._run("kill", token_id, self.result_ttl, message, time.time())
        return KillOutcome(codec.text(outcome)), codec.text(agent)

    @redis_errors
    def expire(self, queue: Weight | str, cutoff: float, message: str,
               limit: int = EXPIRE_BATCH) -> list[LostToken]:
        """Fail (PlacementTimeout) the tokens of ``queue`` created at or before ``cutoff``,
        among the first ``limit``; the gateway calls it for queues no live agent serves."""
        reply = self._run("expire", codec.queue_name(queue), cutoff, message, self.result_ttl,
                          time.time(), limit)
        return codec.lost_rows(codec.unpack(reply))

    @redis_errors
    def forget(self, ids: Sequence[str], owner: str) -> int:
        """Delete the final tokens among ``ids`` that ``owner`` submitted."""
        return int(self._run("forget", codec.pack(list(ids)), owner))

    # -- reads ----------------------------------------------------------------------------

