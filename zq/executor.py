"""Pools that run tasks for a worker: ``process`` (default), ``thread`` and ``async``.

Every pool takes TASK entries, runs them with time limits and cancellation, and hands
back plain data (RESULT / PARTIAL / PROGRESS entries, returned ids) from ``collect()``;
the worker loop polls ``fds()`` to wake up when something is ready.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import multiprocessing
import os
import queue
import selectors
import signal
import sys
import threading
import time
import traceback
import weakref
from collections import deque
from dataclasses import dataclass, field
from itertools import repeat
from types import AsyncGeneratorType, CoroutineType, GeneratorType
from typing import Any, Callable, Iterable, Protocol

import msgpack

from zq import lifetime
from zq.context import TaskContext, activate, deactivate
from zq.core import serde
from zq.core.messages import Outcome
from zq.errors import ConfigError
from zq.registry import Registry

log = logging.getLogger(__name__)

OK, ERROR, FATAL, CANCELLED = (int(o) for o in Outcome)
_EMPTY = b""


@dataclass(slots=True)
class Report:
    """What a pool has to say since the last collect(): wire-shaped entries."""

    results: list = field(default_factory=list)  # (task_id, attempt, outcome, payload)
    partials: list = field(default_factory=list)  # (task_id, attempt, seq, payload)
    progress: list = field(default_factory=list)  # (task_id, attempt, done, total), latest
    returned: list = field(default_factory=list)  # ids withdrawn unstarted, after the fact


class Pool(Protocol):
    """What the worker loop needs from a pool. Only the loop's thread calls these."""

    kind: str
    broken: str | None  # why the pool cannot run tasks any more, or None
    catalogue: dict  # after start(): task name -> declared options (Registry.catalogue)

    def start(self) -> None: ...
    def fds(self) -> list[int]: ...
    def submit(self, entries: list) -> None: ...
    def cancel(self, ids: Iterable[str]) -> None: ...
    def collect(self, now: float, ready: set[int] | frozenset[int]) -> Report | None: ...
    def next_deadline(self, now: float) -> float | None: ...
    def withdraw_unstarted(self) -> list[str]: ...
    def close(self, kill: bool = False, timeout: float = 5.0) -> None: ...


def make_pool(kind: str, apps: Iterable[str], concurrency: int) -> Pool:
    """A pool of ``kind`` ("process", "thread" or "async"); call start() before use."""
    pools: dict[str, Callable[..., Pool]] = {
        "process": ProcessPool, "thread": ThreadPool, "async": AsyncPool}
    if kind not in pools:
        raise ConfigError(f"unknown pool {kind!r}; choose one of {', '.join(pools)}")
    return pools[kind](tuple(apps), concurrency)


# --- running one task (any pool) --------------------------------------------------------

def classify(exc: BaseException, retry_on: list[str] | None) -> int:
    """ERROR (may be retried) or FATAL, by the task's retry_on class names (PROTOCOL §3)."""
    if retry_on is None:
        return ERROR
    for cls in type(exc).__mro__:
        if cls.__name__ in retry_on:
            return ERROR
    return FATAL


def error_payload(exc: BaseException, skip_frames: int = 1) -> bytes:
    """The error map of exc: type name, message, and the traceback without our frames."""
    tb = exc.__traceback__
    for _ in range(skip_frames):
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    try:
        message = str(exc)
    except Exception:
        message = repr(exc)
    return serde.encode_error(type(exc).__name__, message, text)


def _timeout_error(seconds: float, how: str) -> bytes:
    return serde.encode_error("TaskTimeout", f"the task ran longer than its time limit of "
                              f"{seconds:g} s; {how}")


class _Runner:
    """Runs one task in the calling thread: resolve, decode, call, stream, encode."""

    def __init__(self, registry: Registry,
                 on_partial: Callable[[str, int, int, bytes], None]) -> None:
        self._registry = registry
        self._on_partial = on_partial
        self._fns: dict[str, Callable] = {}  # only names that resolved: bounded by the apps

    def resolve(self, name: str) -> Callable:
        fn = self._fns.get(name)
        if fn is None:
            fn = self._fns[name] = self._registry.resolve(name)
        return fn

    def run(self, ctx: TaskContext, payload: Any, retry_on: list[str] | None) -> tuple[int, bytes]:
        fn = self._fns.get(ctx.name)
        if fn is None:
            try:
                fn = self.resolve(ctx.name)
            except LookupError as e:
                return FATAL, serde.encode_error("UnknownTask", str(e))
        try:
            args, kwargs = serde.decode_call(payload)
        except Exception as e:
            return FATAL, serde.encode_error(
                "SerializationError", f"cannot decode the arguments of {ctx.name}: {e}")
        token = activate(ctx)
        try:
            value = fn(*args, **kwargs)
            kind = type(value)
            if kind is GeneratorType:
                value = self._stream(value, ctx)
            elif kind is CoroutineType:
                value = asyncio.run(value)  # a coroutine function outside the async pool
            elif kind is AsyncGeneratorType:
                value = asyncio.run(self._astream(value, ctx))
            return OK, serde.encode_value(value)
        except BaseException as e:  # SystemExit and friends fail the task, not the pool
            return classify(e, retry_on), error_payload(e)
        finally:
            deactivate(token)

    def _stream(self, gen: Any, ctx: TaskContext) -> Any:
        """Each yielded value is a chunk; the generator's return value is the result. A
        cancelled task (thread pool) stops at its next yield."""
        emit, task_id, attempt = self._on_partial, ctx.id, ctx.attempt
        seq = 0
        try:
            while not ctx.cancelled:
                try:
                    value = next(gen)
                except StopIteration as stop:
                    return stop.value
                emit(task_id, attempt, seq, serde.encode_value(value))
                seq += 1
            return None
        finally:
            gen.close()

    async def _astream(self, agen: Any, ctx: TaskContext) -> None:
        seq = 0
        async for value in agen:
            self._on_partial(ctx.id, ctx.attempt, seq, serde.encode_value(value))
            seq += 1


