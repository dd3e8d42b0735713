"""The client's session rules without I/O (docs/PROTOCOL.md §5-6): what to send and resend
to the master, which waiting task each message from the master settles, and when the
master counts as lost. The I/O shell (zq/client.py) feeds it stimuli and the clock.
"""

from __future__ import annotations

from collections import deque
from enum import Enum
from itertools import repeat
from operator import itemgetter
from typing import Any, Iterable, Iterator, Protocol, Sequence

from zq.core import messages as m
from zq.core.backoff import CLIENT_JITTER, compute_backoff
from zq.core.messages import FINAL_STATES, Cmd, SubmitEntry
from zq.errors import ConnectionLost, Rejected

# Queries safe to send again after a reconnect; the others (retry, purge) may have been
# applied already, so they fail with ConnectionLost instead.
READ_ONLY_QUERIES = frozenset({"status", "tasks", "get", "schedule_list"})
MAX_SUBMIT_BYTES = 8 * 1024 * 1024  # payload bytes per SUBMIT; keeps frames and headers small
MAX_IDS = 10_000  # ids per WATCH or CANCEL message
MAX_RETRY_AFTER = 60.0  # a BUSY asking for longer is capped: a wire value is never trusted

_payload_of = itemgetter(2)


def _consume(it: Iterable[Any]) -> None:
    deque(it, maxlen=0)


# (sink method name, sink, arguments): the shell calls getattr(sink, name)(*arguments).
# A None sink means "log this" (an ERROR from the master).
Delivery = tuple[str, Any, tuple]


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


class LinkAction(Enum):
    CLOSE = "close"  # the master is lost: close the socket now
    OPEN = "open"  # connect a fresh socket, then call ClientSession.opened()


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


class _Query:
    __slots__ = ("request_id", "kind", "args", "sink", "deadline", "sent")

    def __init__(self, request_id: int, kind: str, args: dict, sink: Any, deadline: float,
                 sent: bool) -> None:
        self.request_id, self.kind, self.args = request_id, kind, args
        self.sink, self.deadline, self.sent = sink, deadline, sent


def backoff(retries: int, jitter: float, *, low: float, high: float) -> float:
    """Seconds before the retries-th reconnect: low doubling up to high, times 0.75-1.25
    (jitter in [0, 1)) so that many clients of a restarted master do not come back at once."""
    return compute_backoff(retries, base=low, cap=high, rand=jitter, jitter=CLIENT_JITTER)


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
        if len(batch) >= MAX_IDS:
            yield batch
            batch = []
    if batch:
        yield batch


