"""Tasks for the client lifecycle tests (tests/integration/test_client_lifecycle.py):
side effects a test can count, and a stream paced by gate files."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterator

GATE_WAIT = 30.0  # seconds a task waits for a gate file at most


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + GATE_WAIT
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {path} was not opened within {GATE_WAIT} s")
        time.sleep(0.01)


def mark(path: str) -> str:
    """Append one line per execution to path, so a test can see that (and how often) it ran."""
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    return path


def gated_stream(gates: str, n: int, fail: bool = False) -> Iterator[int]:
    """Yield 0..n-1, each once the file gates/<k> exists; then wait for gates/done and
    return "finished" (or raise ValueError if fail)."""
    folder = Path(gates)
    for k in range(n):
        _wait_for(folder / str(k))
        yield k
    _wait_for(folder / "done")
    if fail:
        raise ValueError("failed after the stream")
    return "finished"
