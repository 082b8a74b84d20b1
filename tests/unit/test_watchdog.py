"""The watchdog's decisions: each watch is released in time or expired, exactly once, and an
abandoned worker's outermost token is accounted for exactly once."""

import queue
import threading
import time

from tokengate.node_agent.accounting import Accounts
from tokengate.node_agent.watchdog import Watchdog


class FakeWorker:
    """What the watchdog reads and writes on a worker: only its ``abandoned`` flag."""

    abandoned = False


def recording_watchdog():
    """A watchdog recording its expiries, and the accounts its decisions go to."""
    expired: queue.SimpleQueue = queue.SimpleQueue()
    accounts = Accounts()
    dog = Watchdog("test-watchdog", lambda watch, abandon, close: expired.put(
        (watch.token, abandon, close)), accounts)
    return dog, expired, accounts


def test_a_call_released_in_time_never_expires():
    dog, expired, _ = recording_watchdog()
    worker = FakeWorker()
    watch = dog.watch("t1", worker, 0.05, time.monotonic() + 0.05, outermost=True)
    assert len(dog) == 1
    assert dog.release(watch)
    assert len(dog) == 0
    # A later watch expiring proves the thread went past the released one's deadline.
    dog.watch("t2", worker, 0.1, time.monotonic() + 0.1, outermost=True)
    assert expired.get(timeout=5) == ("t2", True, True)
    assert expired.empty()
    assert worker.abandoned


def test_expiry_comes_at_the_deadline_and_the_late_release_is_refused():
    dog, expired, accounts = recording_watchdog()
    worker = FakeWorker()
    began = time.monotonic()
    watch = dog.watch("slow", worker, 0.2, began + 0.2, outermost=True)
    assert expired.get(timeout=5) == ("slow", True, True)
    assert 0.19 <= time.monotonic() - began < 1.0
    assert not dog.release(watch)  # the worker must drop the call's outcome
    assert accounts.owed() == 0
    assert not accounts.returned_late(worker)  # the outermost token was closed by the expiry


def test_watches_expire_in_deadline_order_and_only_the_first_abandons():
    dog, expired, accounts = recording_watchdog()
    worker = FakeWorker()
    now = time.monotonic()
    dog.watch("later", worker, 0.15, now + 0.15, outermost=True)
    dog.watch("first", worker, 0.05, now + 0.05, outermost=False)
    assert expired.get(timeout=5) == ("first", True, False)  # inline: the outer one runs on
    assert accounts.owed() == 1
    assert expired.get(timeout=5) == ("later", False, True)  # the owed outer one, closed now
    assert accounts.owed() == 0
    assert not accounts.returned_late(worker)


def test_an_abandoned_worker_settles_its_outer_token_once():
    dog, expired, accounts = recording_watchdog()
    worker = FakeWorker()
    dog.watch("inline", worker, 0.05, time.monotonic() + 0.05, outermost=False)
    assert expired.get(timeout=5) == ("inline", True, False)
    # the outer token returned: its accounting is closed now, and only once
    assert accounts.returned_late(worker)
    assert not accounts.returned_late(worker)
    assert accounts.owed() == 0


def test_released_watches_do_not_pile_up():
    dog, _, _ = recording_watchdog()
    worker = FakeWorker()
    for _ in range(1000):
        dog.release(dog.watch("t", worker, 3600, time.monotonic() + 3600, outermost=True))
    assert len(dog) == 0
    assert len(dog._heap) <= 2 * 64 + 2  # compacted, not 1,000 entries waiting an hour


def test_the_thread_starts_on_the_first_watch_and_ends_once_closed_and_idle():
    dog, expired, _ = recording_watchdog()
    assert dog._thread is None  # nothing watched: no thread at all
    dog.watch("t", FakeWorker(), 0.05, time.monotonic() + 0.05, outermost=True)
    thread = dog._thread
    assert thread is not None and thread.is_alive()
    dog.close()
    assert expired.get(timeout=5)[0] == "t"  # what was watched still expires after close
    thread.join(5)
    assert not thread.is_alive()


def test_a_failing_callback_does_not_stop_the_watchdog():
    seen = threading.Event()

    def on_expire(watch, abandon, close):
        if watch.token == "boom":
            raise RuntimeError("bug in a callback")
        seen.set()

    dog = Watchdog("test-watchdog", on_expire, Accounts())
    now = time.monotonic()
    dog.watch("boom", FakeWorker(), 0.01, now + 0.01, outermost=True)
    dog.watch("ok", FakeWorker(), 0.05, now + 0.05, outermost=True)
    assert seen.wait(5)
