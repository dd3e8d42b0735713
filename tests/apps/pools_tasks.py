"""Tasks for the pool lifecycle tests (a child's death, what a dead worker leaves behind):
each reports the process that runs it through a file, so a test can kill exactly that
process, and each waits on bounded conditions only."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import time
from pathlib import Path

import zq


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # a reader never sees a half-written pid


def hang_first_attempt(directory: str, seconds: float = 30.0) -> int:
    """Write this process's pid to DIR/pid-ATTEMPT; on attempt 1 then wait `seconds` (for
    a test to kill the process); return the attempt number."""
    attempt = zq.current_task().attempt
    _write_atomically(Path(directory) / f"pid-{attempt}", str(os.getpid()))
    if attempt == 1:
        time.sleep(seconds)
    return attempt


def kill_own_process(path: str) -> None:
    """A poison task: note the run (one O_APPEND line `attempt pid`), then SIGKILL the
    process running it, as the OOM killer would."""
    with open(path, "a") as f:
        f.write(f"{zq.current_task().attempt} {os.getpid()}\n")
    os.kill(os.getpid(), signal.SIGKILL)


def pid_then_sleep(path: str, seconds: float) -> int:
    """Write the running process's pid to `path`, then sleep (the GIL released)."""
    _write_atomically(Path(path), str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()


def pid_then_hold_the_gil(path: str, seconds: int) -> int:
    """Write the pid to `path`, then sleep in C code that keeps the GIL (a stand-in for a
    long computation in an extension): no other thread of the process runs meanwhile."""
    _write_atomically(Path(path), str(os.getpid()))
    libc = ctypes.PyDLL(None)  # PyDLL: the call does not release the GIL
    libc.sleep(ctypes.c_uint(int(seconds)))
    return os.getpid()


async def async_pid_then_sleep(path: str, seconds: float) -> int:
    _write_atomically(Path(path), str(os.getpid()))
    await asyncio.sleep(seconds)
    return os.getpid()


def gate_then_return(started: str, gate: str, limit: float) -> str:
    """Create `started`, then wait until the file `gate` exists (at most `limit` s)."""
    Path(started).touch()
    deadline = time.monotonic() + limit
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.005)
    return "opened" if os.path.exists(gate) else "gave up"
