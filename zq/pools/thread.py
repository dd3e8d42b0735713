"""The thread pool: N threads in the worker process, for I/O-bound tasks."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Iterable

from zq import logs
from zq.context import TaskContext
from zq.core.messages import TaskEntry
from zq.pools.runner import (
    CANCELLED,
    EMPTY,
    ERROR,
    START_POLL,
    InProcessPool,
    Report,
    Runner,
    Sink,
    timeout_error,
)
from zq.registry import Registry


class _ThreadJob:
    __slots__ = ("entry", "ctx", "deadline", "abandoned")

    def __init__(self, entry: TaskEntry, ctx: TaskContext, deadline: float | None) -> None:
        self.entry, self.ctx, self.deadline = entry, ctx, deadline
        self.abandoned = False  # timed out: reported already, its thread retires



class ThreadPool(InProcessPool):
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

    def __init__(self, apps: tuple[str, ...], concurrency: int, *,
                 allow_code: bool = False) -> None:
        self._apps, self._n, self._allow_code = apps, concurrency, allow_code
        self.broken: str | None = None
        self.catalogue: dict[str, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._queue: deque[TaskEntry] = deque()
        self._running: dict[str, _ThreadJob] = {}
        self._fresh: list[str] = []  # ids started since the last collect (Report.started)
        self._timed = 0  # running jobs with a deadline
        self._closing = False
        self._sink: Sink | None = None

    def start(self) -> None:
        registry = Registry(self._apps)
        self.catalogue = registry.catalogue()
        self._sink = Sink()
        self._runner = Runner(registry, self._sink.partial, allow_code=self._allow_code)
        for _ in range(self._n):
            self._start_thread()

    def _start_thread(self) -> None:
        threading.Thread(target=self._serve, name="zq-task", daemon=True).start()

    def submit(self, entries: list[TaskEntry]) -> None:
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
                self._fresh.append(task_id)
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
                outcome, data = CANCELLED, EMPTY
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
            self._put((e[0], e[1], CANCELLED, EMPTY))

    def collect(self, now: float, ready: set[int] | frozenset[int] = frozenset()) -> Report | None:
        if self._sink is None:
            return None
        if self._timed:
            self._expire(now)
        report = self._sink.take()
        if self._fresh:
            with self._cond:
                running = self._running
                started = [i for i in self._fresh if i in running]
                self._fresh = []
            if started:
                if report is None:
                    report = Report()
                report.started = started
        return report

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
            assert timeout is not None  # only a job with a time limit has a deadline
            self._put((task_id, attempt, ERROR, timeout_error(
                timeout, "its thread was abandoned (threads cannot be stopped)")))
            logs.task_ended(task_id, job.entry[2], attempt, f"timed out after {timeout:g} s; "
                            "its thread is abandoned (threads cannot be stopped)")
            self._start_thread()

    def next_deadline(self, now: float) -> float | None:
        # A thread may start a task any moment (or just did): look again soon.
        poll = (now + START_POLL if self._fresh or self._queue and len(self._running) < self._n
                else None)
        if not self._timed:
            return poll
        with self._cond:
            t = min((j.deadline for j in self._running.values() if j.deadline is not None),
                    default=None)
        return t if poll is None else poll if t is None else min(t, poll)

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

