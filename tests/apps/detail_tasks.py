"""Tasks for the `get` detail tests (issue 15): a generator that streams chunks then
waits for a gate file, a task that fails its first runs, an add."""

from __future__ import annotations

import os
import time
from pathlib import Path


def stream_until(n, gate, label="chunk"):
    """Yield n chunks, then wait for the file `gate` (30 s at most) and return."""
    for i in range(n):
        yield f"{label} {i}"
    deadline = time.monotonic() + 30
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    return "done"


def add(a, b):
    return a + b


def flaky(path, failures):
    """Fail the first `failures` times it runs (counted in a file), then succeed."""
    p = Path(path)
    runs = int(p.read_text()) if p.exists() else 0
    p.write_text(str(runs + 1))
    if runs < failures:
        raise RuntimeError(f"failure {runs + 1} of {failures}")
    return runs + 1

