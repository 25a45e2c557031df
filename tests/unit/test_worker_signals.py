"""SIGTERM never deadlocks the worker.

The handler runs on the main thread between two bytecodes, possibly while that thread
holds the lock inside one of the worker's Events. It must not take that lock (the old
handler called Event.set and hung the worker on SIGTERM now and then); it only leaves a
flag that the loop acts on.
"""

from __future__ import annotations

import os
import signal
import threading

from jobforge_sdk import JobForgeClient, JobRegistry, Worker
from tests.support.no_network import NoNetwork


def test_sigterm_while_the_main_thread_holds_an_event_lock_does_not_hang() -> None:
    assert threading.current_thread() is threading.main_thread()
    worker = Worker(JobForgeClient(NoNetwork()), JobRegistry())
    restore = worker._install_signals()
    try:
        done = threading.Event()
        # Hold the Event's internal lock, as Event.clear()/wait() do for an instant, and
        # deliver SIGTERM right then. A watchdog fails the test instead of hanging it.
        watchdog = threading.Timer(5.0, lambda: os.kill(os.getpid(), signal.SIGKILL))
        watchdog.start()
        with worker._wake._cond:  # type: ignore[attr-defined]
            signal.raise_signal(signal.SIGTERM)
            done.set()
        watchdog.cancel()
        assert done.is_set()
        assert worker._signalled == signal.SIGTERM
        assert not worker._stopping.is_set()  # the loop, not the handler, stops the worker
    finally:
        for sig, previous in restore.items():
            signal.signal(sig, previous)
