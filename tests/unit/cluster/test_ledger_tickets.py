"""The ordering barrier of RedisLedger: reports wait for the submissions other threads sent
before them, never for the caller's own, and fail loudly (OrderingTimeout, and a log line)
rather than go ahead of one still unanswered (pure logic: threads and a condition, no
Redis)."""

from __future__ import annotations

import logging
import threading

import pytest
from tokengate.gateway.ledger.tickets import Tickets as _Tickets
from tokengate.shared.errors import OrderingTimeout, TokenGateError


def test_a_report_waits_for_a_submission_another_thread_sent_before_it():
    tickets = _Tickets()
    taken, release = threading.Event(), threading.Event()

    def submitter() -> None:
        ticket = tickets.take()
        taken.set()
        release.wait(10)
        tickets.done(ticket)

    thread = threading.Thread(target=submitter)
    thread.start()
    taken.wait(10)
    with pytest.raises(OrderingTimeout, match="1 earlier submission"):
        tickets.wait_prior(timeout=0.05)  # it must not go ahead of it
    release.set()
    tickets.wait_prior(timeout=10)
    thread.join(10)


def test_a_report_past_its_wait_fails_loudly_with_a_log_line(caplog):
    """The barrier used to log and let the report go ahead after its timeout; it raises a
    TokenGateError now, and says which tickets held it up."""
    tickets = _Tickets()
    stuck = threading.Thread(target=tickets.take)  # a submission whose reader never answers
    stuck.start()
    stuck.join(10)
    with caplog.at_level(logging.ERROR, logger="tokengate.gateway.ledger.tickets"), \
            pytest.raises(TokenGateError) as caught:
        tickets.wait_prior(timeout=0.05)
    assert isinstance(caught.value, OrderingTimeout) and "tickets [1]" in str(caught.value)
    assert any("unanswered (tickets [1])" in r.getMessage() for r in caplog.records)


def test_a_thread_never_waits_for_its_own_submission():
    """Admission sends calls to agents while its submission is in flight, and gives back those
    a closed link refused: that give-back waited (90 s) on its own thread's ticket, holding
    up every agent's reports behind it."""
    tickets = _Tickets()
    mine = tickets.take()
    tickets.wait_prior(timeout=0.05)  # returns at once: its own ticket holds it up not
    later: list[type[BaseException] | None] = []

    def report() -> None:
        try:
            tickets.wait_prior(timeout=0.05)
            later.append(None)
        except OrderingTimeout as exc:
            later.append(type(exc))
    other = threading.Thread(target=report)
    other.start()
    other.join(10)
    assert later == [OrderingTimeout], "another thread still waits for it"
    tickets.done(mine)
    tickets.wait_prior(timeout=0.05)


def test_submissions_taken_after_the_report_do_not_hold_it_up():
    tickets = _Tickets()
    release = threading.Event()
    started = threading.Event()
    results: list[bool] = []

    def reporter() -> None:
        started.set()
        tickets.wait_prior(timeout=10)
        results.append(True)

    first = tickets.take()
    thread = threading.Thread(target=reporter)
    thread.start()
    started.wait(10)
    later = threading.Thread(target=lambda: (tickets.take(), release.wait(10)))
    later.start()
    tickets.done(first)
    thread.join(10)
    release.set()
    later.join(10)
    assert results == [True]
