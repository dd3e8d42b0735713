"""What the master core hands the metrics each turn: the tasks submitted, leased,
finished and retried, kept as the core's own batches (one append per batch, not per
task), so a master with metrics on pays little and one with them off pays nothing."""

from __future__ import annotations

from zq.core.messages import State
from zq.core.tasks import TaskRecord


class MetricsTap:
    """Filled by the core during a turn, taken whole by the loop at its end (take()).
    The records are the core's own: read them in the loop's thread, before the next
    turn changes them."""

    __slots__ = ("submitted", "started", "finished", "retried")

    def __init__(self) -> None:
        self.submitted: list[list[TaskRecord]] = []  # new tasks (QUEUED or PENDING)
        self.started: list[list[TaskRecord]] = []  # leased: t.waited is set
        self.finished: list[tuple[State, list[TaskRecord]]] = []  # final, by state
        self.retried: list[TaskRecord] = []  # failed with attempts left (RETRYING)

    def __bool__(self) -> bool:
        return bool(self.submitted or self.started or self.finished or self.retried)

    def take(self) -> MetricsTap:
        """What this turn gathered; the tap is empty again."""
        out = MetricsTap()
        out.submitted, self.submitted = self.submitted, []
        out.started, self.started = self.started, []
        out.finished, self.finished = self.finished, []
        out.retried, self.retried = self.retried, []
        return out
