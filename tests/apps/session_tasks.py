"""Tasks for the duplicate-worker-names fault test (--app tests.apps.session_tasks): each
run records where it started and waits for a gate file the test creates, so the test
decides which run of a task finishes first."""

from __future__ import annotations

import os
import time
from pathlib import Path

import zq

GATE_WAIT = 60.0  # seconds a run waits for its gate at most


def hold(gate_dir: str, tag: str) -> dict:
    """Create started-TAG-ATTEMPT-PID in gate_dir, then wait for go-TAG-ATTEMPT."""
    attempt = zq.current_task().attempt
    folder = Path(gate_dir)
    (folder / f"started-{tag}-{attempt}-{os.getpid()}").touch()
    gate = folder / f"go-{tag}-{attempt}"
    deadline = time.monotonic() + GATE_WAIT
    while not gate.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {gate.name} within {GATE_WAIT} s")
        time.sleep(0.01)
    return {"tag": tag, "attempt": attempt, "pid": os.getpid()}
