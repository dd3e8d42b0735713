"""Tasks of the soak (bench/soak.py): each run appends one line to a run log,
`tag attempt pid start_wall_time`, so the soak counts what really ran."""

from __future__ import annotations

import asyncio
import os
import time

import zq


def _log(path: str, tag: str) -> int:
    ctx = zq.current_task()
    attempt = ctx.attempt if ctx is not None else 0
    with open(path, "a") as f:  # one small O_APPEND write: lines of runs never mix
        f.write(f"{tag} {attempt} {os.getpid()} {time.time():.6f}\n")
    return attempt


def run(path: str, tag: str, seconds: float = 0.0, fail_first: int = 0) -> str:
    """Work for `seconds`; fail (ValueError) on attempts up to `fail_first`."""
    attempt = _log(path, tag)
    if seconds:
        time.sleep(seconds)
    if attempt <= fail_first:
        raise ValueError(f"{tag}: attempt {attempt} fails on purpose")
    return tag


def stream(path: str, tag: str, chunks: int) -> str:
    """A generator task: `chunks` chunks, then its tag."""
    _log(path, tag)
    for i in range(chunks):
        time.sleep(0.01)
        yield i
    return tag


async def arun(path: str, tag: str, seconds: float = 0.0) -> str:
    """The same as run, as a coroutine (the async pool)."""
    _log(path, tag)
    if seconds:
        await asyncio.sleep(seconds)
    return tag
