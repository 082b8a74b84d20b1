"""The mailboxes' run accounting (node_agent.accounting): the pure expiry decision as a table,
and the owner's counters after every order in which a worker and the watchdog can report."""

import pytest
from tokengate.node_agent.accounting import Accounts, Expiry, decide_expiry


@pytest.mark.parametrize(("abandoned", "outermost", "owes", "expected"), [
    # first expiry on a worker: abandon it; an inline call leaves the outermost one owed
    (False, True, False, Expiry(abandon=True, close_outer=True, owes=False)),
    (False, False, False, Expiry(abandon=True, close_outer=False, owes=True)),
    # later expiries: the owed outermost token closes when it expires in turn
    (True, True, True, Expiry(abandon=False, close_outer=True, owes=False)),
    (True, True, False, Expiry(abandon=False, close_outer=False, owes=False)),
    (True, False, True, Expiry(abandon=False, close_outer=False, owes=True)),
    (True, False, False, Expiry(abandon=False, close_outer=False, owes=False)),
])
def test_decide_expiry(abandoned, outermost, owes, expected):
    assert decide_expiry(abandoned=abandoned, outermost=outermost, owes=owes) == expected


class Box:
    busy = 0
    started_at = 0.0
    finished = 0


class Worker:
    abandoned = False


def test_the_serving_worker_events_write_the_run_counters():
    accounts, box = Accounts(), Box()
    accounts.took(box)
    assert (box.busy, box.started_at, box.finished) == (1, 0.0, 0)
    accounts.started(box)
    assert box.busy == 1 and box.started_at > 0
    accounts.finished(box)
    assert (box.busy, box.started_at, box.finished) == (0, 0.0, 1)
    accounts.took(box)
    accounts.finished(box)  # a token it could not claim: done with it all the same
    assert (box.busy, box.started_at, box.finished) == (0, 0.0, 2)


def _expire(accounts, box, worker, outermost):
    expiry = accounts.expired(worker, outermost)
    accounts.close_expired(box, abandon=expiry.abandon, close_outer=expiry.close_outer)
    return expiry


# Each story: the events after a worker took and claimed its outermost token, in order.
# "inline" / "outer": that call's time limit expires; "returns": the outermost call returns.
STORIES = {
    "the outermost call expires, then returns": ["outer", "returns"],
    "an inline call expires, then the outermost returns": ["inline", "returns"],
    "an inline call expires, then the outermost expires": ["inline", "outer", "returns"],
    "two inline calls expire, then the outermost returns": ["inline", "inline", "returns"],
    "an inline call expires, the outermost returns, a stale expiry": ["inline", "returns",
                                                                      "outer"],
}


@pytest.mark.parametrize("story", STORIES.values(), ids=list(STORIES))
def test_an_abandoned_workers_outermost_token_closes_exactly_once(story):
    accounts, box, worker = Accounts(), Box(), Worker()
    accounts.took(box)
    accounts.started(box)
    abandons = 0
    for event in story:
        if event == "returns":
            accounts.returned_late(worker)
        else:
            abandons += _expire(accounts, box, worker, outermost=event == "outer").abandon
        assert worker.abandoned
        assert (box.busy, box.started_at) == (0, 0.0)  # handed over at the first expiry
    assert abandons == 1
    assert box.finished + accounts.late_finished == 1
    assert accounts.owed() == 0


def test_an_owed_token_counts_until_it_closes():
    accounts, box, worker = Accounts(), Box(), Worker()
    accounts.took(box)
    accounts.started(box)
    _expire(accounts, box, worker, outermost=False)
    assert accounts.owed() == 1 and box.finished == 0 and accounts.late_finished == 0
    assert accounts.returned_late(worker)
    assert not accounts.returned_late(worker)
    assert accounts.owed() == 0 and accounts.late_finished == 1


def test_workers_owe_independently():
    accounts, box = Accounts(), Box()
    workers = [Worker() for _ in range(3)]
    for worker in workers:
        _expire(accounts, box, worker, outermost=False)
    assert accounts.owed() == 3
    for done, worker in enumerate(workers, 1):
        _expire(accounts, box, worker, outermost=True)
        assert accounts.owed() == 3 - done
    assert accounts.late_finished == 3


def test_a_return_between_the_expiry_decision_and_its_close_counts_once():
    """The watchdog decides an expiry under its lock (before the worker's release can fail)
    and closes it afterwards on its thread; the worker's late return may come in between."""
    accounts, box, worker = Accounts(), Box(), Worker()
    _expire(accounts, box, worker, outermost=False)
    expiry = accounts.expired(worker, outermost=True)  # the outermost call's deadline
    assert not accounts.returned_late(worker)         # its release failed; it returns
    accounts.close_expired(box, abandon=expiry.abandon, close_outer=expiry.close_outer)
    assert (box.finished, accounts.late_finished, accounts.owed()) == (0, 1, 0)