class _Sink:
    """Outcomes from pool threads to the worker loop, which a pipe wakes up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._report = Report()
        self._progress: dict[str, list] = {}
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._armed = False  # a wake-up byte is in the pipe
        # Closed: threads that outlive the pool (a task runs on after a stop) must not
        # write to the pipe's fd numbers, which may belong to a new file by then.
        self._closed = False

    def fileno(self) -> int:
        return self._r

    def _wake(self) -> None:  # with the lock held, not closed
        if not self._armed:
            self._armed = True
            try:
                os.write(self._w, b"\0")
            except OSError:  # full (cannot be: one byte at a time) or closed at shutdown
                pass

    def result(self, entry: tuple) -> None:
        with self._lock:
            if not self._closed:  # after close nobody collects: dropped
                self._report.results.append(entry)
                self._wake()

    def partial(self, task_id: str, attempt: int, seq: int, payload: bytes) -> None:
        with self._lock:
            if not self._closed:
                self._report.partials.append((task_id, attempt, seq, payload))
                self._wake()

    def progress(self, task_id: str, attempt: int, done: float, total: float) -> None:
        with self._lock:
            if not self._closed:
                self._progress[task_id] = [task_id, attempt, done, total]
                self._wake()

    def take(self) -> Report | None:
        with self._lock:
            if self._closed:
                return None
            if self._armed:
                try:
                    os.read(self._r, 4096)
                except OSError:
                    pass
                self._armed = False
            report = self._report
            if not (report.results or report.partials or self._progress):
                return None
            report.progress = list(self._progress.values())
            self._report, self._progress = Report(), {}
            return report

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._report, self._progress = Report(), {}
            for fd in (self._r, self._w):
                try:
                    os.close(fd)
                except OSError:
                    pass


# --- thread pool ------------------------------------------------------------------------

class _ThreadJob:
    __slots__ = ("entry", "ctx", "deadline", "abandoned")

    def __init__(self, entry: tuple, ctx: TaskContext, deadline: float | None) -> None:
        self.entry, self.ctx, self.deadline = entry, ctx, deadline
        self.abandoned = False  # timed out: reported already, its thread retires


class _InProcessPool:
    """What the thread and async pools share: outcomes go to a _Sink the loop polls."""

    _sink: "_Sink | None"

    def fds(self) -> list[int]:
        return [self._sink.fileno()] if self._sink is not None else []

    def _put(self, entry: tuple) -> None:
        sink = self._sink
        if sink is not None:  # None once closed: late outcomes are dropped
            sink.result(entry)


class ThreadPool(_InProcessPool):
    """N threads in the worker process, for I/O-bound tasks.

    Threads cannot be stopped from outside, so limits are best-effort:
    - timeout: at the deadline the task is reported ERROR ``TaskTimeout`` at once, its
      ``current_task().cancelled`` becomes True, and a fresh thread takes its place so the
      pool keeps N threads working; the old thread runs on until the function returns
      (a generator stops at its next yield) and whatever it returns is discarded.
    - cancel: cooperative. A queued task is dropped; a running one sees
      ``current_task().cancelled`` become True and is reported CANCELLED when it returns,
      whatever it returned.
    """

    kind = "thread"

    def __init__(self, apps: tuple[str, ...], concurrency: int) -> None:
        self._apps, self._n = apps, concurrency
        self.broken: str | None = None
        self.catalogue: dict = {}
        self._cond = threading.Condition()
        self._queue: deque = deque()
        self._running: dict[str, _ThreadJob] = {}
        self._timed = 0  # running jobs with a deadline
        self._closing = False
        self._sink: _Sink | None = None

    def start(self) -> None:
        registry = Registry(self._apps)
        self.catalogue = registry.catalogue()
        self._sink = _Sink()
        self._runner = _Runner(registry, self._sink.partial)
        for _ in range(self._n):
            self._start_thread()

    def _start_thread(self) -> None:
        threading.Thread(target=self._serve, name="zq-task", daemon=True).start()


    def submit(self, entries: list) -> None:
        with self._cond:
            self._queue.extend(entries)
            self._cond.notify(len(entries))

    def _serve(self) -> None:
        sink, runner, cond, running = self._sink, self._runner, self._cond, self._running
        if sink is None:
            return
        while True:
            with cond:
                while not self._queue and not self._closing:
                    cond.wait()
                if self._closing:
                    return
                entry = self._queue.popleft()
                task_id, attempt, name, payload, timeout, retry_on = entry[:6]
                ctx = TaskContext(task_id, attempt, name, sink.progress)
                deadline = None if timeout is None else time.monotonic() + timeout
                job = running[task_id] = _ThreadJob(entry, ctx, deadline)
                if deadline is not None:
                    self._timed += 1
            outcome, data = runner.run(ctx, payload, retry_on)
            with cond:
                if job.abandoned:  # reported at its deadline; a new thread took our place
                    return
                del running[task_id]
                if deadline is not None:
                    self._timed -= 1
            if ctx.cancelled:
                outcome, data = CANCELLED, _EMPTY
            sink.result((task_id, attempt, outcome, data))

    def cancel(self, ids: Iterable[str]) -> None:
        wanted = set(ids)
        with self._cond:
            dropped = [e for e in self._queue if e[0] in wanted]
            if dropped:
                self._queue = deque(e for e in self._queue if e[0] not in wanted)
            for task_id in wanted:
                job = self._running.get(task_id)
                if job is not None:
                    job.ctx.mark_cancelled()
        for e in dropped:
            self._put((e[0], e[1], CANCELLED, _EMPTY))

    def collect(self, now: float, ready: set[int] | frozenset[int] = frozenset()) -> Report | None:
        if self._sink is None:
            return None
        if self._timed:
            self._expire(now)
        return self._sink.take()

    def _expire(self, now: float) -> None:
        with self._cond:
            late = [j for j in self._running.values()
                    if j.deadline is not None and now >= j.deadline]
            for job in late:
                job.abandoned = True
                job.ctx.mark_cancelled()
                del self._running[job.entry[0]]
                self._timed -= 1
        for job in late:
            task_id, attempt, timeout = job.entry[0], job.entry[1], job.entry[4]
            self._put((task_id, attempt, ERROR, _timeout_error(
                timeout, "its thread was abandoned (threads cannot be stopped)")))
            log.warning("task %s timed out after %g s; abandoning its thread", task_id, timeout)
            self._start_thread()

    def next_deadline(self, now: float) -> float | None:
        if not self._timed:
            return None
        with self._cond:
            return min((j.deadline for j in self._running.values() if j.deadline is not None),
                       default=None)

    def withdraw_unstarted(self) -> list[str]:
        with self._cond:
            ids = [e[0] for e in self._queue]
            self._queue.clear()
        return ids

    def close(self, kill: bool = False, timeout: float = 5.0) -> None:
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._queue.clear()
            for job in self._running.values():
                job.ctx.mark_cancelled()
            self._cond.notify_all()
        if self._sink is not None:
            self._sink.close()
            self._sink = None


# --- async pool -------------------------------------------------------------------------

class _AsyncJob:
    __slots__ = ("entry", "ctx", "task", "timer", "reported", "cancel_requested")

    def __init__(self, entry: tuple, ctx: TaskContext) -> None:
        self.entry, self.ctx = entry, ctx
        self.task: asyncio.Task | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.reported = False
        self.cancel_requested = False


class _DaemonThreads:
    """Runs blocking calls for an event loop on daemon threads, reusing idle ones. Not
    ``asyncio.to_thread``: its executor's threads are joined at interpreter exit, so one
    sync task that never returns would keep a stopped worker's process alive."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a call, or about to
        self._threads = 0

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on one of the threads; a cancel abandons the call, which runs on
        and whose outcome is discarded."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
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


