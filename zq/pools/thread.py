"""The thread pool: N threads in the worker process, for I/O-bound tasks; with
``inline_under``, tasks measured shorter than that run in the worker's loop thread."""

from __future__ import annotations

import logging
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
    OK,
    START_POLL,
    InProcessPool,
    Report,
    Runner,
    Sink,
    timeout_error,
)
from zq.registry import Registry

log = logging.getLogger(__name__)

# Inline running (ThreadPool inline_under): a task name runs inline once its last
# PROVEN_RUNS runs each took less than inline_under; one loop turn runs inline tasks for
# INLINE_BUDGET seconds at most, then the loop polls its socket and comes back at once.
PROVEN_RUNS = 3
INLINE_BUDGET = 0.005
# A name runs only in threads after STRIKES inline runs over inline_under, each within
# STRIKE_WINDOW inline runs (of any name) of the one before: a busy machine that takes
# the CPU away from a short task now and then does not bar it.
STRIKES = 3
STRIKE_WINDOW = 1000
MAX_NAMES = 10_000  # names measured at most (they come off the wire)


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

    ``inline_under`` (seconds, 0 = off; ``zq worker --inline-under``): a task whose name's
    last PROVEN_RUNS runs each took less than this (wall clock) runs in the worker's loop
    thread, in the turn its TASK arrived, when no thread has work (so concurrency and
    order stay as without it): no hand-off to a thread and back, which is most of a
    no-op task's cost and two of a round trip's thread wake-ups. The loop cannot do
    anything else while it runs, so a task that turns out long holds its heartbeats,
    cancels and other tasks back until it returns (past the liveness window, the master
    takes the worker for lost and runs its tasks again elsewhere). After such a run the
    name goes back to the threads until it is proven short again, and after STRIKES of
    them close together it never runs inline again in this worker (logged). A time limit it overran
    is reported as a ``TaskTimeout`` after the fact, its result discarded, as a
    thread's would be. A task cancelled while it runs inline cannot see it (the CANCEL
    is read after it returns): it finishes.
    """

    kind = "thread"

    def __init__(self, apps: tuple[str, ...], concurrency: int, *,
                 allow_code: bool = False, inline_under: float = 0.0) -> None:
        self._apps, self._n, self._allow_code = apps, concurrency, allow_code
        self._inline_under = inline_under
        self._short: dict[str, int] = {}  # task name -> its latest runs in a row that were short
        # task name -> (its inline runs that were long, close together; _inline_runs then)
        self._strikes: dict[str, tuple[int, int]] = {}
        self._inline_runs = 0
        self._barred: set[str] = set()  # STRIKES long inline runs: threads only from then on
        self._pending: deque[TaskEntry] = deque()  # loop thread only: waiting to run inline
        self._inline_results: list[Any] = []  # loop thread only: for the next collect()
        self.broken: str | None = None
        self.catalogue: dict[str, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._queue: deque[TaskEntry] = deque()
        self._running: dict[str, _ThreadJob] = {}
        self._fresh: list[str] = []  # ids started since the last collect (Report.started)
        self._done: list[Any] = []  # outcomes of the threads' tasks since the last collect
        self._poked = False  # the sink's pipe was poked for _done since the last collect
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
        if self._inline_under:
            spent = bool(self._pending)  # this turn's inline budget is: they wait their turn
            self._pending.extend(entries)
            if not spent:
                self._run_pending()
        else:
            self._hand_off(entries)

    def _hand_off(self, entries: Iterable[TaskEntry]) -> None:
        with self._cond:
            before = len(self._queue)
            self._queue.extend(entries)
            self._cond.notify(len(self._queue) - before)

    # --- inline running (the loop thread) ---------------------------------------------------

    def _run_pending(self) -> None:
        """Run the pending entries inline, in order, while each is short by measure and no
        thread has work; from the first that is not, hand them all to the threads. Stops
        after INLINE_BUDGET seconds (next_deadline brings the loop back at once)."""
        pending, clock = self._pending, time.monotonic
        stop_at = clock() + INLINE_BUDGET
        while pending:
            entry = pending[0]
            # Only the loop thread adds to _queue, so empty ones stay empty while we run.
            if self._queue or self._running or not self._runs_inline(entry):
                self._hand_off(pending)
                pending.clear()
                return
            pending.popleft()
            self._run_inline(entry)
            if clock() >= stop_at:
                return

    def _runs_inline(self, entry: TaskEntry) -> bool:
        name, timeout = entry[2], entry[4]
        return (self._short.get(name, 0) >= PROVEN_RUNS and name not in self._barred
                and (timeout is None or timeout > self._inline_under))

    def _run_inline(self, entry: TaskEntry) -> None:
        sink = self._sink
        if sink is None:
            return
        task_id, attempt, name, payload, timeout, retry_on = entry[:6]
        ctx = TaskContext(task_id, attempt, name, sink.progress)
        began = time.monotonic()
        outcome, data = self._runner.run(ctx, payload, retry_on)
        took = time.monotonic() - began
        self._inline_runs += 1
        if took >= self._inline_under:
            self._short[name] = 0  # back to the threads until proven short again
            strikes, then = self._strikes.get(name, (0, 0))
            strikes = 1 if self._inline_runs - then > STRIKE_WINDOW else strikes + 1
            self._strikes[name] = (strikes, self._inline_runs)
            if strikes >= STRIKES:
                self._barred.add(name)
                log.warning("task %s took %.3f s in the worker's loop thread, longer than "
                            "--inline-under %g s, %d times; it runs in the pool's threads "
                            "from now on", name, took, self._inline_under, strikes)
            if timeout is not None and took > timeout:
                outcome, data = ERROR, timeout_error(
                    timeout, "it ran inline in the worker's loop, which cannot stop it; its "
                    "result was discarded")
                logs.task_ended(task_id, name, attempt, f"timed out after {timeout:g} s "
                                "(ran inline; its result was discarded)")
        self._inline_results.append((task_id, attempt, outcome, data))

    def _note_run(self, name: str, took: float) -> None:
        """A thread's run of name took this long (under _cond): counts toward inline."""
        short = self._short
        if took >= self._inline_under:
            short[name] = 0
        elif name in short or len(short) < MAX_NAMES:
            short[name] = short.get(name, 0) + 1

    def _serve(self) -> None:
        """A pool thread: take a task, run it, and end it under the same lock as the next
        take (one lock round trip per task while the queue has work); outcomes gather in
        _done, and the loop is woken once per collect."""
        sink, runner, cond, running = self._sink, self._runner, self._cond, self._running
        if sink is None:
            return
        clock, queue = time.monotonic, self._queue
        job: _ThreadJob | None = None
        outcome, took = OK, 0.0
        data: Any = EMPTY
        while True:
            with cond:
                if job is not None:  # the task just run ends here
                    task_id, attempt, name = job.entry[:3]
                    if self._inline_under:  # a run past its time limit counts too
                        self._note_run(name, took)
                    if job.abandoned:  # reported at its deadline; a new thread took our place
                        return
                    del running[task_id]
                    if job.deadline is not None:
                        self._timed -= 1
                    if job.ctx.cancelled:
                        outcome, data = CANCELLED, EMPTY
                    self._done.append((task_id, attempt, outcome, data))
                    if not self._poked:
                        self._poked = True
                        sink.poke()
                while not queue and not self._closing:
                    cond.wait()
                if self._closing:
                    return
                entry = queue.popleft()
                task_id, attempt, name, payload, timeout, retry_on = entry[:6]
                ctx = TaskContext(task_id, attempt, name, sink.progress)
                deadline = None if timeout is None else clock() + timeout
                job = running[task_id] = _ThreadJob(entry, ctx, deadline)
                self._fresh.append(task_id)
                if deadline is not None:
                    self._timed += 1
            began = clock()
            outcome, data = runner.run(ctx, payload, retry_on)
            took = clock() - began

    def cancel(self, ids: Iterable[str]) -> None:
        wanted = set(ids)
        if self._pending:
            for e in [e for e in self._pending if e[0] in wanted]:
                self._pending.remove(e)
                self._inline_results.append((e[0], e[1], CANCELLED, EMPTY))
        with self._cond:
            dropped = [e for e in self._queue if e[0] in wanted]
            if dropped:  # in place: the threads hold on to this deque
                kept = [e for e in self._queue if e[0] not in wanted]
                self._queue.clear()
                self._queue.extend(kept)
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
        if self._pending:
            self._run_pending()
        done: list[Any] = []
        started: list[str] = []
        if self._poked or self._fresh:
            with self._cond:  # before the sink's take: a task's chunks are in by its outcome
                done, self._done, self._poked = self._done, [], False
                if self._fresh:
                    running = self._running
                    started = [i for i in self._fresh if i in running]
                    self._fresh = []
        report = self._sink.take()
        if self._inline_results or done or started:
            if report is None:
                report = Report()
            # inline ones ended before the threads' news; the sink holds timeouts, cancels
            report.results[:0] = self._inline_results + done
            self._inline_results = []
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
        if self._pending or self._inline_results:
            return now  # inline work left over from the last turn's budget
        if self._poked:  # a task ended while collect() ran, and its wake-up byte was read
            return now
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
        ids = [e[0] for e in self._pending]
        self._pending.clear()
        with self._cond:
            ids += [e[0] for e in self._queue]
            self._queue.clear()
        return ids

    def close(self, kill: bool = False, timeout: float = 5.0) -> None:
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._pending.clear()
            self._queue.clear()
            for job in self._running.values():
                job.ctx.mark_cancelled()
            self._cond.notify_all()
        if self._sink is not None:
            self._sink.close()
            self._sink = None

