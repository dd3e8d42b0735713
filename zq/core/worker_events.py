"""The worker core's vocabulary (zq/core/worker_core.py): the events the worker's I/O
loop feeds it and the commands it returns. Events are past tense, commands imperative;
all are frozen dataclasses. Those about the link to the master are zq.core.peer_events',
shared with the client and named here as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zq.core import messages as m
from zq.core.peer_events import GarbageReceived as GarbageReceived
from zq.core.peer_events import LinkDropped as LinkDropped
from zq.core.peer_events import MessageReceived as MessageReceived
from zq.core.peer_events import OpenConnection as OpenConnection
from zq.core.peer_events import Send as Send

# --- events ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Started:
    """The loop is up: open the first connection to the master."""
    now: float


@dataclass(frozen=True, slots=True)
class PoolReported:
    """What the pool had to say since the last report (zq.pools.Report)."""
    results: list[m.ResultEntry]  # (task_id, attempt, outcome, payload)
    partials: list[m.PartialEntry]
    progress: list[m.ProgressEntry]  # latest per task
    returned: list[str]  # ids the pool gave back unstarted (during a stop)
    now: float
    started: list[str] = field(default_factory=list)  # ids running now, not told before


@dataclass(frozen=True, slots=True)
class StopRequested:
    """Graceful stop; ``returned`` are held ids the pool dropped unstarted."""
    returned: list[str]
    now: float


@dataclass(frozen=True, slots=True)
class StopForced:
    now: float


@dataclass(frozen=True, slots=True)
class SendFailed:
    """The socket refused a message (its queue is full)."""
    message: m.Message
    now: float


Event = (Started | MessageReceived | GarbageReceived | PoolReported | StopRequested
         | StopForced | SendFailed | LinkDropped)


# --- commands -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CloseConnection:
    reason: str  # for the log
    lost: bool = True  # the master went silent (False: we are leaving)


@dataclass(frozen=True, slots=True)
class Execute:
    entries: list[m.TaskEntry]


@dataclass(frozen=True, slots=True)
class CancelTasks:
    ids: list[str]


@dataclass(frozen=True, slots=True)
class KillTasks:
    """Stop every task at once; they report nothing more."""


@dataclass(frozen=True, slots=True)
class Exit:
    code: int


Command = (Send | OpenConnection | CloseConnection | Execute | CancelTasks | KillTasks
           | Exit)
