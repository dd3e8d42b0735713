"""Tasks for the progress-bar and event tests: one that reports progress and waits for a
gate file (so a test sees a bar mid-way without racing the task), quick ones for a busy
cluster."""

from __future__ import annotations

import os
import time

import zq


def halfway(gate: str, limit: float = 30.0) -> str:
    """progress(1, 2), then wait (bounded) for the file `gate`, then progress(2, 2)."""
    t = zq.current_task()
    t.progress(1, 2)
    deadline = time.monotonic() + limit
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    t.progress(2, 2)
    return "through"


def square(x: int) -> int:
    return x * x


def fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"{x} is the bad one")
    return x


def pause(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
