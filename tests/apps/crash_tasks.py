"""Tasks the crash-consistency tests run (--app tests.apps.crash_tasks): each appends what
it saw to a file (one small O_APPEND write per line, so lines of concurrent runs do not
mix), so a test counts runs and attempts as the workers saw them."""

from __future__ import annotations

import os
import time

import zq

GATE_WAIT = 30.0  # seconds a task waits for its gate at most


def _log(path: str, *words: object) -> None:
    with open(path, "a") as f:
        f.write(" ".join(str(w) for w in words) + "\n")


def _wait_for(gate: str | None, until: float) -> None:
    while gate is not None and not os.path.exists(gate) and time.monotonic() < until:
        time.sleep(0.02)


def log_attempt(path: str, tag: str, gate: str | None = None) -> int:
    """Append `tag attempt pid`, wait for the file `gate`, return the attempt number."""
    attempt = zq.current_task().attempt
    _log(path, tag, attempt, os.getpid())
    _wait_for(gate, time.monotonic() + GATE_WAIT)
    return attempt


def wait_for_cancel(path: str, tag: str, gate: str) -> str:
    """Append `tag start`; once cancelled (thread pool: current_task().cancelled), append
    `tag cancelled`; then wait for the file `gate` and return tag. (Holding on after the
    cancel keeps the worker from reporting it, so only the master's store can.)"""
    task = zq.current_task()
    _log(path, tag, "start", task.attempt)
    until = time.monotonic() + GATE_WAIT
    while not task.cancelled and time.monotonic() < until:
        time.sleep(0.02)
    if task.cancelled:
        _log(path, tag, "cancelled", task.attempt)
    _wait_for(gate, until)
    return tag
