"""The master's record of one task: what the store keeps and the scheduler mutates."""

from __future__ import annotations

from operator import attrgetter
from typing import Any, ClassVar

from zq.core.messages import FINAL_STATES, Payload, State
from zq.core.serde import decode_error, encode_error

_new = object.__new__
_QUEUED = State.QUEUED

# Every field of a record, in the order the store's rows have always listed them.
FIELDS = (
    "id", "name", "payload", "queue", "priority", "state", "attempt", "retries",
    "timeout", "eta", "key", "after", "retry_backoff", "retry_backoff_max", "retry_on",
    "result_ttl", "created", "updated", "worker", "result", "progress", "seq", "owner",
    "started", "waited", "inputs",
)
# The fields a plain task leaves at these defaults (options given at submission or
# declared by a worker, and progress): a plain record has no room for them and reads
# the defaults from its class. The first one set turns the record into a
# TaskWithOptions, which keeps them all in one _Options object (issue 18: 1,000,000
# queued tasks; a slot costs 8 bytes a task whether it is used or not).
OPTIONAL: dict[str, Any] = {
    "retries": 0, "timeout": None, "eta": None, "key": None, "after": None,
    "retry_backoff": 1.0, "retry_backoff_max": 600.0, "retry_on": None, "result_ttl": None,
    "progress": None, "inputs": None,
}
OPTIONAL_DEFAULTS = tuple(OPTIONAL.values())  # in OPTIONAL's order
_SLOTS = tuple(f for f in FIELDS if f not in OPTIONAL)


def is_default(name: str, value: Any) -> bool:
    """Whether value is OPTIONAL[name] with its type (a retry_backoff of 1 stays an int)."""
    default = OPTIONAL[name]
    return value is default or (type(value) is type(default) and value == default)


class _Options:
    """A TaskWithOptions' optional fields."""

    __slots__ = tuple(OPTIONAL)
    retries: int
    timeout: float | None
    eta: float | None
    key: str | None
    after: list[str] | None
    retry_backoff: float
    retry_backoff_max: float
    retry_on: list[str] | None
    result_ttl: float | None
    progress: tuple[float, float] | None
    inputs: list[str] | None

    def copy(self) -> _Options:
        o = _new(_Options)
        for name in OPTIONAL:
            setattr(o, name, getattr(self, name))
        return o


class TaskRecord:
    """One task. A slot class, not a dataclass: the master may hold millions of them.
    The OPTIONAL fields are class attributes here, holding their defaults: read them as
    any field (`t.timeout`), set them only with set_options()."""

    __slots__ = (*_SLOTS, "_options")

    retries: ClassVar[int] = 0
    timeout: ClassVar[float | None] = None
    eta: ClassVar[float | None] = None  # wall-clock time before which it must not start
    key: ClassVar[str | None] = None
    after: ClassVar[list[str] | None] = None
    retry_backoff: ClassVar[float] = 1.0
    retry_backoff_max: ClassVar[float] = 600.0
    retry_on: ClassVar[list[str] | None] = None
    result_ttl: ClassVar[float | None] = None
    progress: ClassVar[tuple[float, float] | None] = None
    # Tasks whose results its arguments refer to (issue 17, zq.core.workflows): also
    # in `after`; their results travel with its TASK.
    inputs: ClassVar[list[str] | None] = None

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
        self.created = created  # wall clock
        self.updated = updated  # wall clock of the last state change
        self.worker = worker  # name of the worker that ran it last
        self.result = result  # result or error payload once final
        self.seq = seq  # submission order: FIFO among equal priorities
        self.owner = owner  # with keys: the public key that submitted it (zq.core.access)
        # Timing of the latest attempt (set where it is leased, one store per field):
        # when (wall clock), and how long it had waited QUEUED before. It finished at
        # `updated` once final. Leased to a worker that says when a task starts (1.4)
        # behind its busy slots: started is None, and waited the wait until the lease,
        # until it starts (MasterCore.mark_started).
        self.started = started
        self.waited = waited
        self.take_options((retries, timeout, eta, key, after, retry_backoff,
                           retry_backoff_max, retry_on, result_ttl, progress, inputs))

    @staticmethod
    def plain(id: str, name: str, payload: Any, wall: float, seq: int) -> TaskRecord:
        """A QUEUED task with every option at its default: the hot path of submit,
        3x cheaper than __init__ with keywords."""
        t = _new(TaskRecord)
        t.id, t.name, t.payload, t.state = id, name, payload, _QUEUED
        t.queue, t.priority = "default", 0
        t.attempt = 0
        t.created = t.updated = wall
        t.worker = t.result = t.owner = t.started = t.waited = None
        t.seq = seq
        return t

    def take_options(self, values: tuple[Any, ...] | list[Any]) -> None:
        """Every OPTIONAL field, in its order (a store's row): set_options() of those
        that are not their defaults, in one comparison when none is (a plain task)."""
        if (values == OPTIONAL_DEFAULTS and type(values[0]) is int
                and type(values[5]) is float and type(values[6]) is float):
            return
        self.set_options(**{name: value for name, value in zip(OPTIONAL, values)
                            if not is_default(name, value)})

    def set_options(self, **fields: Any) -> None:
        """Sets OPTIONAL fields. A plain record becomes a TaskWithOptions at its first
        value that is not the default; a default given to a plain record changes
        nothing, so code that resets a field costs a plain task nothing."""
        unknown = fields.keys() - OPTIONAL.keys()
        if unknown:
            raise AttributeError(f"not an optional field of a task: {', '.join(sorted(unknown))}")
        if type(self) is TaskRecord:
            fields = {name: value for name, value in fields.items()
                      if not is_default(name, value)}
            if not fields:
                return
            options = _new(_Options)
            for name, default in OPTIONAL.items():
                setattr(options, name, default)
            self._options = options
            self.__class__ = TaskWithOptions
        options = self._options
        for name, value in fields.items():
            setattr(options, name, value)

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


class TaskWithOptions(TaskRecord):
    """A task with an OPTIONAL field set: the same slots (so a TaskRecord can become
    one in place), the OPTIONAL fields read from its _Options."""

    __slots__ = ()

    def __copy__(self) -> TaskWithOptions:
        """A copy that does not share its _Options with this task."""
        t = _new(TaskWithOptions)
        for name in _SLOTS:
            setattr(t, name, getattr(self, name))
        t._options = self._options.copy()
        return t


for _name in OPTIONAL:  # read-only: set_options() is the one way to set them
    setattr(TaskWithOptions, _name, property(attrgetter(f"_options.{_name}")))


def cancelled_error(message: str) -> bytes:
    """The error a cancelled task ends with."""
    return encode_error("CancelledError", message)