def _settle(fut: asyncio.Future, value: Any, error: BaseException | None) -> None:
    if fut.done():  # cancelled (time limit, cancel): the outcome is discarded
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(value)


class AsyncPool(_InProcessPool):
    """Coroutine functions on one event loop thread, at most N at a time.

    Timeout: the coroutine is cancelled and the task reported ERROR ``TaskTimeout`` at the
    deadline. Cancel: the coroutine is cancelled and reported CANCELLED when it ends.
    Plain functions (and sync generators) run on daemon threads so they do not block the
    loop; for them timeout and cancel act as in the thread pool, and a stop does not wait
    for them (they end with the process).
    """

    kind = "async"

    def __init__(self, apps: tuple[str, ...], concurrency: int) -> None:
        self._apps, self._n = apps, concurrency
        self.broken: str | None = None
        self.catalogue: dict = {}
        self._lock = threading.Lock()  # guards _queue and _scheduled (loop thread + caller)
        self._queue: deque = deque()
        self._scheduled = False
        self._running: dict[str, _AsyncJob] = {}  # loop thread only
        self._kinds: dict[str, str] = {}
        self._sink: _Sink | None = None
        self._threads = _DaemonThreads()  # for plain functions
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closing = False

    def start(self) -> None:
        registry = Registry(self._apps)
        self.catalogue = registry.catalogue()
        self._sink = _Sink()
        self._runner = _Runner(registry, self._sink.partial)
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


    def submit(self, entries: list) -> None:
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
            job = _AsyncJob(entry, TaskContext(entry[0], entry[1], entry[2], sink.progress))
            self._running[entry[0]] = job
            job.task = loop.create_task(self._run(job))
        with self._lock:
            self._scheduled = False

    async def _run(self, job: _AsyncJob) -> None:
        task_id, attempt, name, payload, timeout, retry_on = job.entry[:6]
        if timeout is not None:
            job.timer = asyncio.get_running_loop().call_later(timeout, self._expire, job)
        try:
            outcome, data = await self._call(job, name, payload, retry_on)
        except asyncio.CancelledError:
            outcome, data = CANCELLED, _EMPTY
        finally:
            if job.timer is not None:
                job.timer.cancel()
            del self._running[task_id]
        if not job.reported:
            if job.cancel_requested:
                outcome, data = CANCELLED, _EMPTY
            self._put((task_id, attempt, outcome, data))
        self._start_more()

    def _kind(self, name: str) -> str:
        kind = self._kinds.get(name)
        if kind is None:
            fn = self._runner.resolve(name)  # LookupError: unknown task
            kind = ("coroutine" if inspect.iscoroutinefunction(fn) else
                    "asyncgen" if inspect.isasyncgenfunction(fn) else "sync")
            self._kinds[name] = kind
        return kind

    async def _call(self, job: _AsyncJob, name: str, payload: Any,
                    retry_on: list[str] | None) -> tuple[int, bytes]:
        try:
            kind = self._kind(name)
        except LookupError as e:
            return FATAL, serde.encode_error("UnknownTask", str(e))
        if kind == "sync":  # the runner makes current_task() job.ctx in the thread
            return await self._threads.run(self._runner.run, job.ctx, payload, retry_on)
        try:
            args, kwargs = serde.decode_call(payload)
        except Exception as e:
            return FATAL, serde.encode_error(
                "SerializationError", f"cannot decode the arguments of {name}: {e}")
        fn = self._runner.resolve(name)
        token = activate(job.ctx)  # this asyncio task has its own context
        try:
            if kind == "coroutine":
                value = await fn(*args, **kwargs)
            else:
                value, seq, sink = None, 0, self._sink
                async for chunk in fn(*args, **kwargs):
                    if sink is not None:
                        sink.partial(job.ctx.id, job.ctx.attempt, seq, serde.encode_value(chunk))
                    seq += 1
            return OK, serde.encode_value(value)
        except asyncio.CancelledError:
            raise
        except BaseException as e:
            return classify(e, retry_on), error_payload(e)
        finally:
            deactivate(token)

    def _expire(self, job: _AsyncJob) -> None:  # loop thread
        if job.reported or job.task is None or job.task.done():
            return
        job.reported = True
        job.ctx.mark_cancelled()
        job.task.cancel()
        self._put((job.entry[0], job.entry[1], ERROR, _timeout_error(
            job.entry[4], "the coroutine was cancelled")))

    def cancel(self, ids: Iterable[str]) -> None:
        wanted = set(ids)
        with self._lock:
            dropped = [e for e in self._queue if e[0] in wanted]
            if dropped:
                self._queue = deque(e for e in self._queue if e[0] not in wanted)
        for e in dropped:
            self._put((e[0], e[1], CANCELLED, _EMPTY))
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
        return self._sink.take() if self._sink is not None else None

    def next_deadline(self, now: float) -> float | None:
        return None  # the loop's own timers enforce time limits

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


