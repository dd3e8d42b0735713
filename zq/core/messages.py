"""Typed zq wire messages: one small class per command, named as in docs/PROTOCOL.md.

Batched commands carry lists of plain tuples (one per task) rather than an object per
task: a message may hold thousands of entries and the master's cost per task matters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from zq.core.parts import Parts

# A payload: bytes (or a view of some), or (1.4) a Parts: a body and frames of its own.
Payload = bytes | memoryview | Parts


class Cmd(IntEnum):
    HELLO = 1
    WELCOME = 2
    CREDIT = 3
    TASK = 4
    PARTIAL = 5
    RESULT = 6
    ACK = 7
    CANCEL = 8
    HEARTBEAT = 9
    BYE = 10
    DISCONNECT = 11
    SUBMIT = 12
    ACCEPTED = 13
    REJECTED = 14
    BUSY = 15
    WATCH = 16
    QUERY = 17
    REPLY = 18
    ERROR = 19
    PROGRESS = 20
    EVENTS = 21  # 1.3: a subscriber's batch of task and worker events
    STANDBY = 22  # 1.4: "I am a standby master", and where the active one is if known
    STARTED = 23  # 1.4: tasks a worker began running after they waited in its queue


class Role(IntEnum):
    """Who sent a message; named by the signature frame."""

    WORKER = 1
    CLIENT = 2
    MASTER = 3


class Outcome(IntEnum):
    """How one attempt ended, as a worker reports it."""

    OK = 0  # payload: the msgpack result
    ERROR = 1  # payload: an error map; the master may retry if attempts remain
    FATAL = 2  # payload: an error map; never retried (not in retry_on, unknown task)
    CANCELLED = 3  # payload: empty


class State(IntEnum):
    """A task's life; see zq.core.states for the legal edges."""

    PENDING = 0  # waiting for its time (delay/eta) or for tasks it runs after
    QUEUED = 1
    RUNNING = 2
    SUCCEEDED = 3
    FAILED = 4
    CANCELLED = 5
    RETRYING = 6  # waiting out its backoff before it is queued again
    DEAD = 7  # failed on its last attempt

    @property
    def label(self) -> str:
        return self.name.lower()


FINAL_STATES = frozenset({State.SUCCEEDED, State.FAILED, State.CANCELLED, State.DEAD})


# An entry of a batch the codec refused on its own, the rest of the message being good:
# (its task id, or None when it has no valid one; why). See docs/PROTOCOL.md §7.
BadEntry = tuple["str | None", str]


# --- worker -> master ---------------------------------------------------------------


@dataclass(slots=True)
class Hello:
    name: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    pool: str
    credit: int
    running: list[str] = field(default_factory=list)  # task ids held: running or prefetched
    # 1.1: a random token made once per worker process, the same in each of its HELLOs;
    # the master knows a worker by it, not by its name. "" only from a 1.0 worker.
    session: str = ""
    # 1.1: the task names this worker runs -> the options each declares (DECLARABLE keys)
    catalogue: dict[str, dict[str, Any]] = field(default_factory=dict)
    # 1.4: this worker runs code shipped by value (zq worker --allow-code); the master
    # refuses such a worker unless it runs with keys
    allow_code: bool = False
    # 1.4: this worker sends STARTED (the master then counts a task it leases to it as
    # started only when it starts: at once into a free slot, else when STARTED says so)
    started: bool = False
    cmd = Cmd.HELLO


@dataclass(slots=True)
class Credit:
    credit: int  # the worker's total credit from now on (concurrency + prefetch, or 0)
    returned: list[str] = field(default_factory=list)  # prefetched ids it will not start
    bad: list[BadEntry] = field(default_factory=list)  # refused entries (decoded only)
    cmd = Cmd.CREDIT


# (task_id, attempt, outcome, payload)
ResultEntry = tuple[str, int, int, Payload]
# (task_id, attempt, seq, payload)
PartialEntry = tuple[str, int, int, Payload]
# (task_id, attempt, done, total)
ProgressEntry = tuple[str, int, float, float]
# (task_id, attempt)
StartedEntry = tuple[str, int]


@dataclass(slots=True)
class Result:
    """W->M: finished attempts. M->C: final results, entries (task_id, state, payload)."""

    entries: list[Any]
    bad: list[BadEntry] = field(default_factory=list)  # refused entries (decoded only)
    cmd = Cmd.RESULT


@dataclass(slots=True)
class Partial:
    entries: list[PartialEntry]  # streamed chunks of generator tasks, in seq order
    bad: list[BadEntry] = field(default_factory=list)  # refused entries (decoded only)
    cmd = Cmd.PARTIAL


@dataclass(slots=True)
class Progress:
    entries: list[ProgressEntry]
    bad: list[BadEntry] = field(default_factory=list)  # refused entries (decoded only)
    cmd = Cmd.PROGRESS


@dataclass(slots=True)
class Started:
    """1.4: these attempts began running on the worker (PROTOCOL §4, Starts)."""

    entries: list[StartedEntry]
    bad: list[BadEntry] = field(default_factory=list)  # refused entries (decoded only)
    cmd = Cmd.STARTED


@dataclass(slots=True)
class Bye:
    returned: list[str]  # prefetched task ids handed back unstarted
    bad: list[BadEntry] = field(default_factory=list)  # refused entries (decoded only)
    cmd = Cmd.BYE


