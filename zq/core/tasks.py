"""The master's record of one task: what the store keeps and the scheduler mutates."""

from __future__ import annotations

from typing import Any

from zq.core.messages import FINAL_STATES, Payload, State
from zq.core.serde import decode_error, encode_error

_new = object.__new__
_QUEUED = State.QUEUED


class TaskRecord:
    """One task. A slot class, not a dataclass: the master may hold millions of them."""

    __slots__ = (
        "id", "name", "payload", "queue", "priority", "state", "attempt", "retries",
        "timeout", "eta", "key", "after", "retry_backoff", "retry_backoff_max", "retry_on",
        "result_ttl", "created", "updated", "worker", "result", "progress", "seq", "owner",
        "started", "waited", "inputs",
    )

    def __init__(self, id: str, name: str, payload: Any, *, queue: str = "default",
                 priority: int = 0, state: State = State.QUEUED, attempt: int = 0,
                 retries: int = 0, timeout: float | None = None, eta: float | None = None,
                 key: str | None = None, after: list[str] | None = None,
                 retry_backoff: float = 1.0, retry_backoff_max: float = 600.0,
                 retry_on: list[str] | None = None, result_ttl: float | None = None,
                 created: float = 0.0, updated: float = 0.0, worker: str | None = None,
                 result: Payload | None = None, progress: tuple[float, float] | None = None,
                 seq: int = 0, owner: str | None = None, started: float | None = None,
                 waited: float | None = None, inputs: list[str] | None = None) -> None:
        self.id = id
        self.name = name
        self.payload = payload
        self.queue = queue
        self.priority = priority
        self.state = state
        self.attempt = attempt  # attempts started so far
        self.retries = retries
        self.timeout = timeout
        self.eta = eta  # wall-clock time before which it must not start
        self.key = key
        self.after = after
        self.retry_backoff = retry_backoff
        self.retry_backoff_max = retry_backoff_max
        self.retry_on = retry_on
        self.result_ttl = result_ttl
        self.created = created  # wall clock
        self.updated = updated  # wall clock of the last state change
        self.worker = worker  # name of the worker that ran it last
        self.result = result  # result or error payload once final
        self.progress = progress
        self.seq = seq  # submission order: FIFO among equal priorities
        self.owner = owner  # with keys: the public key that submitted it (zq.core.access)
        # Timing of the latest attempt (set where it is leased, one store per field):
        # when (wall clock), and how long it had waited QUEUED before. It finished at
        # `updated` once final. Leased to a worker that says when a task starts (1.4)
        # behind its busy slots: started is None, and waited the wait until the lease,
        # until it starts (MasterCore.mark_started).
        self.started = started
        self.waited = waited
        # Tasks whose results its arguments refer to (issue 17, zq.core.workflows): also
        # in `after`; their results travel with its TASK.
        self.inputs = inputs

    @staticmethod
    def plain(id: str, name: str, payload: Any, wall: float, seq: int) -> TaskRecord:
        """A QUEUED task with every option at its default: the hot path of submit,
        3x cheaper than __init__ with keywords."""
        t = _new(TaskRecord)
        t.id, t.name, t.payload, t.state = id, name, payload, _QUEUED
        t.queue, t.priority = "default", 0
        t.attempt = t.retries = 0
        t.timeout = t.eta = t.key = t.after = t.retry_on = t.result_ttl = None
        t.retry_backoff, t.retry_backoff_max = 1.0, 600.0
        t.created = t.updated = wall
        t.worker = t.result = t.progress = t.owner = t.started = t.waited = None
        t.inputs = None
        t.seq = seq
        return t

    def as_dict(self) -> dict[str, Any]:
        """The task as QUERY answers show it (no payloads)."""
        error = None
        if self.result is not None and self.state in (State.FAILED, State.DEAD, State.CANCELLED):
            error = decode_error(self.result)
        return {"id": self.id, "name": self.name, "queue": self.queue,
                "state": self.state.label, "priority": self.priority,
                "attempt": self.attempt, "retries": self.retries, "created": self.created,
                "updated": self.updated, "worker": self.worker, "error": error,
                "progress": list(self.progress) if self.progress else None,
                "key": self.key, "eta": self.eta, **self.timing()}

    def timing(self) -> dict[str, float | None]:
        """started and finished (wall clock), runtime and queue_wait (seconds) of the
        latest attempt; None where it has not happened. A wall clock stepped back
        between the two ends shows as 0, never as a negative duration."""
        finished = self.updated if self.state in FINAL_STATES else None
        runtime = None
        if finished is not None and self.started is not None:
            runtime = max(0.0, finished - self.started)
        return {"started": self.started, "finished": finished, "runtime": runtime,
                "queue_wait": self.waited if self.started is not None else None}

    def __repr__(self) -> str:
        return f"TaskRecord({self.id!r}, {self.name!r}, {self.state.label}, attempt={self.attempt})"


def cancelled_error(message: str) -> bytes:
    """The error a cancelled task ends with."""
    return encode_error("CancelledError", message)
