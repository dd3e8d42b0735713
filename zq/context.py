"""The running task as the task sees it: ``zq.current_task()`` and its TaskContext.

Works in every pool: the context lives in a ContextVar, which each thread and each
asyncio task sees separately, and child processes set it around every task they run.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Callable

# (task_id, attempt, done, total): how a pool hears of progress; it coalesces them.
ProgressSink = Callable[[str, int, float, float], None]

# A ContextVar is an immutable handle; its values are per thread / per asyncio task,
# so this is not shared mutable state.
_CURRENT: ContextVar[TaskContext | None] = ContextVar("zq_current_task", default=None)


class TaskContext:
    """What a running task may know and say about itself."""

    __slots__ = ("id", "attempt", "name", "_sink", "_cancelled")

    def __init__(self, task_id: str, attempt: int, name: str, sink: ProgressSink) -> None:
        self.id = task_id
        self.attempt = attempt
        self.name = name
        self._sink = sink
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        """True once the task was cancelled or ran out of time. Only the thread pool (and
        sync functions in the async pool) need this: they cannot be stopped from outside,
        so a long task should check it and return early."""
        return self._cancelled

    def progress(self, done: float, total: float = 1.0) -> None:
        """Report progress (e.g. ``progress(3, 10)``). Cheap: reports are coalesced to the
        latest per task before they are sent."""
        self._sink(self.id, self.attempt, float(done), float(total))

    def mark_cancelled(self) -> None:
        """For the pools: ask the task to stop (sets ``cancelled``)."""
        self._cancelled = True

    def __repr__(self) -> str:
        return f"TaskContext({self.id!r}, attempt={self.attempt}, name={self.name!r})"


def current_task() -> TaskContext | None:
    """The task running in this thread or coroutine, or None outside a zq task (so code
    that also runs locally can check ``if (t := zq.current_task()) is not None``)."""
    return _CURRENT.get()


# For the pools: ``token = activate(ctx)`` makes ctx current until ``deactivate(token)``.
# The ContextVar's own methods, not wrappers: they run once per task on the hot path.
activate: Callable[[TaskContext], Token] = _CURRENT.set  # type: ignore[assignment]
deactivate: Callable[[Token], None] = _CURRENT.reset
