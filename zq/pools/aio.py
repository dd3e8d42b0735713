"""The async pool: coroutine functions on one event loop thread, plain functions on
daemon threads beside it."""

from __future__ import annotations

import asyncio
import inspect
import queue
import threading
import time
from collections import deque
from typing import Any, Callable, Iterable

from zq import logs
from zq.context import TaskContext, activate, deactivate
from zq.core import serde
from zq.core.messages import Payload, TaskEntry
from zq.core.shipped import is_shipped
from zq.pools.runner import (
    CANCELLED,
    EMPTY,
    ERROR,
    FATAL,
    OK,
    START_POLL,
    InProcessPool,
    Report,
    Runner,
    Sink,
    classify,
    error_payload,
    timeout_error,
)
from zq.registry import Registry


class _AsyncJob:
    __slots__ = ("entry", "ctx", "task", "timer", "reported", "cancel_requested")

    def __init__(self, entry: TaskEntry, ctx: TaskContext) -> None:
        self.entry, self.ctx = entry, ctx
        self.task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.reported = False
        self.cancel_requested = False


class _DaemonThreads:
    """Runs blocking calls for an event loop on daemon threads, reusing idle ones. Not
    ``asyncio.to_thread``: its executor's threads are joined at interpreter exit, so one
    sync task that never returns would keep a stopped worker's process alive."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[Any] = queue.SimpleQueue()  # (fn, args, loop, fut)
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a call, or about to
        self._threads = 0

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on one of the threads; a cancel abandons the call, which runs on
        and whose outcome is discarded."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            start = not self._idle
            if start:
                self._threads += 1
            else:
                self._idle -= 1
        self._calls.put((fn, args, loop, fut))
        if start:
            threading.Thread(target=self._serve, name="zq-task", daemon=True).start()
        return await fut

    def _serve(self) -> None:
        while True:
            call = self._calls.get()
            if call is None:
                return
            fn, args, loop, fut = call
            value, error = None, None
            try:
                value = fn(*args)
            except BaseException as e:
                error = e
            try:
                loop.call_soon_threadsafe(_settle, fut, value, error)
            except RuntimeError:
                pass  # the loop is closed: the pool stopped meanwhile
            with self._lock:
                self._idle += 1

    def close(self) -> None:
        """Idle threads end now, busy ones after their call."""
        with self._lock:
            n, self._threads, self._idle = self._threads, 0, 0
        for _ in range(n):
            self._calls.put(None)


def _settle(fut: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if fut.done():  # cancelled (time limit, cancel): the outcome is discarded
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(value)


class AsyncPool(InProcessPool):
    """Coroutine functions on one event loop thread, at most N at a time.

    Timeout: the coroutine is cancelled and the task reported ERROR ``TaskTimeout`` at the
    deadline. Cancel: the coroutine is cancelled and reported CANCELLED when it ends.
    Plain functions (and sync generators) run on daemon threads so they do not block the
    loop; for them timeout and cancel act as in the thread pool, and a stop does not wait
    for them (they end with the process).
    """

    kind = "async"

    def __init__(self, apps: tuple[str, ...], concurrency: int, *,
                 allow_code: bool = False) -> None:
        self._apps, self._n, self._allow_code = apps, concurrency, allow_code
        self.broken: str | None = None
        self.catalogue: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()  # guards _queue and _scheduled (loop thread + caller)
        self._queue: deque[TaskEntry] = deque()
        self._scheduled = False
        self._running: dict[str, _AsyncJob] = {}  # written by the loop thread only
        self._fresh: list[str] = []  # ids started since the last collect (under _lock)
        self._kinds: dict[str, str] = {}
        self._sink: Sink | None = None
        self._threads = _DaemonThreads()  # for plain functions
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closing = False

    def start(self) -> None:
        registry = Registry(self._apps)
        self.catalogue = registry.catalogue()
        self._sink = Sink()
        self._runner = Runner(registry, self._sink.partial, allow_code=self._allow_code)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="zq-async", daemon=True)
        self._thread.start()

    def _run_loop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            tasks = [j.task for j in self._running.values() if j.task is not None]
            for t in tasks:
                t.cancel()
            if tasks:  # let them unwind; a coroutine that ignores cancel is left behind
                loop.run_until_complete(asyncio.wait(tasks, timeout=1.0))
        finally:
            loop.close()

    def submit(self, entries: list[TaskEntry]) -> None:
        with self._lock:
            self._queue.extend(entries)
            if self._scheduled or self._loop is None:
                return
            self._scheduled = True
        self._loop.call_soon_threadsafe(self._start_more)

    def _start_more(self) -> None:  # loop thread
        loop, sink = self._loop, self._sink
        if loop is None or sink is None or self._closing:
            return
        while len(self._running) < self._n:
            with self._lock:
                self._scheduled = False
                if not self._queue:
                    return
                entry = self._queue.popleft()
                self._fresh.append(entry[0])
            job = _AsyncJob(entry, TaskContext(entry[0], entry[1], entry[2], sink.progress))
            self._running[entry[0]] = job
            job.task = loop.create_task(self._run(job))
        with self._lock:
            self._scheduled = False

    async def _run(self, job: _AsyncJob) -> None:
        task_id, attempt, name, payload, timeout, retry_on = job.entry[:6]
        if timeout is not None:
            job.timer = asyncio.get_running_loop().call_later(timeout, self._expire, job,
                                                              timeout)
        try:
            outcome, data = await self._call(job, name, payload, retry_on)
        except asyncio.CancelledError:
            outcome, data = CANCELLED, EMPTY
        finally:
            if job.timer is not None:
                job.timer.cancel()
            del self._running[task_id]
        if not job.reported:
            if job.cancel_requested:
                outcome, data = CANCELLED, EMPTY
            self._put((task_id, attempt, outcome, data))
        self._start_more()

    def _kind(self, name: str) -> str:
        kind = self._kinds.get(name)
        if kind is None and is_shipped(name):
            return "sync"  # the runner loads it and runs a coroutine too; not cached by name
        if kind is None:
            fn = self._runner.resolve(name)  # LookupError: unknown task
            kind = ("coroutine" if inspect.iscoroutinefunction(fn) else
                    "asyncgen" if inspect.isasyncgenfunction(fn) else "sync")
            self._kinds[name] = kind
        return kind

    async def _call(self, job: _AsyncJob, name: str, payload: Any,
                    retry_on: list[str] | None) -> tuple[int, Payload]:
        try:
            kind = self._kind(name)
        except LookupError as e:
            return FATAL, serde.encode_error("UnknownTask", str(e))
        if kind == "sync":  # the runner makes current_task() job.ctx in the thread
            done: tuple[int, Payload] = await self._threads.run(self._runner.run, job.ctx,
                                                              payload, retry_on)
            return done
        try:
            args, kwargs = serde.decode_call(payload)
        except Exception as e:
            return FATAL, serde.encode_error(
                "SerializationError", f"cannot decode the arguments of {name}: {e}")
        fn = self._runner.resolve(name)
        token = activate(job.ctx)  # this asyncio task has its own context
        started = time.monotonic()
        try:
            if kind == "coroutine":
                value = await fn(*args, **kwargs)
            else:
                value, seq, sink = None, 0, self._sink
                async for chunk in fn(*args, **kwargs):
                    if sink is not None:
                        sink.partial(job.ctx.id, job.ctx.attempt, seq, serde.encode_value(chunk))
                    seq += 1
            data = serde.encode_value(value)
        except asyncio.CancelledError:
            raise
        except BaseException as e:
            outcome = classify(e, retry_on)
            self._runner.log.failed(job.ctx, time.monotonic() - started, e, outcome == ERROR)
            return outcome, error_payload(e)
        finally:
            deactivate(token)
        log = self._runner.log
        if log.loud or log.quiet:
            log.succeeded(job.ctx, time.monotonic() - started)
        return OK, data

    def _expire(self, job: _AsyncJob, timeout: float) -> None:  # loop thread
        if job.reported or job.task is None or job.task.done():
            return
        job.reported = True
        job.ctx.mark_cancelled()
        job.task.cancel()
        self._put((job.entry[0], job.entry[1], ERROR, timeout_error(
            timeout, "the coroutine was cancelled")))
        logs.task_ended(job.entry[0], job.entry[2], job.entry[1],
                        f"timed out after {timeout:g} s; the coroutine was cancelled")

    def cancel(self, ids: Iterable[str]) -> None:
        wanted = set(ids)
        with self._lock:
            dropped = [e for e in self._queue if e[0] in wanted]
            if dropped:
                self._queue = deque(e for e in self._queue if e[0] not in wanted)
        for e in dropped:
            self._put((e[0], e[1], CANCELLED, EMPTY))
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._cancel_running, wanted)

    def _cancel_running(self, ids: set[str]) -> None:  # loop thread
        for task_id in ids:
            job = self._running.get(task_id)
            if job is not None and not job.reported and job.task is not None:
                job.cancel_requested = True
                job.ctx.mark_cancelled()
                job.task.cancel()

    def collect(self, now: float, ready: set[int] | frozenset[int] = frozenset()) -> Report | None:
        if self._sink is None:
            return None
        report = self._sink.take()
        if self._fresh:
            with self._lock:
                fresh, self._fresh = self._fresh, []
            running = self._running  # a lookup from this thread is atomic
            started = [i for i in fresh if i in running]
            if started:
                if report is None:
                    report = Report()
                report.started = started
        return report

    def next_deadline(self, now: float) -> float | None:
        # The loop's own timers enforce time limits; a start may be unseen, though.
        if self._fresh or self._queue and len(self._running) < self._n:
            return now + START_POLL
        return None

    def withdraw_unstarted(self) -> list[str]:
        with self._lock:
            ids = [e[0] for e in self._queue]
            self._queue.clear()
        return ids

    def close(self, kill: bool = False, timeout: float = 5.0) -> None:
        self._closing = True
        loop, self._loop = self._loop, None
        if loop is not None and self._thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout)
        self._threads.close()
        if self._sink is not None:
            self._sink.close()
            self._sink = None

