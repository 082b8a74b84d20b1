"""The ordering barrier of RedisLedger: reports wait for the submissions other threads sent
before them, never for the caller's own (pure logic: threads and a condition, no Redis)."""

from __future__ import annotations

import threading

from tokengate.gateway.ledger.redis_ledger import _Tickets


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
    assert tickets.wait_prior(timeout=0.05) is False, "it must not go ahead of it"
    release.set()
    assert tickets.wait_prior(timeout=10) is True
    thread.join(10)


def test_a_thread_never_waits_for_its_own_submission():
    """Admission sends calls to agents while its submission is in flight, and gives back those
    a closed link refused: that give-back waited (90 s) on its own thread's ticket, holding
    up every agent's reports behind it."""
    tickets = _Tickets()
    mine = tickets.take()
    assert tickets.wait_prior(timeout=0.05) is True
    later: list[bool] = []
    other = threading.Thread(target=lambda: later.append(tickets.wait_prior(timeout=0.05)))
    other.start()
    other.join(10)
    assert later == [False], "another thread still waits for it"
    tickets.done(mine)
    assert tickets.wait_prior(timeout=0.05) is True


def test_submissions_taken_after_the_report_do_not_hold_it_up():
    tickets = _Tickets()
    release = threading.Event()
    started = threading.Event()
    results: list[bool] = []

    def reporter() -> None:
        started.set()
        results.append(tickets.wait_prior(timeout=10))

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
