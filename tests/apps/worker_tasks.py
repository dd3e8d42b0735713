"""Task functions the worker and pool tests run (imported with --app in children)."""

from __future__ import annotations

import asyncio
import builtins
import os
import signal
import time

import zq


def add(a, b):
    return a + b


def noop():
    return None


def fail(type_name: str, message: str):
    """Raise the builtin exception type_name(message)."""
    raise getattr(builtins, type_name)(message)


class CustomError(KeyError):
    """A task-defined error: classified by its MRO names (KeyError, LookupError, ...)."""


def fail_custom(message: str):
    raise CustomError(message)


def unserialisable():
    return object()


def whoami():
    t = zq.current_task()
    return [t.id, t.attempt, t.name, t.cancelled]


def pid():
    return os.getpid()


def sleep(seconds: float):
    time.sleep(seconds)
    return seconds


def sleep_then_add(seconds: float, a, b):
    zq.current_task().progress(0, 1)  # tells a test the task has started
    time.sleep(seconds)
    return a + b


def wait_cancelled(limit: float):
    """Cooperative: return when cancelled (thread pool), or after limit seconds."""
    t = zq.current_task()
    t.progress(0, 1)
    deadline = time.monotonic() + limit
    while not t.cancelled and time.monotonic() < deadline:
        time.sleep(0.005)
    return "cancelled" if t.cancelled else "finished"


def crash(code: int = 3):
    os._exit(code)


def kill_self():
    os.kill(os.getpid(), signal.SIGKILL)


def chunks(n: int):
    for i in range(n):
        yield {"i": i}
    return "done"


def progress(n: int):
    t = zq.current_task()
    for i in range(n + 1):
        t.progress(i, n)
    return n


async def async_add(a, b):
    await asyncio.sleep(0)
    return a + b


async def async_sleep(seconds: float):
    zq.current_task().progress(0, 1)
    await asyncio.sleep(seconds)
    return seconds


async def async_fail(message: str):
    await asyncio.sleep(0)
    raise ValueError(message)


async def async_chunks(n: int):
    for i in range(n):
        await asyncio.sleep(0)
        yield i


async def async_whoami():
    t = zq.current_task()
    await asyncio.sleep(0)
    return [t.id, t.attempt, t.name]


@zq.task(name="custom-name")
def named(x):
    return x * 2


def wait_for_file(path: str, limit: float = 30.0):
    """Report progress(0, 1) (the task started), then wait until the file `path` exists
    (limit seconds at most), ignoring cancellation: a test opens the gate."""
    zq.current_task().progress(0, 1)
    deadline = time.monotonic() + limit
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.005)
    return "opened" if os.path.exists(path) else "limit"


def wait_for_file_then_tell(path: str, told: str):
    """wait_for_file, then write whether current_task().cancelled was set to `told`, and
    return a value the pool must discard if the task timed out meanwhile."""
    wait_for_file(path)
    with open(told, "w") as f:
        f.write(str(zq.current_task().cancelled))
    return "late value"


async def async_wait_for_file(path: str, limit: float = 30.0):
    zq.current_task().progress(0, 1)
    deadline = time.monotonic() + limit
    while not os.path.exists(path) and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    return "opened" if os.path.exists(path) else "limit"


def stream_until_file(path: str, pause: float = 0.01, limit: float = 30.0):
    """Yield a chunk every `pause` seconds until the file `path` exists (limit seconds
    at most): a task that keeps its worker talking."""
    deadline = time.monotonic() + limit
    i = 0
    while not os.path.exists(path) and time.monotonic() < deadline:
        yield i
        i += 1
        time.sleep(pause)
    return i
