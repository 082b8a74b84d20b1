"""Stop on SIGINT/SIGTERM without taking a lock inside a signal handler.

A Python signal handler runs on the main thread between bytecodes; if it called
``Event.set`` while the main thread held that Event's lock (inside ``Event.wait``), the
process would deadlock. Instead the interpreter's C-level handler writes the signal number to
a socket (``signal.set_wakeup_fd``) and a watcher thread sets the Event.
"""

from __future__ import annotations

import signal
import socket
import threading


def stop_event_on_signals(*signals: int) -> threading.Event:
    """An Event set on the first of ``signals`` (default SIGINT and SIGTERM). Main thread only."""
    stop = threading.Event()
    wanted = set(signals or (signal.SIGINT, signal.SIGTERM))
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    for signum in wanted:
        signal.signal(signum, _ignore)

    def watch() -> None:
        keep_open = writer  # the C handler writes here for the life of the process
        while True:
            received = reader.recv(64)
            if not received or wanted.intersection(received):
                break
        stop.set()
        del keep_open

    threading.Thread(target=watch, name="tokengate-signals", daemon=True).start()
    return stop


def _ignore(signum: int, frame: object) -> None:
    """Replaces the default action; the wakeup fd carries the signal to the watcher."""
