"""zq.Executor: the concurrent.futures.Executor face of a Client."""

from __future__ import annotations

import concurrent.futures as cf
from typing import Any, Iterable, Iterator

from zq.client.client import Client
from zq.client.future import Future
from zq.client.options import TaskRef


class Executor(cf.Executor):
    """A concurrent.futures.Executor whose calls run on zq workers.

    ``Executor(connect=None, **kw)``: kw go to Client (config=, context=). map() submits
    chunksize tasks per SUBMIT message (at most config.batch_size); its timeout counts
    from the call, and the iterator's __next__ raises TimeoutError once it passes.
    shutdown(wait=True) waits for every
    result still due, then closes the client; wait=False returns at once and lets the
    client close by itself once they are in (at interpreter exit it still waits, as an
    open Client does, until the master has accepted every task submitted);
    cancel_futures=True cancels those first.
    """

    def __init__(self, connect: str | None = None, **kw: Any) -> None:
        self.client = Client(connect, **kw)
        self._closed = False

    def submit(self, fn: TaskRef, /, *args: Any, **kwargs: Any) -> Future:  # type: ignore[override]
        if self._closed:
            raise RuntimeError("cannot schedule new futures after shutdown")
        return self.client.submit(fn, *args, **kwargs)

    def map(self, fn: TaskRef, *iterables: Iterable[Any],  # type: ignore[override]
            timeout: float | None = None, chunksize: int = 1) -> Iterator[Any]:
        if self._closed:
            raise RuntimeError("cannot schedule new futures after shutdown")
        return self.client.map(fn, *iterables, timeout=timeout, chunksize=chunksize)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._closed = True
        self.client.close_when_done(cancel=cancel_futures, wait=wait)