class ClientSession:
    """Everything a client must remember to never lose a submission or a result.

    - ``unacked``: SUBMIT entries not yet named by ACCEPTED or REJECTED, in order; all
      are sent again after a reconnect (the master ignores ids it already has).
    - ``sinks``: task id -> who waits for its result; WATCHed again after a reconnect.
    - ``cancelling``: ids the user cancelled and whose final RESULT has not come yet;
      CANCEL is sent again after a reconnect.
    - liveness: the master is lost after heartbeat_interval x liveness of silence while
      anything is outstanding; HEARTBEAT goes out when nothing was sent for an interval.

    Outgoing messages collect in ``outbox`` (only while connected: a reconnect rebuilds
    them from the state above). ``acked`` counts submissions that left ``unacked``.
    """

    def __init__(self, *, batch_size: int, heartbeat_interval: float, liveness: int,
                 now: float, reconnect_min: float = 0.1, reconnect_max: float = 5.0) -> None:
        self.batch_size = batch_size
        self.interval = heartbeat_interval
        self.window = heartbeat_interval * liveness
        self.reconnect_min, self.reconnect_max = reconnect_min, reconnect_max
        self.unacked: dict[str, SubmitEntry] = {}
        self.sinks: dict[str, Any] = {}
        self.cancelling: set[str] = set()
        self.rewatch: set[str] = set()  # resent after a reconnect: WATCH once ACCEPTED
        self.held: list[tuple[float, list[str]]] = []  # BUSY: (send again at, ids)
        self.queries: dict[int, _Query] = {}
        self.outbox: list[m.Message] = []
        self.acked = 0
        self.connected = False
        self.opens = 0
        self.retries = 0  # reconnects since the master was last heard from
        self.reopen_at: float | None = now  # the first tick opens the link
        self.last_sent = self.last_recv = self.quiet_since = now

    # --- stimuli from the user's side -------------------------------------------------

    def submit(self, entries: Sequence[SubmitEntry], sinks: Sequence[Any]) -> None:
        """New submissions; each entry's result goes to the sink at the same index."""
        ids = [e[0] for e in entries]
        self.unacked.update(zip(ids, entries))
        # Ids are the client's own and fresh; C-level bulk inserts keep this cheap per task.
        self.sinks.update(zip(ids, sinks))
        if self.connected:
            self._send_submits(entries)

    def watch(self, ids: Sequence[str], sinks: Sequence[Any]) -> None:
        """Follow tasks by id. An id this client has not got ACCEPTED yet is followed
        without a WATCH: the master could answer it REJECTED (unknown) before the SUBMIT."""
        new = []
        for tid, s in zip(ids, sinks):
            self._add_sink(tid, s)
            if tid not in self.unacked:
                new.append(tid)
        if self.connected:
            for batch in _id_batches(new):
                self.outbox.append(m.Watch(batch))

    def cancel(self, ids: Sequence[str], sink: Any) -> None:
        """sink (already settled as cancelled by the shell) stops following ids, and the
        master is asked to cancel them."""
        for tid in ids:
            self._remove_sink(tid, sink)
        self.cancelling.update(ids)
        if self.connected:
            for batch in _id_batches(ids):
                self.outbox.append(m.Cancel(list(batch)))

    def cancel_all(self) -> list[Delivery]:
        """Cancel every task still waited for (Executor.shutdown(cancel_futures=True))."""
        out = [("on_cancelled", s, (tid,)) for tid, s in self.sinks.items()]
        ids = list(self.sinks)
        self.sinks.clear()
        self.cancelling.update(ids)
        if self.connected:
            for batch in _id_batches(ids):
                self.outbox.append(m.Cancel(batch))
        return out

    def query(self, request_id: int, kind: str, args: dict, sink: Any, deadline: float) -> None:
        self.queries[request_id] = _Query(request_id, kind, args, sink, deadline, self.connected)
        if self.connected:
            self.outbox.append(m.Query(request_id, kind, args))

    def abandon(self, exc: BaseException) -> list[Delivery]:
        """The client is closing: everyone still waiting gets exc; nothing is kept."""
        out: list[Delivery] = [("on_failed", s, (tid, exc)) for tid, s in self.sinks.items()]
        out += [("on_lost", q.sink, (exc,)) for q in self.queries.values()]
        self.sinks.clear()
        self.queries.clear()
        self.unacked.clear()
        self.cancelling.clear()
        self.rewatch.clear()
        self.held.clear()
        self.outbox.clear()
        return out

    @property
    def outstanding(self) -> bool:
        """Anything the master still owes us: the liveness check runs only then."""
        return bool(self.unacked or self.sinks or self.queries or self.cancelling)

    @property
    def idle(self) -> bool:
        """Nothing submitted, followed or asked is still open (cancellations are best-effort)."""
        return not (self.unacked or self.sinks or self.queries)

    # --- stimuli from the link ----------------------------------------------------------

    def take_outbox(self) -> list[m.Message]:
        out, self.outbox = self.outbox, []
        return out

    def sent(self, now: float) -> None:
        self.last_sent = now

    def received(self, msg: m.Message, now: float) -> list[Delivery]:
        """A message from the master: what it settles, for the shell to hand over."""
        self.last_recv = now
        self.retries = 0
        handler = self._HANDLERS.get(msg.cmd)
        return handler(self, msg, now) if handler is not None else []

    def tick(self, now: float, jitter: float) -> tuple[LinkAction | None, list[Delivery]]:
        """Timers: heartbeat, liveness, reconnect, BUSY resends, query deadlines.
        jitter is a random number in [0, 1) for the reconnect backoff."""
        expired = self._expire_queries(now) if self.queries else []
        if not self.connected:
            if self.reopen_at is not None and now >= self.reopen_at:
                return LinkAction.OPEN, expired
            return None, expired
        if not self.outstanding:
            self.quiet_since = now
        elif now - max(self.last_recv, self.quiet_since) > self.window:
            return self._lost(now, jitter), expired
        if self.held:
            self._resend_held(now)
        if now - self.last_sent >= self.interval and not self.outbox:
            self.outbox.append(m.Heartbeat())
            self.last_sent = now  # counted as sent even if zmq holds it back (HWM)
        return None, expired

    def dropped(self, now: float, jitter: float) -> LinkAction | None:
        """The transport saw the connection to the master close. A master that restarts
        quickly would otherwise be reconnected to by zmq itself and answer heartbeats,
        while the submissions and watches it held in memory are gone: start afresh."""
        return self._lost(now, jitter) if self.connected else None

    def open_failed(self, now: float, jitter: float) -> None:
        """A fresh socket could not be made: try again after a longer backoff."""
        self.connected = True  # so that _lost() counts it as one more failed attempt
        self._lost(now, jitter)

    def opened(self, now: float) -> list[Delivery]:
        """A fresh socket is connected: send again everything that is still open. Returns
        the queries that cannot be sent again safely, failed."""
        self.connected = True
        self.opens += 1
        self.reopen_at = None
        self.last_recv = self.quiet_since = self.last_sent = now
        self.held.clear()
        self.outbox = []
        entries = list(self.unacked.values())
        if self.opens > 1:
            self.rewatch = set(self.unacked)
        self._send_submits(entries)
        follow = [tid for tid in self.sinks if tid not in self.unacked]
        follow += [tid for tid in self.cancelling if tid not in self.unacked
                   and tid not in self.sinks]
        for batch in _id_batches(follow):
            self.outbox.append(m.Watch(batch))
        for batch in _id_batches(list(self.cancelling)):
            self.outbox.append(m.Cancel(batch))
        return self._resend_queries()

    def next_deadline(self) -> float:
        """When tick() next has something to do (monotonic seconds)."""
        if not self.connected:
            due = float("inf") if self.reopen_at is None else self.reopen_at
        else:
            due = self.last_sent + self.interval
            if self.outstanding:
                due = min(due, max(self.last_recv, self.quiet_since) + self.window)
            if self.held:
                due = min(due, min(t for t, _ in self.held))
        if self.queries:
            due = min(due, min(q.deadline for q in self.queries.values()))
        return due

    # --- internals ----------------------------------------------------------------------

    def _add_sink(self, tid: str, sink: Any) -> None:
        current = self.sinks.get(tid)
        if current is None:
            self.sinks[tid] = sink
        elif current is sink:
            return
        elif type(current) is Fanout:
            if all(s is not sink for s in current.sinks):
                current.sinks.append(sink)
        else:
            self.sinks[tid] = Fanout([current, sink])

    def _remove_sink(self, tid: str, sink: Any) -> None:
        current = self.sinks.get(tid)
        if current is sink:
            del self.sinks[tid]
        elif type(current) is Fanout:
            rest = [s for s in current.sinks if s is not sink]
            if not rest:
                del self.sinks[tid]
            else:
                self.sinks[tid] = rest[0] if len(rest) == 1 else Fanout(rest)

    def _send_submits(self, entries: Sequence[SubmitEntry]) -> None:
        for chunk in chunk_entries(entries, self.batch_size):
            self.outbox.append(m.Submit(chunk))

    def _lost(self, now: float, jitter: float) -> LinkAction:
        self.connected = False
        self.retries += 1
        self.reopen_at = now + backoff(self.retries, jitter, low=self.reconnect_min,
                                       high=self.reconnect_max)
        self.outbox = []
        return LinkAction.CLOSE

    def _resend_held(self, now: float) -> None:
        due = [ids for t, ids in self.held if t <= now]
        if not due:
            return
        self.held = [(t, ids) for t, ids in self.held if t > now]
        entries = [self.unacked[i] for ids in due for i in ids if i in self.unacked]
        self._send_submits(entries)

    def _expire_queries(self, now: float) -> list[Delivery]:
        """Queries past their deadline: the shell words the error (it knows the address)."""
        late = [q for q in self.queries.values() if q.deadline <= now]
        for q in late:
            del self.queries[q.request_id]
        return [("on_expired", q.sink, ()) for q in late]

    def _resend_queries(self) -> list[Delivery]:
        out: list[Delivery] = []
        for q in list(self.queries.values()):
            if q.sent and q.kind not in READ_ONLY_QUERIES:
                # It may have been applied before the link broke: never apply it twice.
                del self.queries[q.request_id]
                out.append(("on_lost", q.sink, (ConnectionLost(
                    f"the master was lost while answering {q.kind!r}; it may or may not "
                    "have been applied"),)))
                continue
            q.sent = True
            self.outbox.append(m.Query(q.request_id, q.kind, q.args))
        return out

    # --- one handler per command from the master ----------------------------------------

    def _on_accepted(self, msg: m.Accepted, now: float) -> list[Delivery]:
        unacked = self.unacked
        before = len(unacked)
        _consume(map(unacked.pop, msg.ids, repeat(None)))  # C-speed; unknown ids are fine
        self.acked += before - len(unacked)
        if self.rewatch:
            again = [tid for tid in msg.ids if tid in self.rewatch]
            self.rewatch.difference_update(again)
            if again:
                self.outbox.append(m.Watch(again))
        return self._follow(msg.same_as) if msg.same_as else []

    def _follow(self, same_as: dict) -> list[Delivery]:
        out: list[Delivery] = []
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
            out.append(("on_followed", sink, (tid, existing)))
        if watch and self.connected:
            self.outbox.append(m.Watch(watch))
        return out

    def _on_rejected(self, msg: m.Rejected, now: float) -> list[Delivery]:
        out: list[Delivery] = []
        for tid, reason in msg.entries:
            if self.unacked.pop(tid, None) is not None:
                self.acked += 1
            self.cancelling.discard(tid)
            self.rewatch.discard(tid)
            sink = self.sinks.pop(tid, None)
            if sink is not None:
                out.append(("on_failed", sink, (tid, Rejected(reason))))
        return out

    def _on_busy(self, msg: m.Busy, now: float) -> list[Delivery]:
        keep = []
        for tid in msg.ids:
            if tid not in self.unacked:
                continue
            if tid in self.cancelling:  # never accepted, and no longer wanted
                del self.unacked[tid]
                self.cancelling.discard(tid)
                self.acked += 1
            else:
                keep.append(tid)
        if keep:
            wait = min(max(msg.retry_after, 0.0), MAX_RETRY_AFTER)
            self.held.append((now + wait, keep))
        return []

    def _on_result(self, msg: m.Result, now: float) -> list[Delivery]:
        out: list[Delivery] = []
        pop = self.sinks.pop
        cancelling = self.cancelling
        for e in msg.entries:  # (task_id, state, payload): the sink's arguments as they are
            if e[1] not in FINAL_STATES:  # the protocol promises final states only
                continue
            if cancelling:
                cancelling.discard(e[0])
            sink = pop(e[0], None)
            if sink is not None:
                out.append(("on_result", sink, e))
        return out

    def _on_partial(self, msg: m.Partial, now: float) -> list[Delivery]:
        get = self.sinks.get
        return [("on_partial", s, (tid, attempt, seq, payload))
                for tid, attempt, seq, payload in msg.entries if (s := get(tid)) is not None]

    def _on_progress(self, msg: m.Progress, now: float) -> list[Delivery]:
        get = self.sinks.get
        return [("on_progress", s, (tid, done, total))
                for tid, _attempt, done, total in msg.entries if (s := get(tid)) is not None]

    def _on_reply(self, msg: m.Reply, now: float) -> list[Delivery]:
        q = self.queries.pop(msg.request_id, None)
        return [] if q is None else [("on_reply", q.sink, (msg.ok, msg.body))]

    def _on_error(self, msg: m.Error, now: float) -> list[Delivery]:
        return [("master_error", None, (msg.reason,))]

    _HANDLERS = {
        Cmd.ACCEPTED: _on_accepted, Cmd.REJECTED: _on_rejected, Cmd.BUSY: _on_busy,
        Cmd.RESULT: _on_result, Cmd.PARTIAL: _on_partial, Cmd.PROGRESS: _on_progress,
        Cmd.REPLY: _on_reply, Cmd.ERROR: _on_error,
    }
