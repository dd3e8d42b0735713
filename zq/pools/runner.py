"""What every pool shares: running one task in the calling thread (`Runner`), the error
payloads (`classify`, `error_payload`), the `Report` a pool hands the worker loop, the
`Pool` protocol, and the `Sink` through which the in-process pools report.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import traceback
from dataclasses import dataclass, field
from types import AsyncGeneratorType, CoroutineType, GeneratorType
from typing import Any, Callable, Iterable, Protocol

from zq import shipping
from zq.context import TaskContext, activate, deactivate
from zq.core import serde
from zq.core.messages import Outcome, PartialEntry, Payload, ProgressEntry, ResultEntry, TaskEntry
from zq.core.shipped import is_shipped
from zq.logs import TaskLog
from zq.registry import Registry

OK, ERROR, FATAL, CANCELLED = (int(o) for o in Outcome)
EMPTY = b""
# How soon the loop looks again while a task may have started unseen (its start wakes
# nobody: a no-op task's RESULT is the only sign it needs). Report.started, PROTOCOL §4.
START_POLL = 0.01


@dataclass(slots=True)
class Report:
    """What a pool has to say since the last collect(): wire-shaped entries."""

    # Entries as in the wire messages; those a process pool's child sent arrive as lists.
    results: list[ResultEntry] = field(default_factory=list)  # (id, attempt, outcome, payload)
    partials: list[PartialEntry] = field(default_factory=list)  # (id, attempt, seq, payload)
    progress: list[ProgressEntry] = field(default_factory=list)  # (id, attempt, done, total)
    returned: list[str] = field(default_factory=list)  # ids withdrawn unstarted, after the fact
    # ids that began running since the last report and still run (a task that started
    # and ended in between is left out: its result says it started)
    started: list[str] = field(default_factory=list)


class Pool(Protocol):
    """What the worker loop needs from a pool. Only the loop's thread calls these."""

    kind: str
    broken: str | None  # why the pool cannot run tasks any more, or None
    # after start(): task name -> declared options (Registry.catalogue)
    catalogue: dict[str, dict[str, Any]]

    def start(self) -> None: ...
    def fds(self) -> list[int]: ...
    def submit(self, entries: list[TaskEntry]) -> None: ...
    def cancel(self, ids: Iterable[str]) -> None: ...
    def collect(self, now: float, ready: set[int] | frozenset[int]) -> Report | None: ...
    # includes now + START_POLL while a task may have started without a report saying so
    def next_deadline(self, now: float) -> float | None: ...
    def withdraw_unstarted(self) -> list[str]: ...
    def close(self, kill: bool = False, timeout: float = 5.0) -> None: ...



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
    """The error map of exc (serde.encode_exception): type, message, args, and the
    traceback without our frames."""
    tb = exc.__traceback__
    for _ in range(skip_frames):
        if tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    try:
        message = str(exc)
    except Exception:
        message = repr(exc)
    return serde.encode_exception(exc, message, text)


def timeout_error(seconds: float, how: str) -> bytes:
    return serde.encode_error("TaskTimeout", f"the task ran longer than its time limit of "
                              f"{seconds:g} s; {how}")


CODE_NOT_ALLOWED = (
    "{name} is code shipped by value (a client with ship_code=True), and this worker does "
    "not run shipped code. Start a worker with `zq worker --allow-code` (its master must "
    "run with --keys) on a trusted cluster, or submit a module-level function of an --app "
    "module")