# --- process pool: the child side -------------------------------------------------------

# parent -> child
_TASKS, _TAKE_BACK = 0, 1
# child -> parent
_OUT, _DROPPED, _READY, _FAILED = 0, 1, 2, 3
# slots of the shared array each child writes before and after every task
_STARTED, _STARTED_AT, _FINISHED = 0, 1, 2

FLUSH_DELAY = 0.001  # a child batches outcomes for this long (its flusher thread)...
FLUSH_COUNT = 256  # ...or until it has this many, or until it runs out of work
MAX_UNPACK = 2**31 - 1
_packb = msgpack.Packer(use_bin_type=True).pack


def _unpacker() -> msgpack.Unpacker:
    return msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=MAX_UNPACK)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


READ_SIZE = 1 << 20


class _Reader:
    """Messages from a pipe. Reads into one reused buffer: ``os.read(fd, 1 MiB)`` would
    allocate a megabyte per call, which costs more than the read itself."""

    __slots__ = ("fd", "_buf", "_view", "_unpacker")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buf = bytearray(READ_SIZE)
        self._view = memoryview(self._buf)
        self._unpacker = _unpacker()

    def read(self) -> tuple[int, list]:
        """(bytes read, whole messages). 0 bytes means EOF; BlockingIOError if none."""
        n = os.readv(self.fd, [self._buf])
        if n:
            self._unpacker.feed(self._view[:n])
        return n, list(self._unpacker) if n else []


