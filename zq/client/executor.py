"""zq.Executor: the concurrent.futures.Executor face of a Client."""

from __future__ import annotations

import concurrent.futures as cf
import weakref
from typing import Any, Iterable, Iterator

from zq.client.client import Client
from zq.client.future import Future, cancel_all
from zq.client.mapping import MapResults
from zq.client.options import TaskRef


class Executor(cf.Executor):
    """A concurrent.futures.Executor whose calls run on zq workers.

    ``Executor(connect=None, **kw)``: kw go to Client (config=, context=, keys=,
    ship_code=True to send lambdas and closures by value: docs/TASKS.md, Code shipping).

    - map() submits chunksize tasks per SUBMIT message (at most config.batch_size; the
      default None means config.batch_size, where the standard executors default to 1);
      its timeout counts from the call, and the iterator's __next__ raises TimeoutError
      once it passes; the tasks not started by then are cancelled, the running ones
      finish (as concurrent.futures cancels the pending futures of a map it leaves).
    - shutdown(wait=True) waits for every result still due, then closes the client;
      wait=False returns at once and lets the client close by itself once they are in
      (at interpreter exit it still waits, as an open Client does, until the master has
      accepted every task submitted). cancel_futures=True first cancels every task of
      submit() and map() that has not started (as Future.cancel() does, in one QUERY
      per 10,000 tasks, protocol 1.5), and the part of each map() not submitted yet
      (map() submits a window at a time, as results come back): iterating a map then
      yields the results up to the first task cancelled or never submitted, and raises
      CancelledError there, as a cancelled future's result() would. Running tasks
      finish. With a master older than 1.5, a map's tasks already submitted all run.
    """

    def __init__(self, connect: str | None = None, **kw: Any) -> None:
        self.client = Client(connect, **kw)
        self._closed = False
        self._futures: weakref.WeakSet[Future] = weakref.WeakSet()  # for cancel_futures
        self._maps: weakref.WeakSet[MapResults] = weakref.WeakSet()  # the same

    def submit(self, fn: TaskRef, /, *args: Any, **kwargs: Any) -> Future:  # type: ignore[override]
        if self._closed:
            raise RuntimeError("cannot schedule new futures after shutdown")
        future = self.client.submit(fn, *args, **kwargs)
        self._futures.add(future)
        return future

    def map(self, fn: TaskRef, *iterables: Iterable[Any],  # type: ignore[override]
            timeout: float | None = None, chunksize: int | None = None) -> Iterator[Any]:
        if self._closed:
            raise RuntimeError("cannot schedule new futures after shutdown")
        results = self.client.map(fn, *iterables, timeout=timeout, chunksize=chunksize)
        if isinstance(results, MapResults):
            self._maps.add(results)
        return results

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._closed = True
        if cancel_futures:
            for run in list(self._maps):
                run.cancel_rest()
            cancel_all([f for f in list(self._futures) if not f.done()])
        self.client.close_when_done(wait=wait)