class Runner:
    """Runs one task in the calling thread: resolve, decode, call, stream, encode."""

    def __init__(self, registry: Registry,
                 on_partial: Callable[[str, int, int, Payload], None], *,
                 allow_code: bool = False) -> None:
        self._registry = registry
        self._allow_code = allow_code  # zq worker --allow-code: shipped code runs
        self._on_partial = on_partial
        # only names that resolved: bounded by the apps
        self._fns: dict[str, Callable[..., Any]] = {}
        self.log = TaskLog()  # each finished task's line; the async pool's coroutines too

    def resolve(self, name: str) -> Callable[..., Any]:
        fn = self._fns.get(name)
        if fn is None:
            fn = self._fns[name] = self._registry.resolve(name)
        return fn

    def run(self, ctx: TaskContext, payload: Any,
            retry_on: list[str] | None) -> tuple[int, Payload]:
        fn = self._fns.get(ctx.name)
        if fn is None:
            if is_shipped(ctx.name):
                return self._run_shipped(ctx, payload, retry_on)
            try:
                fn = self.resolve(ctx.name)
            except LookupError as e:
                return FATAL, serde.encode_error("UnknownTask", str(e))
        try:
            args, kwargs = serde.decode_call(payload)
        except Exception as e:
            return FATAL, serde.encode_error(
                "SerializationError", f"cannot decode the arguments of {ctx.name}: {e}")
        return self._call(ctx, fn, args, kwargs, retry_on)

    def _run_shipped(self, ctx: TaskContext, payload: Any, retry_on: list[str] | None
                     ) -> tuple[int, Payload]:
        """A callable sent by value (docs/TASKS.md, Code shipping): refused unless this
        worker allows code; a payload that does not load fails the task, never the pool."""
        if not self._allow_code:
            return FATAL, serde.encode_error("CodeNotAllowed", CODE_NOT_ALLOWED.format(
                name=ctx.name))
        try:
            fn, args, kwargs = shipping.load(payload)
        except Exception as e:
            return FATAL, serde.encode_error(
                "SerializationError", f"cannot load the shipped task {ctx.name}: {e}")
        return self._call(ctx, fn, args, kwargs, retry_on)

    def _call(self, ctx: TaskContext, fn: Callable[..., Any], args: list[Any],
              kwargs: dict[str, Any], retry_on: list[str] | None) -> tuple[int, Payload]:
        token = activate(ctx)
        started = time.monotonic()
        try:
            value = fn(*args, **kwargs)
            kind = type(value)
            if kind is GeneratorType:
                value = self._stream(value, ctx)
            elif kind is CoroutineType:
                value = asyncio.run(value)  # a coroutine function outside the async pool
            elif kind is AsyncGeneratorType:
                value = asyncio.run(self._astream(value, ctx))
            data = serde.encode_value(value)
        except BaseException as e:  # SystemExit and friends fail the task, not the pool
            outcome = classify(e, retry_on)
            self.log.failed(ctx, time.monotonic() - started, e, outcome == ERROR)
            return outcome, error_payload(e)
        finally:
            deactivate(token)
        log = self.log
        if log.loud or log.quiet:
            log.succeeded(ctx, time.monotonic() - started)
        return OK, data

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


class Sink:
    """Outcomes from pool threads to the worker loop, which a pipe wakes up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._report = Report()
        self._progress: dict[str, ProgressEntry] = {}
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

    def poke(self) -> None:
        """Wake the loop for news kept elsewhere (the thread pool's outcomes)."""
        with self._lock:
            if not self._closed:
                self._wake()

    def result(self, entry: ResultEntry) -> None:
        with self._lock:
            if not self._closed:  # after close nobody collects: dropped
                self._report.results.append(entry)
                self._wake()

    def partial(self, task_id: str, attempt: int, seq: int, payload: Payload) -> None:
        with self._lock:
            if not self._closed:
                self._report.partials.append((task_id, attempt, seq, payload))
                self._wake()

    def progress(self, task_id: str, attempt: int, done: float, total: float) -> None:
        with self._lock:
            if not self._closed:
                self._progress[task_id] = (task_id, attempt, done, total)
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




class InProcessPool:
    """What the thread and async pools share: outcomes go to a Sink the loop polls."""

    _sink: Sink | None

    def fds(self) -> list[int]:
        return [self._sink.fileno()] if self._sink is not None else []

    def _put(self, entry: ResultEntry) -> None:
        sink = self._sink
        if sink is not None:  # None once closed: late outcomes are dropped
            sink.result(entry)