class _ChildOut:
    """A child's outcomes, buffered and written to the parent in batches, in order."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()  # the buffers
        self._write_lock = threading.Lock()  # one message at a time, in buffer order
        self._dirty = threading.Event()  # something is buffered: wakes the flusher
        self._results: list = []
        self._partials: list = []
        self._progress: dict[str, tuple] = {}
        # written by the main thread only; sent as running totals, the parent takes deltas
        self.busy = 0.0
        self.count = 0

    def result(self, entry: list) -> None:
        with self._lock:
            self._results.append(entry)
            n = len(self._results)
        if n == 1:
            self._dirty.set()
        elif n >= FLUSH_COUNT:
            self.flush()

    def partial(self, task_id: str, attempt: int, seq: int, payload: bytes) -> None:
        with self._lock:
            self._partials.append((task_id, attempt, seq, payload))
        self._dirty.set()

    def progress(self, task_id: str, attempt: int, done: float, total: float) -> None:
        with self._lock:
            self._progress[task_id] = (task_id, attempt, done, total)
        self._dirty.set()

    def flush(self) -> None:
        with self._write_lock:
            with self._lock:
                self._dirty.clear()
                if not (self._results or self._partials or self._progress):
                    return
                msg = (_OUT, self._results, self._partials, list(self._progress.values()),
                       self.busy, self.count)
                self._results, self._partials, self._progress = [], [], {}
            self.send(msg, locked=True)

    def send(self, msg: Any, locked: bool = False) -> None:
        data = _packb(msg)
        try:
            if locked:
                _write_all(self._fd, data)
            else:
                with self._write_lock:
                    _write_all(self._fd, data)
        except OSError:
            os._exit(0)  # the parent is gone; nothing we do can be reported

    def flusher(self) -> None:
        """Thread: sends what a long task left buffered (chunks, progress, results)."""
        while True:
            self._dirty.wait()
            time.sleep(FLUSH_DELAY)
            self.flush()


class _ChildRuntime:
    """One child process: a reader thread fills the queue, the main thread runs tasks."""

    def __init__(self, registry: Registry, task_fd: int, out: _ChildOut, shm: Any) -> None:
        self._task_fd = task_fd
        self._out = out
        self._shm = shm
        self._lock = threading.Lock()  # a queued task is either popped (runs) or taken back
        self._work = threading.Event()
        self._queue: deque = deque()
        self._runner = _Runner(registry, out.partial)

    def reader(self) -> None:
        reader = _Reader(self._task_fd)
        while True:
            try:
                n, msgs = reader.read()
            except OSError:
                n, msgs = 0, []
            if not n:
                os._exit(0)  # the parent closed the pipe: it stopped or died
            for msg in msgs:
                if msg[0] == _TASKS:  # (_TASKS, first seq, entries)
                    with self._lock:
                        self._queue.extend(enumerate(msg[2], msg[1]))
                    self._work.set()
                elif msg[0] == _TAKE_BACK:
                    self._take_back(set(msg[1]))

    def _take_back(self, seqs: set[int]) -> None:
        """Drop these queued tasks and say which: popped ones have started and will run."""
        with self._lock:
            dropped = [job[1][0] for job in self._queue if job[0] in seqs]
            if dropped:
                kept = [job for job in self._queue if job[0] not in seqs]
                self._queue.clear()
                self._queue.extend(kept)
        self._out.send((_DROPPED, dropped))

    def serve(self) -> None:
        lock, work, queue, out, shm = self._lock, self._work, self._queue, self._out, self._shm
        run, monotonic = self._runner.run, time.monotonic
        while True:
            with lock:
                job = queue.popleft() if queue else None
            if job is None:
                out.flush()  # out of work: report now rather than after FLUSH_DELAY
                work.clear()
                if not queue:  # the reader sets work after it queues: no lost wake-up
                    work.wait()
                continue
            seq, (task_id, attempt, name, payload, _, retry_on) = job
            t0 = monotonic()
            # started_at before started: the parent reads started, started_at, finished
            shm[_STARTED_AT] = t0
            shm[_STARTED] = seq
            outcome, data = run(TaskContext(task_id, attempt, name, out.progress),
                                payload, retry_on)
            shm[_FINISHED] = seq
            out.busy += monotonic() - t0
            out.count += 1
            out.result([task_id, attempt, outcome, data])


# --- process pool: a child lives no longer than its worker ------------------------------
#
# A child learns of its worker's death when its task pipe reads EOF, but only if Python
# code can run in it: a child stuck in C code that holds the GIL, or a stopped one, would
# live on, and with it the fork server (which exits only when no process holds a copy of
# its "alive" pipe). So on Linux each child also (1) asks the kernel for SIGKILL when
# its parent, the fork server, exits and (2) drops its copy of the fork server's alive
# pipe. The worker then holds the only copy: when the worker dies, however it dies, the
# fork server sees EOF and exits, and its exit kills every child.

def _release_fork_server() -> None:
    """Close this child's copy of the fork server's alive pipe (see above). A task that
    starts processes with ``forkserver`` is not affected: multiprocessing starts a fork
    server of its own for each process that asks, children included."""
    fs_module = sys.modules.get("multiprocessing.forkserver")
    server = getattr(fs_module, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is None:
        return  # not started by a fork server (spawn), or a Python that keeps it elsewhere
    server._forkserver_alive_fd = None  # type: ignore[union-attr]
    try:
        os.close(fd)
    except OSError:
        pass


def _child_main(task_conn: Any, out_conn: Any, shm: Any, apps: tuple[str, ...]) -> None:
    """Entry point of a pool child (started by multiprocessing)."""
    # SIGKILL when the parent (the fork server, or with ``spawn`` the worker thread that
    # started this child) exits; before the alive pipe goes: until then it cannot exit.
    lifetime.die_with_parent(signal.SIGKILL, os.getppid(), lifetime.find_prctl())
    _release_fork_server()
    # The worker handles SIGINT/SIGTERM (a terminal's ^C reaches the whole group) and
    # stops children itself: by closing their pipe, or with SIGKILL.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    out = _ChildOut(out_conn.fileno())
    try:
        registry = Registry(apps)
    except BaseException as e:
        out.send((_FAILED, str(e)))
        return
    runtime = _ChildRuntime(registry, task_conn.fileno(), out, shm)
    out.send((_READY, os.getpid(), registry.catalogue()))
    threading.Thread(target=runtime.reader, name="zq-reader", daemon=True).start()
    threading.Thread(target=out.flusher, name="zq-flusher", daemon=True).start()
    runtime.serve()


# --- process pool: the parent side ------------------------------------------------------

TARGET_QUEUE_SECONDS = 0.005  # work a child holds beyond the task it runs
MAX_WINDOW = 1024  # tasks in flight per child at most
STEAL_AFTER = 0.02  # a task running this long gives its queued followers to idle children
CRASH_STATUS_WAIT = 0.5  # seconds to wait for a killed or crashed child to be gone
MAX_START_FAILURES = 3  # children dying before they are ready, in a row: the pool is broken
PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031  # Linux fcntl; bigger pipes mean fewer blocking writes

_CANCEL, _WITHDRAW, _STEAL = 1, 2, 3  # why a queued task is being taken back


def _grow_pipe(fd: int) -> None:
    try:
        import fcntl
        fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_SIZE)
    except (ImportError, OSError):
        pass  # not Linux, or over /proc/sys/fs/pipe-max-size: the default works too


def _kill_all(procs: list) -> None:
    for p in procs:
        try:
            p.kill()
        except Exception:
            pass


class _Child:
    __slots__ = ("slot", "proc", "task_conn", "out_conn", "task_fd", "out_fd", "sentinel",
                 "shm", "reader", "ready", "dead", "inflight", "timed", "min_timeout",
                 "taking_back", "busy", "count")

    def __init__(self, slot: int, proc: Any, task_conn: Any, out_conn: Any, shm: Any) -> None:
        self.slot, self.proc, self.shm = slot, proc, shm
        self.task_conn, self.out_conn = task_conn, out_conn
        self.task_fd, self.out_fd = task_conn.fileno(), out_conn.fileno()
        self.sentinel: int = proc.sentinel
        self.reader = _Reader(self.out_fd)
        self.busy = 0.0  # the child's running totals at its last report
        self.count = 0
        self.ready = False
        self.dead = False
        self.inflight: dict[str, tuple[int, tuple]] = {}  # task id -> (seq, entry), seq order
        self.timed = 0  # in-flight tasks with a time limit
        self.min_timeout = math.inf
        self.taking_back = 0  # TAKE_BACK requests not answered yet

    def state(self) -> tuple[float, float, float]:
        """(started seq, started at, finished seq), read consistently."""
        shm = self.shm
        while True:
            s = shm[_STARTED]
            t = shm[_STARTED_AT]
            f = shm[_FINISHED]
            if shm[_STARTED] == s:
                return s, t, f

    def running(self) -> tuple[str, tuple, float] | None:
        """(task id, entry, started at) of the task the child runs now, if any."""
        s, t, f = self.state()
        if s <= f:
            return None
        for task_id, (seq, entry) in self.inflight.items():
            if seq == s:
                return task_id, entry, t
            if seq > s:
                break
        return None


def _how_it_died(c: _Child) -> str:
    code = c.proc.exitcode
    return (f"was killed by signal {-code}" if code is not None and code < 0 else
            f"exited with code {code}" if code is not None else "died")


def _runs_long(c: _Child, now: float) -> bool:
    s, t, f = c.state()
    return s > f and now - t >= STEAL_AFTER


class ProcessPool:
    """N child processes; a crash, a time limit or a cancel kills only one child, which
    is replaced. Tasks travel to children in batches and outcomes come back in batches.

    A child that dies by itself (the OOM killer, a segfault, ``os._exit``) loses the task
    it was running: that task is reported CANCELLED, which the master counts as a lost
    attempt, as if the worker had died (docs/TASKS.md); the tasks queued behind it go
    to another child. A child killed for a time limit reports ``TaskTimeout``.

    Children start with ``forkserver`` (``spawn`` where there is none): they never
    inherit the worker's ZeroMQ context, its I/O threads or its sockets (a forked copy
    of a libzmq context is unusable and can break the parent's sockets on exit), nor
    each other's pipes (so a dead child's pipe reads EOF), while a replacement still
    starts in milliseconds because the fork server has zq and msgpack imported already
    (about 30 ms from a crash to the next task on a fresh child, against about 200 ms
    with ``spawn``). Nothing outlives the worker: the fork server exits when the worker
    process does, however it ends, and on Linux its exit kills the children (see
    ``lifetime.die_with_parent``); the fork server is shared by every pool of the process.

    How many tasks a child holds adapts to their duration: about TARGET_QUEUE_SECONDS of
    work beyond the running task, so no-op tasks go a thousand at a time and long tasks
    one at a time. Queued tasks behind a task that runs long are taken back and given to
    idle children; each child writes which task it runs, and since when, to a small
    shared array, which time limits, cancels and crash reports read.

    As with any multiprocessing code, a script that starts this pool must guard its top
    level with ``if __name__ == "__main__":`` (each child imports the main module);
    ``zq worker`` and ``python -m zq`` need nothing.
    """

    kind = "process"

    def __init__(self, apps: tuple[str, ...], concurrency: int, *,
                 start_method: str | None = None, start_timeout: float = 60.0) -> None:
        self._apps, self._n = apps, concurrency
        methods = multiprocessing.get_all_start_methods()
        method = start_method or ("forkserver" if "forkserver" in methods else "spawn")
        self._mp: Any = multiprocessing.get_context(method)
        if method == "forkserver":  # takes effect when the fork server first starts
            self._mp.set_forkserver_preload(["zq.executor"])
        self._start_timeout = start_timeout
        self.broken: str | None = None
        self.catalogue: dict = {}
        self._children: list[_Child] = []
        self._by_fd: dict[int, _Child] = {}
        self._fds: list[int] | None = None
        self._procs: list = []  # every process not reaped yet, for the exit finalizer
        self._reaping: list = []
        self._pending: deque = deque()
        self._fates: dict[str, int] = {}
        self._seq = 0
        self._avg: float | None = None  # seconds per task, as the children measure it
        self._window = 1
        self._start_failures = 0
        self._start_error: str | None = None
        self._starting = False  # a child dying now fails start() instead of being replaced
        self._closing = False
        self._report = Report()
        self._progress: dict[str, list] = {}
        self._finalizer = weakref.finalize(self, _kill_all, self._procs)

    # --- life -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the children and wait until each has imported the apps; ConfigError if
        one cannot (the message says why)."""
        self._starting = True
        try:
            for slot in range(self._n):
                self._children.append(self._spawn(slot))
            self._wait_ready(time.monotonic() + self._start_timeout)
        finally:
            self._starting = False
        if self._start_error is not None or not all(c.ready for c in self._children):
            reason = self._start_error or (
                "a pool child died at start" if any(c.dead for c in self._children) else
                f"pool children not ready within {self._start_timeout} s")
            self.close(kill=True)
            raise ConfigError(f"cannot start the process pool: {reason}")

    def _wait_ready(self, deadline: float) -> None:
        with selectors.DefaultSelector() as sel:
            for c in self._children:
                sel.register(c.out_fd, selectors.EVENT_READ, c)
                sel.register(c.sentinel, selectors.EVENT_READ, c)
            while True:
                children = self._children
                if self._start_error is not None or any(c.dead for c in children):
                    return
                left = deadline - time.monotonic()
                if all(c.ready for c in children) or left <= 0:
                    return
                for key, _ in sel.select(left):
                    c = key.data
                    if not c.dead:
                        self._read(c)  # READY, FAILED, or EOF
                    if key.fd == c.sentinel and not c.dead:
                        self._retire(c, None)

    def _spawn(self, slot: int) -> _Child:
        task_r, task_w = self._mp.Pipe(duplex=False)
        out_r, out_w = self._mp.Pipe(duplex=False)
        shm = self._mp.RawArray("d", [-1.0, 0.0, -1.0])
        proc = self._mp.Process(target=_child_main, args=(task_r, out_w, shm, self._apps),
                                name=f"zq-pool-{slot}")
        proc.start()
        task_r.close()  # the child's ends: only the child may hold them, so EOF means death
        out_w.close()
        _grow_pipe(task_w.fileno())
        _grow_pipe(out_r.fileno())
        os.set_blocking(out_r.fileno(), False)
        c = _Child(slot, proc, task_w, out_r, shm)
        self._procs.append(proc)
        self._by_fd[c.out_fd] = c
        self._by_fd[c.sentinel] = c
        self._fds = None
        return c

    def close(self, kill: bool = False, timeout: float = 5.0) -> None:
        """Stop every child: closing its pipe makes an idle child exit; any child still
        there after ``timeout`` (at once when ``kill``) is killed."""
        if self._closing and not self._children:
            return
        self._closing = True
        children = [c for c in self._children if not c.dead]
        self._children = []
        for c in children:
            if kill:
                self._kill(c)
            c.task_conn.close()
        deadline = time.monotonic() + (0 if kill else timeout)
        for c in children:
            c.proc.join(max(0.0, deadline - time.monotonic()))
            if c.proc.exitcode is None:
                self._kill(c)
                c.proc.join(2.0)
            c.out_conn.close()
            self._reaping.append(c.proc)
        self._by_fd.clear()
        self._fds = None
        self._reap()
        if not self._procs:
            self._finalizer.detach()

    @staticmethod
    def _kill(c: _Child) -> None:
        try:
            c.proc.kill()
        except Exception:
            pass  # already gone

    def _reap(self) -> None:
        still = []
        for p in self._reaping:
            if p.exitcode is None:
                still.append(p)
                continue
            p.close()
            self._procs.remove(p)
        self._reaping = still

    # --- the loop's API -------------------------------------------------------------

    def fds(self) -> list[int]:
        if self._fds is None:
            self._fds = [fd for c in self._children if not c.dead
                         for fd in (c.out_fd, c.sentinel)]
        return self._fds

    def submit(self, entries: list) -> None:
        self._pending.extend(entries)
        self._dispatch()

    def collect(self, now: float, ready: set[int] | frozenset[int] = frozenset()) -> Report | None:
        for fd in ready:
            c = self._by_fd.get(fd)
            if c is None or c.dead:
                continue
            if fd == c.out_fd:
                self._read(c)
            elif c.proc.exitcode is not None:  # not a reused fd number: it did exit
                self._read(c)
                if not c.dead:
                    self._retire(c, None)
        self._check_children(now)
        if self._reaping:
            self._reap()
        self._dispatch()
        return self._take_report()

    def next_deadline(self, now: float) -> float | None:
        t = math.inf
        idle = not self._pending and any(c.ready and not c.inflight for c in self._children)
        for c in self._children:
            stealable = idle and len(c.inflight) > 1 and not c.taking_back
            if not c.timed and not stealable:
                continue
            running = c.running()
            timed_running = 0
            if running is not None:
                timeout = running[1][4]
                if timeout is not None:
                    timed_running = 1
                    t = min(t, running[2] + timeout)
                if stealable:
                    t = min(t, running[2] + STEAL_AFTER)
            if c.timed > timed_running:  # queued timed tasks: look again before they could expire
                t = min(t, now + c.min_timeout)
        return None if t == math.inf else t

    def cancel(self, ids: Iterable[str]) -> None:
        wanted = set(ids)
        if self._pending and any(e[0] in wanted for e in self._pending):
            kept: deque = deque()
            for e in self._pending:
                if e[0] in wanted:
                    self._report.results.append((e[0], e[1], CANCELLED, _EMPTY))
                else:
                    kept.append(e)
            self._pending = kept
        for c in list(self._children):
            mine = wanted.intersection(c.inflight)
            if not mine or c.dead:
                continue
            started, _, finished = c.state()
            victims, take = {}, []
            for task_id in mine:
                seq = c.inflight[task_id][0]
                if seq <= finished:
                    continue  # done: its outcome is on the way and stands
                if seq == started:
                    victims[task_id] = (CANCELLED, _EMPTY)
                else:
                    self._fates[task_id] = _CANCEL
                    take.append(seq)
            if victims:  # the one it runs can only be stopped by killing the child
                self._retire(c, victims)
            elif take:
                self._take_back(c, take)
        self._dispatch()

    def withdraw_unstarted(self) -> list[str]:
        ids = [e[0] for e in self._pending]
        self._pending.clear()
        for c in self._children:
            if c.dead:
                continue
            started = c.state()[0]
            take = []
            for task_id, (seq, _) in c.inflight.items():
                if seq > started:
                    self._fates[task_id] = _WITHDRAW
                    take.append(seq)
            if take:  # what the child drops comes back in a later Report.returned
                self._take_back(c, take)
        return ids

    # --- talking to children ----------------------------------------------------------

    def _send(self, c: _Child, msg: Any) -> None:
        try:
            _write_all(c.task_fd, _packb(msg))
        except OSError:
            c.ready = False  # dead or dying: its sentinel will tell, and _retire settles
            self._kill(c)

    def _take_back(self, c: _Child, seqs: list[int]) -> None:
        c.taking_back += 1
        self._send(c, (_TAKE_BACK, seqs))

    def _dispatch(self) -> None:
        pending = self._pending
        if not pending:
            return
        ready = [c for c in self._children if c.ready and not c.dead]
        if len(ready) > 1:  # not behind a task that runs long, if another child is free
            now = time.monotonic()
            free = [c for c in ready if not c.inflight or not _runs_long(c, now)]
            ready = free or ready
        if not ready:
            return
        ready.sort(key=lambda c: len(c.inflight))
        share = -(-len(pending) // len(ready))  # spread a burst over the children
        window = self._window
        popleft = pending.popleft
        for c in ready:
            room = min(window - len(c.inflight), share, len(pending))
            if room <= 0:
                continue
            batch = [popleft() for _ in range(room)]
            seq = self._seq
            self._seq = seq + room
            c.inflight.update(zip([e[0] for e in batch], zip(range(seq, seq + room), batch)))
            timeouts = [e[4] for e in batch if e[4] is not None]
            if timeouts:
                c.timed += len(timeouts)
                c.min_timeout = min(c.min_timeout, *timeouts)
            self._send(c, (_TASKS, seq, batch))  # the child numbers them from seq
            if not pending:
                return

    def _read(self, c: _Child) -> None:
        while not c.dead:
            try:
                n, msgs = c.reader.read()
            except BlockingIOError:
                return
            except OSError:
                n, msgs = 0, []
            if not n:
                self._retire(c, None)
                return
            for msg in msgs:
                self._on_message(c, msg)
            if n < READ_SIZE:
                return

    def _on_message(self, c: _Child, msg: list) -> None:
        if c.dead:
            return
        kind = msg[0]
        if kind == _OUT:
            self._on_outcomes(c, msg)
        elif kind == _DROPPED:
            self._on_dropped(c, msg[1])
        elif kind == _READY:
            c.ready = True
            self.catalogue = msg[2]  # every child imports the same apps
            self._start_failures = 0
        elif kind == _FAILED:
            self._start_error = msg[1]

    def _on_outcomes(self, c: _Child, msg: list) -> None:
        _, results, partials, progress, busy, count = msg
        if results:
            ids = [r[0] for r in results]
            jobs: list[Any] = list(map(c.inflight.pop, ids, repeat(None)))
            if None in jobs:  # cannot happen; but never report a task we do not hold
                results = [r for r, job in zip(results, jobs) if job is not None]
                jobs = [job for job in jobs if job is not None]
            if c.timed:
                c.timed -= sum(1 for job in jobs if job[1][4] is not None)
                if not c.timed:
                    c.min_timeout = math.inf
            if self._fates:  # they finished before a take-back reached them
                list(map(self._fates.pop, ids, repeat(None)))
            self._report.results.extend(results)
        if partials:
            self._report.partials.extend(partials)
        for p in progress:
            self._progress[p[0]] = p
        if count > c.count:
            sample = (busy - c.busy) / (count - c.count)
            c.busy, c.count = busy, count
            avg = self._avg = sample if self._avg is None else 0.7 * self._avg + 0.3 * sample
            self._window = max(1, min(MAX_WINDOW, int(TARGET_QUEUE_SECONDS / max(avg, 1e-9))))

    def _on_dropped(self, c: _Child, ids: list[str]) -> None:
        c.taking_back -= 1
        requeue: list[tuple] = []
        for task_id in ids:
            job = c.inflight.pop(task_id, None)
            if job is None:
                continue
            entry = job[1]
            if entry[4] is not None:
                c.timed -= 1
            self._settle_unstarted(task_id, entry, requeue)
        self._pending.extendleft(reversed(requeue))
        # a cancelled task the child did not drop had started: kill to stop it
        finished = c.state()[2]
        victims = {task_id: (CANCELLED, _EMPTY) for task_id, fate in self._fates.items()
                   if fate == _CANCEL and task_id in c.inflight
                   and c.inflight[task_id][0] > finished}
        if victims:
            self._retire(c, victims)
        self._dispatch()

    def _settle_unstarted(self, task_id: str, entry: tuple, requeue: list) -> None:
        fate = self._fates.pop(task_id, None)
        if fate == _CANCEL:
            self._report.results.append((task_id, entry[1], CANCELLED, _EMPTY))
        elif fate == _WITHDRAW:
            self._report.returned.append(task_id)
        else:
            requeue.append(entry)

    def _check_children(self, now: float) -> None:
        """Time limits of running tasks, and idle children taking work from busy ones."""
        idle = not self._pending and any(c.ready and not c.inflight for c in self._children)
        for c in list(self._children):
            if c.dead or not (c.timed or (idle and len(c.inflight) > 1)):
                continue
            running = c.running()
            if running is None:
                continue
            task_id, entry, started_at = running
            timeout = entry[4]
            if timeout is not None and now >= started_at + timeout:
                log.warning("task %s ran past its %g s limit; killing pool child %d",
                            task_id, timeout, c.proc.pid)
                self._retire(c, {task_id: (ERROR, _timeout_error(
                    timeout, "its process was killed and replaced"))})
            elif idle and not c.taking_back and now >= started_at + STEAL_AFTER:
                self._steal(c)

    def _steal(self, c: _Child) -> None:
        started = c.state()[0]
        take = []
        for task_id, (seq, _) in c.inflight.items():
            if seq > started and task_id not in self._fates:
                self._fates[task_id] = _STEAL
                take.append(seq)
        if take:
            self._take_back(c, take)

    def _retire(self, c: _Child, victims: dict[str, tuple[int, bytes]] | None,
                replace: bool = True) -> None:
        """c died (victims None: a crash) or is killed for victims (time limit, cancel):
        settle every task it held and start a replacement."""
        if c.dead:
            return
        c.dead = True
        was_ready, c.ready = c.ready, False
        self._kill(c)
        c.proc.join(CRASH_STATUS_WAIT)  # gone: nothing more can reach its pipe
        self._read_rest(c)  # what it flushed before it died stands
        started, _, finished = c.state()
        requeue: list[tuple] = []
        lost: str | None = None
        for task_id, (seq, entry) in c.inflight.items():
            if victims is not None and task_id in victims:
                self._fates.pop(task_id, None)
                outcome, data = victims[task_id]
                self._report.results.append((task_id, entry[1], outcome, data))
            elif victims is None and seq == started > finished:
                # It died under this task: an attempt lost, as when a worker dies, not a
                # failure (the OOM killer, a segfault, os._exit). Outcome 3 unasked-for
                # tells the master so (PROTOCOL §4); a cancel asked for ends as one too.
                self._fates.pop(task_id, None)
                self._report.results.append((task_id, entry[1], CANCELLED, _EMPTY))
                lost = task_id
            else:  # never started, or finished with its outcome lost: run it again
                self._settle_unstarted(task_id, entry, requeue)
        c.inflight.clear()
        self._pending.extendleft(reversed(requeue))
        if victims is None:
            log.warning("pool child %d %s%s; replacing it", c.proc.pid, _how_it_died(c),
                        f" while running task {lost} (a lost attempt)" if lost else "")
        if not was_ready:
            self._start_failures += 1
        self._forget(c)
        if replace and not self._closing and not self._starting:
            self._replace(c.slot)

    def _read_rest(self, c: _Child) -> None:
        try:
            while True:
                n, msgs = c.reader.read()
                if not n:
                    return
                for msg in msgs:
                    if msg[0] == _OUT:
                        self._on_outcomes(c, msg)
        except OSError:
            return

    def _forget(self, c: _Child) -> None:
        self._by_fd.pop(c.out_fd, None)
        self._by_fd.pop(c.sentinel, None)
        self._fds = None
        c.task_conn.close()
        c.out_conn.close()
        self._reaping.append(c.proc)

    def _replace(self, slot: int) -> None:
        if self._start_failures >= MAX_START_FAILURES:
            self._break(f"{self._start_failures} pool children in a row died before they "
                        f"were ready ({self._start_error or 'no reason given'})")
            return
        try:
            new = self._spawn(slot)
        except Exception as e:
            self._break(f"cannot start a pool child: {type(e).__name__}: {e}")
            return
        self._children = [new if c.slot == slot else c for c in self._children]

    def _break(self, reason: str) -> None:
        log.error("process pool broken: %s", reason)
        self.broken = reason
        for e in self._pending:  # lost, not failed: the worker stops, they run elsewhere
            self._report.results.append((e[0], e[1], CANCELLED, _EMPTY))
        self._pending.clear()

    def _take_report(self) -> Report | None:
        r = self._report
        if not (r.results or r.partials or r.returned or self._progress):
            return None
        r.progress = list(self._progress.values())
        self._report, self._progress = Report(), {}
        return r
