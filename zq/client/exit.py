"""At interpreter exit, every client still open waits (bounded) until the master has
accepted what it submitted, then closes, naming on stderr the tasks that were not."""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zq.client.io_loop import IoLoop

EXIT_NOTE_AFTER = 1.0  # seconds of waiting at interpreter exit before saying what for
EXIT_NAMES_SHOWN = 10  # unaccepted tasks named one by one at exit; the rest are counted
# The I/O thread's last close lingers at most this long after the flush deadline
# (io_loop.FINAL_LINGER_MS, which imports this module).
FINAL_LINGER = 1.0


class ExitFlush:
    """At interpreter exit, every client still open waits, at most config.exit_timeout,
    until the master has ACCEPTED what it submitted, then closes; tasks still not
    accepted are named on stderr (what a concurrent.futures user expects of a submit).

    Why atexit with a daemon I/O thread: at exit CPython first joins the non-daemon
    threads, then runs atexit handlers, and only then freezes daemon threads. So this
    handler runs once the program's own threads are all done (no submit can come after
    it) while the I/O thread still runs to finish the flush. A non-daemon I/O thread
    stopped through threading._register_atexit (private API) would be told to stop
    *before* those threads are joined, failing a submit they make later; and the
    process could not end while a forgotten client waits for results.

    One registry for the process (as concurrent.futures keeps for its threads): the
    handler must see every open client, start all their flushes at once and so bound
    the whole exit by the longest exit_timeout, not by their sum.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loops: weakref.WeakSet[IoLoop] = weakref.WeakSet()
        self._registered = False

    def add(self, loop: IoLoop) -> None:
        with self._lock:
            self._loops.add(loop)
            if not self._registered:
                self._registered = True
                atexit.register(self.run)
                # A forked child has none of these clients' I/O threads: it starts empty.
                os.register_at_fork(after_in_child=self._forget_all)

    def discard(self, loop: IoLoop) -> None:
        with self._lock:
            self._loops.discard(loop)

    def _forget_all(self) -> None:
        self._lock = threading.Lock()
        self._loops = weakref.WeakSet()

    def run(self) -> None:
        with self._lock:
            loops = [io for io in self._loops if io.is_alive()]
        started = time.monotonic()
        for io in loops:  # all at once: their waits overlap
            io.stop(("flush", started + io.config.exit_timeout))
        for io in loops:
            _finish_at_exit(io, started)


def _finish_at_exit(io: IoLoop, started: float) -> None:
    """Wait for one client's exit flush; say on stderr what it waits for if that takes
    a while, and name the tasks the master did not accept."""
    cfg = io.config
    # The I/O thread stops at the flush deadline, then lingers at most FINAL_LINGER.
    deadline = started + cfg.exit_timeout + FINAL_LINGER + 1.0
    io.join(max(0.0, min(started + EXIT_NOTE_AFTER, deadline) - time.monotonic()))
    if io.is_alive():
        _say(f"zq: waiting up to {cfg.exit_timeout:g} s (ZQ_EXIT_TIMEOUT) for the master at "
             f"{cfg.connect} to accept the tasks submitted before exit")
        io.join(max(0.0, deadline - time.monotonic()))
    if io.is_alive():
        _say(f"zq: the client of {cfg.connect} did not stop in time; tasks it submitted "
             "may not have reached the master")
        return
    lost = io.unaccepted
    if lost:
        named = ", ".join(f"{tid} ({name})" for tid, name in lost[:EXIT_NAMES_SHOWN])
        more = f" and {len(lost) - EXIT_NAMES_SHOWN} more" if len(lost) > EXIT_NAMES_SHOWN else ""
        _say(f"zq: the master at {cfg.connect} did not accept {len(lost)} task(s) within "
             f"{cfg.exit_timeout:g} s of exit (ZQ_EXIT_TIMEOUT); they may never run: "
             f"{named}{more}")


def _say(line: str) -> None:
    if sys.stderr is not None:  # None under pythonw
        print(line, file=sys.stderr, flush=True)


AT_EXIT = ExitFlush()
