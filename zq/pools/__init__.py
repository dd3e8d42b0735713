"""Pools that run tasks for a worker: ``process`` (default), ``thread`` and ``async``.

Every pool takes TASK entries, runs them with time limits and cancellation, and hands
back plain data (RESULT / PARTIAL / PROGRESS entries, returned ids) from ``collect()``;
the worker loop polls ``fds()`` to wake up when something is ready. ``runner`` holds what
they share; ``thread``, ``aio`` and ``process`` one pool each; ``child`` is what a process
pool's child runs, and ``pipe`` the framing on the pipes between the two.
"""

from __future__ import annotations

from typing import Callable, Iterable

from zq.errors import ConfigError
from zq.pools.aio import AsyncPool
from zq.pools.process import ProcessPool
from zq.pools.runner import Pool, Report, classify, error_payload
from zq.pools.thread import ThreadPool

__all__ = ["AsyncPool", "Pool", "ProcessPool", "Report", "ThreadPool", "classify",
           "error_payload", "make_pool"]


def make_pool(kind: str, apps: Iterable[str], concurrency: int, *,
              allow_code: bool = False, inline_under: float = 0.0) -> Pool:
    """A pool of ``kind`` ("process", "thread" or "async"); call start() before use.
    allow_code: it runs shipped code (zq worker --allow-code), else refuses it.
    inline_under: the thread pool runs tasks measured shorter than this many seconds in
    the caller's thread (ThreadPool); 0 = never."""
    pools: dict[str, Callable[..., Pool]] = {
        "process": ProcessPool, "thread": ThreadPool, "async": AsyncPool}
    if kind not in pools:
        raise ConfigError(f"unknown pool {kind!r}; choose one of {', '.join(pools)}")
    if inline_under:
        if kind != "thread":
            raise ConfigError("inline running (--inline-under) is for --pool thread only")
        return ThreadPool(tuple(apps), concurrency, allow_code=allow_code,
                          inline_under=inline_under)
    return pools[kind](tuple(apps), concurrency, allow_code=allow_code)