# --- master -> worker ---------------------------------------------------------------


@dataclass(slots=True)
class Welcome:
    heartbeat_interval: float
    liveness: int
    max_message: int
    master_id: str
    started: bool = False  # 1.4: send STARTED (the worker's HELLO offered to)
    cmd = Cmd.WELCOME


# (task_id, attempt, name, payload, timeout or None, retry_on: exception names or None)
TaskEntry = tuple[str, int, str, Payload, "float | None", "list[str] | None"]


@dataclass(slots=True)
class Task:
    entries: list[TaskEntry]
    cmd = Cmd.TASK


@dataclass(slots=True)
class Ack:
    ids: list[str]  # results now durable: the worker may forget them
    cmd = Cmd.ACK


@dataclass(slots=True)
class Cancel:
    ids: list[str]  # C->M: cancel these tasks; M->W: stop running these
    bad: list[BadEntry] = field(default_factory=list)  # refused entries (decoded only)
    cmd = Cmd.CANCEL


@dataclass(slots=True)
class Heartbeat:
    cmd = Cmd.HEARTBEAT


@dataclass(slots=True)
class Disconnect:
    reason: str  # the peer must close its socket, reconnect and register again
    # 1.4: the master will not take this worker as it is: it must stop, not register again
    final: bool = False
    cmd = Cmd.DISCONNECT


@dataclass(slots=True)
class Standby:
    """The answer of a master that waits as standby to anything a peer sends (1.4): the
    peer goes to `active` (an endpoint; '' when this master does not know it) or to
    the next master of its list."""
    active: str
    cmd = Cmd.STANDBY


# --- client -> master ---------------------------------------------------------------

# (task_id, name, payload, options map); options keys are listed in SUBMIT_OPTIONS
SubmitEntry = tuple[str, str, Payload, dict[str, Any]]


@dataclass(slots=True)
class Submit:
    entries: list[SubmitEntry]
    bad: list[BadEntry] = field(default_factory=list)  # refused entries (decoded only)
    cmd = Cmd.SUBMIT


@dataclass(slots=True)
class Accepted:
    ids: list[str]  # durable now
    same_as: dict[str, str] = field(default_factory=dict)  # id -> existing task id (key dedup)
    cmd = Cmd.ACCEPTED


@dataclass(slots=True)
class RejectedEntries:
    entries: list[tuple[str, str]]  # (task_id, reason)
    cmd = Cmd.REJECTED


@dataclass(slots=True)
class Busy:
    ids: list[str]  # not accepted: send again after retry_after seconds
    retry_after: float
    cmd = Cmd.BUSY


@dataclass(slots=True)
class Events:
    first: int  # sequence number of the first event (counts every event sent to this peer)
    events: list[dict[str, Any]]  # each: "kind", "time" and the kind's fields (PROTOCOL §5.2)
    dropped: int  # events left out since the previous EVENTS: the subscriber fell behind
    cmd = Cmd.EVENTS


@dataclass(slots=True)
class Watch:
    ids: list[str]  # push the result (and later chunks) of these tasks to me
    bad: list[BadEntry] = field(default_factory=list)  # refused entries (decoded only)
    cmd = Cmd.WATCH


@dataclass(slots=True)
class Query:
    request_id: int
    kind: str  # "status", "tasks", "retry", "purge", ... (docs/PROTOCOL.md)
    args: dict[str, Any]
    cmd = Cmd.QUERY


@dataclass(slots=True)
class Reply:
    request_id: int
    ok: bool
    body: Any  # the answer, or an error message when not ok
    cmd = Cmd.REPLY


@dataclass(slots=True)
class Error:
    reason: str  # the master could not understand the sender's last message
    cmd = Cmd.ERROR


Message = (
    Hello | Credit | Result | Partial | Progress | Bye | Welcome | Task | Ack | Cancel
    | Heartbeat | Disconnect | Submit | Accepted | RejectedEntries | Busy | Watch | Query | Reply
    | Error | Events | Standby | Started
)

# Option keys a SUBMIT entry may carry; absent means the default.
SUBMIT_OPTIONS = {
    "queue": str,  # default "default"
    "priority": int,  # higher runs first; default 0
    "retries": int,  # extra attempts after a failure; default 0
    "timeout": float,  # seconds per attempt; default none
    "eta": float,  # unix time (wall clock) before which the task must not start
    "delay": float,  # seconds from acceptance before the task may start
    "key": str,  # deduplication key
    "after": list,  # task ids that must succeed first
    "inputs": list,  # 1.4: task ids whose results the arguments refer to (Ext.REF)
    "retry_backoff": float,  # base seconds of the exponential backoff; default 1
    "retry_backoff_max": float,  # cap of the backoff; default 600
    "retry_on": list,  # exception type names that retry; default all
    "result_ttl": float,  # seconds to keep the result; default the master's
    "rate_limit": str,  # "100/s", "20/m" or "5/h": the most tasks of this name started
}

# The SUBMIT options a task may declare (@zq.task) and a worker announce in its HELLO
# catalogue: the ones about the task, not about one submission of it.
DECLARABLE = frozenset({"queue", "priority", "retries", "timeout", "retry_backoff",
                        "retry_backoff_max", "retry_on", "result_ttl", "rate_limit"})
