"""The client's session with the master, without I/O (docs/PROTOCOL.md §5-6): what to send
and send again, which waiting task each message from the master settles, and when the
master counts as lost.

Events in (``handle``), commands out; ``tick(now)`` runs the timers and
``next_deadline()`` says when the I/O shell (zq/client/io_loop.py) must call it even if
nothing happens. One event per message or per mailbox take, one command per kind of
outcome of it (never one per task entry): this is the submit and result hot path.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import Enum
from itertools import repeat
from operator import itemgetter
from typing import Any, Callable, Iterable, Iterator, Sequence

from zq.core import client_events as ce
from zq.core import codec
from zq.core import messages as m
from zq.core.backoff import CLIENT_JITTER, compute_backoff
from zq.core.messages import FINAL_STATES, Cmd, SubmitEntry
from zq.errors import ConnectionLost, Rejected

# Queries safe to send again after a reconnect; the others (retry, purge) may have been
# applied already, so they fail with ConnectionLost instead.
READ_ONLY_QUERIES = frozenset({"status", "tasks", "get", "schedule_list"})
MAX_SUBMIT_BYTES = 8 * 1024 * 1024  # payload bytes per SUBMIT; keeps frames and headers small
MAX_RETRY_AFTER = 60.0  # a BUSY asking for longer is capped: a wire value is never trusted

_payload_of = itemgetter(2)


def _consume(it: Iterable[Any]) -> None:
    deque(it, maxlen=0)


# --- the link ---------------------------------------------------------------------------

class Link(Enum):
    WAITING = "waiting"  # no socket: the first open, or a reconnect after backoff
    CONNECTED = "connected"
    CLOSED = "closed"  # the client stopped


# The legal edges of the link; anything else is a bug in this module.
LINK_EDGES = frozenset({
    (Link.WAITING, Link.CONNECTED),  # LinkOpened
    (Link.WAITING, Link.WAITING),  # OpenFailed: a longer backoff
    (Link.CONNECTED, Link.WAITING),  # silence, or the link dropped
    (Link.WAITING, Link.CLOSED),
    (Link.CONNECTED, Link.CLOSED),
})


@dataclass(frozen=True, slots=True)
class ClientStatistics:
    unacked: int  # submissions not yet ACCEPTED or REJECTED
    following: int  # task ids someone waits for
    cancelling: int
    queries: int
    acked: int  # submissions that left unacked since the start
    reconnects: int


@dataclass(slots=True)
class _Query:
    request_id: int
    kind: str
    args: dict[str, Any]
    sink: ce.ReplySink
    deadline: float
    sent: bool


# --- helpers ---------------------------------------------------------------------------

def chunk_entries(entries: Sequence[SubmitEntry], batch_size: int,
                  max_bytes: int = MAX_SUBMIT_BYTES) -> Iterator[list[SubmitEntry]]:
    """entries cut into SUBMIT batches: at most batch_size entries and about max_bytes of
    payload each (a single larger entry goes alone)."""
    for i in range(0, len(entries), batch_size):
        chunk = list(entries[i:i + batch_size])
        if sum(map(len, map(_payload_of, chunk))) <= max_bytes:
            yield chunk
            continue
        part: list[SubmitEntry] = []
        size = 0
        for e in chunk:
            n = len(e[2])
            if part and size + n > max_bytes:
                yield part
                part, size = [], 0
            part.append(e)
            size += n
        if part:
            yield part


def _id_batches(ids: Iterable[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    for i in ids:
        batch.append(i)
        if len(batch) >= codec.MAX_IDS:
            yield batch
            batch = []
    if batch:
        yield batch


class ClientCore:
    """Everything a client must remember to never lose a submission or a result.

    - ``unacked``: SUBMIT entries not yet named by ACCEPTED or REJECTED, in order; all
      are sent again after a reconnect (the master ignores ids it already has).
    - ``sinks``: task id -> who waits for its result; WATCHed again after a reconnect.
    - ``cancelling``: ids the user cancelled and whose final RESULT has not come yet;
      CANCEL is sent again after a reconnect.
    - liveness: the master is lost after heartbeat_interval x liveness of silence while
      anything is outstanding; HEARTBEAT goes out when nothing was sent for an interval.

    Messages are sent (Send) only while connected: a reconnect rebuilds them from the
    state above. Pure: ``now`` comes with every event, ``rand`` (in [0, 1)) jitters the
    reconnect backoff.
    """

    def __init__(self, *, batch_size: int, heartbeat_interval: float, liveness: int,
                 now: float, rand: Callable[[], float], reconnect_min: float = 0.1,
                 reconnect_max: float = 5.0) -> None:
        self.batch_size = batch_size
        self.interval = heartbeat_interval
        self.window = heartbeat_interval * liveness
        self.rand = rand
        self.reconnect_min, self.reconnect_max = reconnect_min, reconnect_max
        self.link = Link.WAITING
        self.unacked: dict[str, SubmitEntry] = {}
        self.sinks: dict[str, Any] = {}
        self.cancelling: set[str] = set()
        self.rewatch: set[str] = set()  # resent after a reconnect: WATCH once ACCEPTED
        self.held: list[tuple[float, list[str]]] = []  # BUSY: (send again at, ids)
        self.queries: dict[int, _Query] = {}
        self.submitted = 0
        self.acked = 0
        self.opens = 0
        self.retries = 0  # reconnects since the master was last heard from
        self.reopen_at: float | None = now  # the first tick opens the link
        self.last_sent = self.last_recv = self.quiet_since = now

    # --- public API -------------------------------------------------------------------

    def handle(self, event: ce.Event) -> list[ce.Command]:
        return _EVENT_HANDLERS[type(event)](self, event)

    def tick(self, now: float) -> list[ce.Command]:
        """Timers: heartbeat, liveness, reconnect, BUSY resends, query deadlines."""
        cmds: list[ce.Command] = []
        if self.queries:
            self._expire_queries(now, cmds)
        if self.link is not Link.CONNECTED:
            if self.link is Link.WAITING and self.reopen_at is not None and now >= self.reopen_at:
                cmds.append(ce.OpenConnection())
            return cmds
        if not self.outstanding:
            self.quiet_since = now
        elif now - max(self.last_recv, self.quiet_since) > self.window:
            self._lose(now)
            cmds.append(ce.CloseConnection(self.window))
            return cmds
        resent = bool(self.held) and self._resend_held(now, cmds)
        if now - self.last_sent >= self.interval and not resent:
            cmds.append(ce.Send(m.Heartbeat()))
            self.last_sent = now  # counted as sent even if zmq holds it back (HWM)
        return cmds

    def next_deadline(self) -> float:
        """When tick() next has something to do (monotonic seconds; math.inf: never)."""
        if self.link is Link.CLOSED:
            return math.inf
        if self.link is Link.WAITING:
            due = math.inf if self.reopen_at is None else self.reopen_at
        else:
            due = self.last_sent + self.interval
            if self.outstanding:
                due = min(due, max(self.last_recv, self.quiet_since) + self.window)
            if self.held:
                due = min(due, min(t for t, _ in self.held))
        if self.queries:
            due = min(due, min(q.deadline for q in self.queries.values()))
        return due

    @property
    def connected(self) -> bool:
        return self.link is Link.CONNECTED

    @property
    def outstanding(self) -> bool:
        """Anything the master still owes us: the liveness check runs only then."""
        return bool(self.unacked or self.sinks or self.queries or self.cancelling)

    @property
    def idle(self) -> bool:
        """Nothing submitted, followed or asked is still open (cancellations are best-effort)."""
        return not (self.unacked or self.sinks or self.queries)

    def unaccepted(self) -> list[tuple[str, str]]:
        """(id, task name) of every submission the master has not acknowledged."""
        return [(e[0], e[1]) for e in self.unacked.values()]

    def statistics(self) -> ClientStatistics:
        return ClientStatistics(len(self.unacked), len(self.sinks), len(self.cancelling),
                                len(self.queries), self.acked, max(0, self.opens - 1))

    def validate(self) -> None:
        """Check internal invariants (tests call it after every step); RuntimeError if
        one is broken, which is a bug in this module (or ids used twice by the shell)."""
        problems = []
        if (self.link is Link.WAITING) != (self.reopen_at is not None):
            problems.append("reopen_at must be set exactly while waiting to reconnect")
        if self.link is not Link.CLOSED and self.submitted - self.acked != len(self.unacked):
            problems.append(f"{self.submitted} submitted - {self.acked} acknowledged != "
                            f"{len(self.unacked)} unacknowledged")
        if any(s is None for s in self.sinks.values()):
            problems.append("a task is followed by no sink")
        if any(type(s) is ce.Fanout and len(s.sinks) < 2 for s in self.sinks.values()):
            problems.append("a fanout of fewer than two sinks")
        if any(not ids for _, ids in self.held):
            problems.append("an empty BUSY hold")
        if not (self.interval > 0 and self.window >= self.interval and self.batch_size >= 1):
            problems.append("bad heartbeat or batch settings")
        if problems:
            raise RuntimeError("; ".join(problems))

    # --- stimuli from the user's side ---------------------------------------------------

    def _on_submitted(self, ev: ce.Submitted) -> list[ce.Command]:
        entries = ev.entries
        ids = [e[0] for e in entries]
        self.unacked.update(zip(ids, entries))
        # Ids are the client's own and fresh; C-level bulk inserts keep this cheap per task.
        self.sinks.update(zip(ids, ev.sinks))
        self.submitted += len(entries)
        cmds: list[ce.Command] = []
        if self.link is Link.CONNECTED:
            self._send_submits(entries, cmds)
        return cmds

    def _on_watch(self, ev: ce.WatchRequested) -> list[ce.Command]:
        """An id this client has not got ACCEPTED yet is followed without a WATCH: the
        master could answer it REJECTED (unknown) before the SUBMIT."""
        new = []
        for tid, s in zip(ev.ids, ev.sinks):
            self._add_sink(tid, s)
            if tid not in self.unacked:
                new.append(tid)
        if self.link is not Link.CONNECTED:
            return []
        return [ce.Send(m.Watch(batch)) for batch in _id_batches(new)]

    def _on_cancel(self, ev: ce.CancelRequested) -> list[ce.Command]:
        for tid in ev.ids:
            self._remove_sink(tid, ev.sink)
        self.cancelling.update(ev.ids)
        if self.link is not Link.CONNECTED:
            return []
        return [ce.Send(m.Cancel(list(batch))) for batch in _id_batches(ev.ids)]

    def _on_cancel_all(self, ev: ce.CancelAllRequested) -> list[ce.Command]:
        cmds: list[ce.Command] = [ce.SettleCancelled(list(zip(self.sinks.values(), self.sinks)))]
        ids = list(self.sinks)
        self.sinks.clear()
        self.cancelling.update(ids)
        if self.link is Link.CONNECTED:
            cmds += [ce.Send(m.Cancel(batch)) for batch in _id_batches(ids)]
        return cmds

    def _on_query(self, ev: ce.QueryAsked) -> list[ce.Command]:
        connected = self.link is Link.CONNECTED
        self.queries[ev.request_id] = _Query(ev.request_id, ev.kind, ev.args, ev.sink,
                                             ev.deadline, connected)
        return [ce.Send(m.Query(ev.request_id, ev.kind, ev.args))] if connected else []

    def _on_closed(self, ev: ce.ClientClosed) -> list[ce.Command]:
        exc = ev.error
        cmds: list[ce.Command] = []
        if self.sinks:
            cmds.append(ce.FailTasks([(s, tid, exc) for tid, s in self.sinks.items()]))
        if self.queries:
            cmds.append(ce.FailQueries([(q.sink, exc) for q in self.queries.values()]))
        self._set_link(Link.CLOSED)
        self.reopen_at = None
        self.sinks.clear()
        self.queries.clear()
        self.unacked.clear()
        self.cancelling.clear()
        self.rewatch.clear()
        self.held.clear()
        return cmds

    # --- stimuli from the link ----------------------------------------------------------

    def _on_sent(self, ev: ce.MessagesSent) -> list[ce.Command]:
        self.last_sent = ev.now
        return []

    def _on_dropped(self, ev: ce.LinkDropped) -> list[ce.Command]:
        """A master that restarts quickly would otherwise be reconnected to by zmq itself
        and answer heartbeats, while the submissions and watches it held in memory are
        gone: start afresh."""
        if self.link is not Link.CONNECTED:
            return []
        self._lose(ev.now)
        return [ce.CloseConnection(None)]

    def _on_open_failed(self, ev: ce.OpenFailed) -> list[ce.Command]:
        """Try again after a longer backoff."""
        self._lose(ev.now)
        return []

    def _on_opened(self, ev: ce.LinkOpened) -> list[ce.Command]:
        """Send again everything that is still open; queries that cannot be sent again
        safely fail."""
        now = ev.now
        self._set_link(Link.CONNECTED)
        self.opens += 1
        self.reopen_at = None
        self.last_recv = self.quiet_since = self.last_sent = now
        self.held.clear()
        entries = list(self.unacked.values())
        if self.opens > 1:
            self.rewatch = set(self.unacked)
        cmds: list[ce.Command] = []
        self._send_submits(entries, cmds)
        follow = [tid for tid in self.sinks if tid not in self.unacked]
        follow += [tid for tid in self.cancelling if tid not in self.unacked
                   and tid not in self.sinks]
        cmds += [ce.Send(m.Watch(batch)) for batch in _id_batches(follow)]
        cmds += [ce.Send(m.Cancel(batch)) for batch in _id_batches(list(self.cancelling))]
        self._resend_queries(cmds)
        return cmds

    def _on_message(self, ev: ce.MessageReceived) -> list[ce.Command]:
        """A message from the master: what it settles, for the shell to hand over."""
        msg = ev.message
        if msg.cmd is Cmd.STANDBY:
            return self._on_standby(ev.now)
        self.last_recv = ev.now
        self.retries = 0
        handler = _MESSAGE_HANDLERS.get(msg.cmd)
        return handler(self, msg, ev.now) if handler is not None else []

    # --- internals ----------------------------------------------------------------------

    def _set_link(self, new: Link) -> None:
        if (self.link, new) not in LINK_EDGES:
            raise RuntimeError(f"illegal link transition {self.link.value} -> {new.value}")
        self.link = new

    def _add_sink(self, tid: str, sink: Any) -> None:
        current = self.sinks.get(tid)
        if current is None:
            self.sinks[tid] = sink
        elif current is sink:
            return
        elif type(current) is ce.Fanout:
            if all(s is not sink for s in current.sinks):
                current.sinks.append(sink)
        else:
            self.sinks[tid] = ce.Fanout([current, sink])

    def _remove_sink(self, tid: str, sink: Any) -> None:
        current = self.sinks.get(tid)
        if current is sink:
            del self.sinks[tid]
        elif type(current) is ce.Fanout:
            rest = [s for s in current.sinks if s is not sink]
            if not rest:
                del self.sinks[tid]
            else:
                self.sinks[tid] = rest[0] if len(rest) == 1 else ce.Fanout(rest)

    def _send_submits(self, entries: Sequence[SubmitEntry], cmds: list[ce.Command]) -> None:
        for chunk in chunk_entries(entries, self.batch_size):
            cmds.append(ce.Send(m.Submit(chunk)))

    def _lose(self, now: float) -> None:
        """The link is gone (or could not be made): wait a growing backoff, then reopen."""
        self._set_link(Link.WAITING)
        self.retries += 1
        self.reopen_at = now + compute_backoff(self.retries, base=self.reconnect_min,
                                               cap=self.reconnect_max, rand=self.rand(),
                                               jitter=CLIENT_JITTER)

    def _resend_held(self, now: float, cmds: list[ce.Command]) -> bool:
        """SUBMIT again the BUSY-held entries now due; True if any were."""
        due = [ids for t, ids in self.held if t <= now]
        if not due:
            return False
        self.held = [(t, ids) for t, ids in self.held if t > now]
        entries = [self.unacked[i] for ids in due for i in ids if i in self.unacked]
        self._send_submits(entries, cmds)
        return bool(entries)

    def _expire_queries(self, now: float, cmds: list[ce.Command]) -> None:
        late = [q for q in self.queries.values() if q.deadline <= now]
        for q in late:
            del self.queries[q.request_id]
        if late:
            cmds.append(ce.FailQueries([(q.sink, None) for q in late]))

    def _resend_queries(self, cmds: list[ce.Command]) -> None:
        lost: list[tuple[ce.ReplySink, BaseException | None]] = []
        for q in list(self.queries.values()):
            if q.sent and q.kind not in READ_ONLY_QUERIES:
                # It may have been applied before the link broke: never apply it twice.
                del self.queries[q.request_id]
                lost.append((q.sink, ConnectionLost(
                    f"the master was lost while answering {q.kind!r}; it may or may not "
                    "have been applied")))
                continue
            q.sent = True
            cmds.append(ce.Send(m.Query(q.request_id, q.kind, q.args)))
        if lost:
            cmds.append(ce.FailQueries(lost))

    # --- one handler per command from the master ----------------------------------------

    def _on_accepted(self, msg: m.Accepted, now: float) -> list[ce.Command]:
        unacked = self.unacked
        before = len(unacked)
        _consume(map(unacked.pop, msg.ids, repeat(None)))  # C-speed; unknown ids are fine
        gone = before - len(unacked)
        self.acked += gone
        cmds: list[ce.Command] = [ce.FreeRoom(gone)] if gone else []
        if self.rewatch:
            again = [tid for tid in msg.ids if tid in self.rewatch]
            self.rewatch.difference_update(again)
            if again:
                cmds.append(ce.Send(m.Watch(again)))
        if msg.same_as:
            self._follow(msg.same_as, cmds)
        return cmds

    def _follow(self, same_as: dict[Any, Any], cmds: list[ce.Command]) -> None:
        followed: list[tuple[ce.Sink, str, str]] = []
        watch: list[str] = []
        for tid, existing in same_as.items():
            if type(tid) is not str or type(existing) is not str or tid == existing:
                continue
            self.cancelling.discard(tid)  # never cancel someone else's task for us
            sink = self.sinks.pop(tid, None)
            if sink is None:
                continue
            self._add_sink(existing, sink)
            watch.append(existing)
            followed.append((sink, tid, existing))
        if watch and self.link is Link.CONNECTED:
            cmds.append(ce.Send(m.Watch(watch)))
        if followed:
            cmds.append(ce.FollowTasks(followed))

    def _on_rejected(self, msg: m.RejectedEntries, now: float) -> list[ce.Command]:
        failed: list[tuple[ce.Sink, str, BaseException]] = []
        gone = 0
        for tid, reason in msg.entries:
            if self.unacked.pop(tid, None) is not None:
                gone += 1
            self.cancelling.discard(tid)
            self.rewatch.discard(tid)
            sink = self.sinks.pop(tid, None)
            if sink is not None:
                failed.append((sink, tid, Rejected(reason)))
        self.acked += gone
        cmds: list[ce.Command] = [ce.FreeRoom(gone)] if gone else []
        if failed:
            cmds.append(ce.FailTasks(failed))
        return cmds

    def _on_busy(self, msg: m.Busy, now: float) -> list[ce.Command]:
        keep = []
        gone = 0
        for tid in msg.ids:
            if tid not in self.unacked:
                continue
            if tid in self.cancelling:  # never accepted, and no longer wanted
                del self.unacked[tid]
                self.cancelling.discard(tid)
                gone += 1
            else:
                keep.append(tid)
        if keep:
            wait = min(max(msg.retry_after, 0.0), MAX_RETRY_AFTER)
            self.held.append((now + wait, keep))
        self.acked += gone
        return [ce.FreeRoom(gone)] if gone else []

    def _on_result(self, msg: m.Result, now: float) -> list[ce.Command]:
        out: list[tuple[ce.Sink, tuple[str, int, Any]]] = []
        pop = self.sinks.pop
        cancelling = self.cancelling
        for e in msg.entries:  # (task_id, state, payload): the sink's arguments as they are
            if e[1] not in FINAL_STATES:  # the protocol promises final states only
                continue
            if cancelling:
                cancelling.discard(e[0])
            sink = pop(e[0], None)
            if sink is not None:
                out.append((sink, e))
        return [ce.SettleResults(out)] if out else []

    def _on_partial(self, msg: m.Partial, now: float) -> list[ce.Command]:
        get = self.sinks.get
        out = [(s, e) for e in msg.entries if (s := get(e[0])) is not None]
        return [ce.SettlePartials(out)] if out else []

    def _on_progress(self, msg: m.Progress, now: float) -> list[ce.Command]:
        get = self.sinks.get
        out = [(s, tid, done, total)
               for tid, _attempt, done, total in msg.entries if (s := get(tid)) is not None]
        return [ce.SettleProgress(out)] if out else []

    def _on_reply(self, msg: m.Reply, now: float) -> list[ce.Command]:
        q = self.queries.pop(msg.request_id, None)
        return [] if q is None else [ce.AnswerQuery(q.sink, msg.ok, msg.body)]

    def _on_error(self, msg: m.Error, now: float) -> list[ce.Command]:
        return [ce.LogMasterError(msg.reason)]

    def _on_standby(self, now: float) -> list[ce.Command]:
        """A standby master (1.4): go to another, with the backoff of a lost link (not
        reset: a list of standbys only is not tried in a tight loop)."""
        if self.link is not Link.CONNECTED:
            return []
        self._lose(now)
        return [ce.CloseConnection(None)]


_EVENT_HANDLERS: dict[type, Callable[[ClientCore, Any], list[ce.Command]]] = {
    ce.Submitted: ClientCore._on_submitted, ce.WatchRequested: ClientCore._on_watch,
    ce.CancelRequested: ClientCore._on_cancel, ce.CancelAllRequested: ClientCore._on_cancel_all,
    ce.QueryAsked: ClientCore._on_query, ce.MessageReceived: ClientCore._on_message,
    ce.MessagesSent: ClientCore._on_sent, ce.LinkOpened: ClientCore._on_opened,
    ce.OpenFailed: ClientCore._on_open_failed, ce.LinkDropped: ClientCore._on_dropped,
    ce.ClientClosed: ClientCore._on_closed,
}

_MESSAGE_HANDLERS: dict[Cmd, Callable[[ClientCore, Any, float], list[ce.Command]]] = {
    Cmd.ACCEPTED: ClientCore._on_accepted, Cmd.REJECTED: ClientCore._on_rejected,
    Cmd.BUSY: ClientCore._on_busy, Cmd.RESULT: ClientCore._on_result,
    Cmd.PARTIAL: ClientCore._on_partial, Cmd.PROGRESS: ClientCore._on_progress,
    Cmd.REPLY: ClientCore._on_reply, Cmd.ERROR: ClientCore._on_error,
}
