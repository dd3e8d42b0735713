"""Pure pieces of scheduling: the ready queue of one named queue and the rate limits'
spec. (The order in which workers are offered tasks: zq.core.offers.)"""

from __future__ import annotations

import bisect
import math
from collections import deque

from zq.core.messages import State
from zq.core.tasks import TaskRecord


class ReadyQueue:
    """Queued tasks of one named queue: highest priority first, FIFO among equals.

    One deque per priority keeps push and pop O(1) in the common case of one priority.
    Removal is lazy: a popped entry whose task is no longer QUEUED (cancelled, or
    already leased through an older entry) is skipped.
    """

    __slots__ = ("_by_priority", "_priorities")

    def __init__(self) -> None:
        self._by_priority: dict[int, deque[TaskRecord]] = {}
        self._priorities: list[int] = []  # ascending; the last is the best

    def push(self, task: TaskRecord) -> None:
        dq = self._by_priority.get(task.priority)
        if dq is None:
            dq = self._by_priority[task.priority] = deque()
            bisect.insort(self._priorities, task.priority)
        dq.append(task)

    def extend(self, tasks: list[TaskRecord]) -> None:
        """Append tasks that all have priority 0 (the fast path of submit)."""
        dq = self._by_priority.get(0)
        if dq is None:
            dq = self._by_priority[0] = deque()
            bisect.insort(self._priorities, 0)
        dq.extend(tasks)

    def push_front(self, task: TaskRecord) -> None:
        """Put a handed-back task first among its priority: it was next in line."""
        self.push(task)
        dq = self._by_priority[task.priority]
        dq.rotate(1)

    def discard(self, ids: set[str]) -> None:
        """Take these tasks out (their queue or priority changed). O(queue length):
        for rare events only, never per task."""
        for p, dq in self._by_priority.items():
            if any(t.id in ids for t in dq):
                self._by_priority[p] = deque(t for t in dq if t.id not in ids)

    def best_priority(self) -> int | None:
        while self._priorities:
            p = self._priorities[-1]
            dq = self._by_priority[p]
            while dq and dq[0].state is not State.QUEUED:
                dq.popleft()
            if dq:
                return p
            del self._by_priority[p]
            self._priorities.pop()
        return None

    def pop(self, n: int, priority: int, into: list[TaskRecord]) -> int:
        """Move up to n QUEUED tasks of this priority into `into`; how many were moved."""
        dq = self._by_priority.get(priority)
        taken = 0
        queued = State.QUEUED
        while dq and taken < n:
            t = dq.popleft()
            if t.state is queued:
                into.append(t)
                taken += 1
        return taken


def take_best(queues: list[ReadyQueue], n: int, into: list[TaskRecord]) -> int:
    """Move up to n tasks into `into` from several queues, best priority first."""
    taken = 0
    while taken < n:
        best_q, best_p = None, None
        for q in queues:
            p = q.best_priority()
            if p is not None and (best_p is None or p > best_p):
                best_q, best_p = q, p
        if best_q is None or best_p is None:
            break
        got = best_q.pop(n - taken, best_p, into)
        if got == 0:
            break
        taken += got
    return taken


def parse_rate(spec: str) -> float:
    """'100/s', '20/m', '5/h' -> tasks per second. ValueError for anything else."""
    count, _, unit = spec.partition("/")
    per = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(unit.strip())
    try:
        n = float(count)
    except ValueError:
        n = math.nan
    if per is None or not (math.isfinite(n) and n > 0):  # nan or inf would stall the name
        raise ValueError(f"rate limit {spec!r} must look like '100/s', '20/m' or '5/h'")
    return n / per
