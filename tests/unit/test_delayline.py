"""The delay line: one thread, callbacks in due order, leftovers handed back on stop."""

import threading

from tokengate.node_agent.delayline import DelayLine


def test_callbacks_run_in_due_order_not_submission_order():
    line, seen, done = DelayLine("test"), [], threading.Event()

    def record(item):
        seen.append(item)
        if len(seen) == 3:
            done.set()

    line.schedule(0.06, record, "late")
    line.schedule(0.0, record, "now")
    line.schedule(0.03, record, "soon")
    assert done.wait(5)
    assert seen == ["now", "soon", "late"]
    assert line.stop() == []


def test_stop_returns_waiting_items_and_refuses_more():
    line = DelayLine("test")
    line.schedule(60, lambda item: None, "a")
    line.schedule(60, lambda item: None, "b")
    assert len(line) == 2
    assert sorted(line.stop()) == ["a", "b"]
    assert not line.schedule(0, lambda item: None, "c")


def test_a_failing_callback_does_not_stop_the_line():
    line, done = DelayLine("test"), threading.Event()

    def boom(item):
        raise RuntimeError(item)

    line.schedule(0, boom, "x")
    line.schedule(0.01, lambda item: done.set(), "y")
    assert done.wait(5)
    line.stop()
