"""The client core's vocabulary (zq/core/client_core.py): who waits for outcomes (sinks,
a Fanout of them, the chunk order a streaming task's sink keeps), the events the I/O
shell feeds the core and the commands it returns. Events are past tense or requests
from the user's side; commands are imperative. Those about the link to the master are
zq.core.peer_events', shared with the worker and named here as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from zq.core import messages as m
from zq.core.messages import SubmitEntry
from zq.core.peer_events import LinkDropped as LinkDropped
from zq.core.peer_events import LinkOpened as LinkOpened
from zq.core.peer_events import MessageReceived as MessageReceived
from zq.core.peer_events import MessagesSent as MessagesSent
from zq.core.peer_events import OpenConnection as OpenConnection
from zq.core.peer_events import OpenFailed as OpenFailed
from zq.core.peer_events import Send as Send


class Sink(Protocol):
    """Whatever waits for a task's outcome: a Future, a map() run, or a Fanout of them."""

    def on_result(self, task_id: str, state: int, payload: Any) -> None: ...
    def on_partial(self, task_id: str, attempt: int, seq: int, payload: Any) -> None: ...
    def on_progress(self, task_id: str, done: float, total: float) -> None: ...
    def on_failed(self, task_id: str, exc: BaseException) -> None: ...
    def on_cancelled(self, task_id: str) -> None: ...
    def on_followed(self, task_id: str, new_id: str) -> None: ...


class ReplySink(Protocol):
    def on_reply(self, ok: bool, body: Any) -> None: ...
    def on_lost(self, exc: BaseException) -> None: ...
    def on_expired(self) -> None: ...  # no reply by the query's deadline


class Fanout:
    """Several sinks following one task id (client.future() of an id already followed,
    or two submissions deduplicated to one task by key)."""

    __slots__ = ("sinks",)

    def __init__(self, sinks: list[Any]) -> None:
        self.sinks = sinks

    def on_result(self, *a: Any) -> None:
        for s in self.sinks:
            s.on_result(*a)

    def on_partial(self, *a: Any) -> None:
        for s in self.sinks:
            s.on_partial(*a)

    def on_progress(self, *a: Any) -> None:
        for s in self.sinks:
            s.on_progress(*a)

    def on_failed(self, *a: Any) -> None:
        for s in self.sinks:
            s.on_failed(*a)

    def on_cancelled(self, *a: Any) -> None:
        for s in self.sinks:
            s.on_cancelled(*a)

    def on_followed(self, *a: Any) -> None:
        for s in self.sinks:
            s.on_followed(*a)


class ChunkOrder:
    """Puts one streaming task's chunks in seq order. Duplicates are dropped; a chunk that
    comes early is held until the gap fills or the task ends (drain). A retried task
    streams again from its first chunk: chunks of the older attempt already given stay
    given, the rest of them are drained first."""

    __slots__ = ("attempt", "next_seq", "held")

    def __init__(self) -> None:
        self.attempt = 0
        self.next_seq = 0
        self.held: dict[int, Any] = {}

    def push(self, attempt: int, seq: int, payload: Any) -> list[Any]:
        """The chunks now ready to hand to the user, in order."""
        ready: list[Any] = []
        if attempt > self.attempt:
            ready = self.drain()
            self.attempt, self.next_seq = attempt, 0
        elif attempt < self.attempt:
            return ready
        if seq < self.next_seq or seq in self.held:
            return ready
        if seq > self.next_seq:
            self.held[seq] = payload
            return ready
        ready.append(payload)
        self.next_seq += 1
        while self.next_seq in self.held:
            ready.append(self.held.pop(self.next_seq))
            self.next_seq += 1
        return ready

    def drain(self) -> list[Any]:
        """Everything held, in seq order, gaps skipped (the task ended or moved on)."""
        if not self.held:
            return []
        seqs = sorted(self.held)
        self.next_seq = seqs[-1] + 1
        out = [self.held[s] for s in seqs]
        self.held.clear()
        return out


# --- events -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Submitted:
    """New submissions (all those one mailbox take found); entries[i]'s outcome goes to
    sinks[i]."""
    entries: Sequence[SubmitEntry]
    sinks: Sequence[Sink]


@dataclass(frozen=True, slots=True)
class WatchRequested:
    """Follow tasks by id (client.future())."""
    ids: Sequence[str]
    sinks: Sequence[Sink]


@dataclass(frozen=True, slots=True)
class CancelRequested:
    """sink, already settled as cancelled by the shell, stops following ids and the
    master is asked to cancel them."""
    ids: Sequence[str]
    sink: Sink


@dataclass(frozen=True, slots=True)
class CancelAllRequested:
    """Cancel every task still waited for (Executor.shutdown(cancel_futures=True))."""


@dataclass(frozen=True, slots=True)
class QueryAsked:
    request_id: int
    kind: str
    args: dict[str, Any]
    sink: ReplySink
    deadline: float  # monotonic seconds: no reply by then settles it as expired


@dataclass(frozen=True, slots=True)
class ClientClosed:
    """The client stops: everyone still waiting gets error; nothing is kept."""
    error: BaseException


Event = (Submitted | WatchRequested | CancelRequested | CancelAllRequested | QueryAsked
         | MessageReceived | MessagesSent | LinkOpened | OpenFailed | LinkDropped | ClientClosed)


# --- commands ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CloseConnection:
    """The master is lost: close the socket now (what was queued on it is stale)."""
    silent_for: float | None  # seconds of silence; None when the link itself dropped


@dataclass(frozen=True, slots=True)
class SettleResults:
    items: list[tuple[Sink, tuple[str, int, Any]]]  # (sink, (task_id, state, payload))


@dataclass(frozen=True, slots=True)
class SettlePartials:
    items: list[tuple[Sink, m.PartialEntry]]  # (sink, (task_id, attempt, seq, payload))


@dataclass(frozen=True, slots=True)
class SettleProgress:
    items: list[tuple[Sink, str, float, float]]  # (sink, task_id, done, total)


@dataclass(frozen=True, slots=True)
class FailTasks:
    items: list[tuple[Sink, str, BaseException]]


@dataclass(frozen=True, slots=True)
class SettleCancelled:
    items: list[tuple[Sink, str]]


@dataclass(frozen=True, slots=True)
class FollowTasks:
    """A submission was deduplicated by key: its sink now follows the existing task."""
    items: list[tuple[Sink, str, str]]  # (sink, submitted id, existing id)


@dataclass(frozen=True, slots=True)
class AnswerQuery:
    sink: ReplySink
    ok: bool
    body: Any


@dataclass(frozen=True, slots=True)
class FailQueries:
    """Each sink gets its error; None means no reply came by the deadline (the shell
    words that error: it knows the address)."""
    items: list[tuple[ReplySink, BaseException | None]]


@dataclass(frozen=True, slots=True)
class LogMasterError:
    reason: str  # an ERROR from the master


@dataclass(frozen=True, slots=True)
class FreeRoom:
    """count submissions left the unacknowledged set: room for blocked submitters."""
    count: int


Command = (Send | OpenConnection | CloseConnection | SettleResults | SettlePartials
           | SettleProgress | FailTasks | SettleCancelled | FollowTasks | AnswerQuery
           | FailQueries | LogMasterError | FreeRoom)
