"""Tasks the integration tests run on real workers (started with --app tests.apps.e2e_tasks)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import zq


def add(a, b):
    return a + b


def noop():
    return None


def echo(value):
    return value


def where():
    """Which network namespace and process ran the task."""
    return {"netns": os.stat("/proc/self/ns/net").st_ino, "pid": os.getpid()}


def fail(kind="ValueError", message="boom"):
    if kind == "ValueError":
        raise ValueError(message)
    if kind == "KeyError":
        raise KeyError(message)

    class CustomError(Exception):
        pass
    CustomError.__name__ = kind
    raise CustomError(message)


def sleep_then(seconds, value=None):
    time.sleep(seconds)
    return value


def touch_then_sleep(path, seconds, value=None):
    """Mark (by creating a file) that the task started, then work for a while."""
    Path(path).write_text(str(os.getpid()))
    time.sleep(seconds)
    return value


def count_runs(path, value=None):
    """Append one line per execution, so a test can count how often a task ran."""
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    return value


def flaky(path, failures):
    """Fail the first `failures` times it runs (counted in a file), then succeed."""
    p = Path(path)
    runs = int(p.read_text()) if p.exists() else 0
    p.write_text(str(runs + 1))
    if runs < failures:
        raise RuntimeError(f"failure {runs + 1} of {failures}")
    return runs + 1


def countdown(n):
    yield from range(n, 0, -1)
    return "liftoff"


def crash():
    os._exit(13)


def attempt():
    return zq.current_task().attempt if hasattr(zq, "current_task") else None


def big(n):
    return b"x" * n


def size_of(data):
    return len(data)


def where_after(seconds):
    time.sleep(seconds)
    return where()


def record(path, value):
    """Append value and the wall time it ran at: order and timing checks."""
    with open(path, "a") as f:
        f.write(f"{value} {time.time()}\n")
    return value


def with_progress(steps):
    for i in range(1, steps + 1):
        zq.current_task().progress(i, steps)
    return steps


def attempt_number():
    return zq.current_task().attempt


def log_run(path, tag, seconds=0.0, gate=None):
    """Append one line `tag pid` per execution (one small O_APPEND write, so lines of
    concurrent runs do not mix), work for `seconds`, or until the file `gate` exists
    (30 s at most), and return tag. Durability tests count executions with it."""
    with open(path, "a") as f:
        f.write(f"{tag} {os.getpid()}\n")
    if seconds:
        time.sleep(seconds)
    if gate is not None:
        deadline = time.monotonic() + 30
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.02)
    return tag


def spin_then_log(path, tag, seconds):
    """Burn CPU in pure Python for `seconds` (holding the GIL as much as Python code
    does), then append `tag pid` to path and return tag."""
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += sum(i * i for i in range(1000))
    with open(path, "a") as f:
        f.write(f"{tag} {os.getpid()}\n")
    return tag


async def async_countdown(n):
    for i in range(n, 0, -1):
        yield i


def log_own_id(path):
    """Append the task's own id (a schedule's NAME@TICK): tests count runs per tick."""
    with open(path, "a") as f:
        f.write(f"{zq.current_task().id} {os.getpid()}\n")


def log_distinct_run(path, tag, seconds=0.0, gate_prefix=None, gate=None):
    """Like log_run, but each run returns its own value, "tag:N" for the N-th run of tag
    (from 1), so a test sees which run's result was recorded. With gate_prefix, run N
    then waits for the file gate_prefix + str(N) (30 s at most): a test orders the runs.
    With gate, every run waits for that one file, as log_run's does."""
    with open(path, "a+") as f:  # one process at a time per tag in these tests
        f.seek(0)
        n = 1 + sum(1 for line in f if line.split()[0] == tag)
        f.write(f"{tag} {os.getpid()} {n}\n")
    if seconds:
        time.sleep(seconds)
    if gate_prefix is not None:
        gate = f"{gate_prefix}{n}"
    if gate is not None:
        deadline = time.monotonic() + 30
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.02)
    return f"{tag}:{n}"


def where_record(path, value):
    """record() and where(): when it ran, and in which process."""
    record(path, value)
    return where()


def stream_until(n, gate, label="chunk"):
    """Yield n chunks, then wait for the file `gate` (30 s at most) and return."""
    for i in range(n):
        yield f"{label} {i}"
    deadline = time.monotonic() + 30
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    return "done"
