"""Tasks for the inline-running tests (zq worker --inline-under): each says which thread
ran it, so a test knows whether it ran in the worker's loop thread or a pool thread."""

from __future__ import annotations

import os
import threading
import time

import zq


def where(tag=None):
    """The name of the thread that runs the task (and the tag, to check the argument)."""
    return [threading.current_thread().name, tag]


def where_after(seconds: float):
    """where(), after `seconds`: the task's own duration is what a test is about."""
    time.sleep(seconds)
    return threading.current_thread().name


def where_unless_file(path: str, limit: float = 30.0):
    """Short while the file `path` exists; else wait for it (limit seconds at most)."""
    deadline = time.monotonic() + limit
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.005)
    return threading.current_thread().name


def fail(message: str):
    raise ValueError(message)


def chunks(n: int):
    yield from range(n)
    return threading.current_thread().name


def progress_then(tag):
    zq.current_task().progress(1, 2)
    return tag
