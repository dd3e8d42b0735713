"""Event subscriptions (protocol 1.3): who subscribed with which filter, the events of
the current turn for each, and the window that keeps a slow subscriber from costing the
master more than WINDOW events of memory (past it, events are counted as dropped)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zq.core import messages as m
from zq.core.messages import State
from zq.core.tasks import TaskRecord
from zq.core.workers import WorkerInfo

TASK_KINDS = ("submitted", "started", "progress", "succeeded", "failed", "retrying", "dead",
              "cancelled")
WORKER_KINDS = ("joined", "left", "lost")
KINDS = TASK_KINDS + WORKER_KINDS
_WORKER_KINDS = frozenset(WORKER_KINDS)

# The event a task's move to a state is (moves to PENDING or QUEUED other than a
# submission, a retry's return to the queue say, are not events).
STATE_EVENTS = {State.RUNNING: "started", State.SUCCEEDED: "succeeded",
                State.FAILED: "failed", State.RETRYING: "retrying", State.DEAD: "dead",
                State.CANCELLED: "cancelled"}

PARENTS_SHOWN = 100  # parent ids a `submitted` event lists at most (as `get` does)
WINDOW = 10_000  # events sent to a subscriber and not yet acknowledged (its `seen`)
TTL = 10.0  # seconds a subscription lives without being renewed


@dataclass
class Subscriber:
    rid: bytes
    queue: str | None
    task: str | None
    kinds: frozenset[str]
    expires: float
    sent: int = 0  # events sent so far (the next one's sequence number)
    seen: int = 0  # events the subscriber said it has read
    dropped: int = 0  # left out this turn (after this turn's pending events)
    gap: int = 0  # left out and not yet told: all before the next events sent
    dropped_total: int = 0
    # (kind, wall, task or worker, detail): built into maps at the end of the turn
    pending: list[tuple[str, float, Any, Any]] = field(default_factory=list)

    def room(self) -> int:
        return WINDOW - (self.sent - self.seen) - len(self.pending)


class EventHub:
    """The subscribers and their turn's events; `subs` is tested before any work."""

    def __init__(self) -> None:
        self.subs: dict[bytes, Subscriber] = {}

    def subscribe(self, rid: bytes, now: float, queue: str | None, task: str | None,
                  kinds: list[str] | None, seen: int | None) -> dict[str, Any]:
        """Subscribe, or renew (and change the filter of) a subscription. `seen`
        acknowledges the events read so far, which makes room in the window."""
        wanted = frozenset(kinds) if kinds else frozenset(KINDS)
        s = self.subs.get(rid)
        if s is None:
            s = self.subs[rid] = Subscriber(rid, queue, task, wanted, now + TTL)
        else:
            s.queue, s.task, s.kinds, s.expires = queue, task, wanted, now + TTL
        if seen is not None:
            s.seen = max(s.seen, min(seen, s.sent))
        return {"subscribed": True, "sent": s.sent, "dropped": s.dropped_total,
                "window": WINDOW, "renew_within": TTL}

    def unsubscribe(self, rid: bytes) -> bool:
        return self.subs.pop(rid, None) is not None

    def expire(self, now: float) -> None:
        for rid in [rid for rid, s in self.subs.items() if s.expires < now]:
            del self.subs[rid]

    def task_event(self, kind: str, t: TaskRecord, wall: float, detail: Any = None) -> None:
        for s in self.subs.values():
            if kind in s.kinds and (s.queue is None or s.queue == t.queue) \
                    and (s.task is None or s.task == t.name):
                _add(s, (kind, wall, t, detail))

    def task_events(self, kind: str, ts: list[TaskRecord], wall: float) -> None:
        """task_event for each of ts, in order (a batch's move): one filter per
        subscriber and batch, the tasks read by one comprehension."""
        for s in self.subs.values():
            if kind not in s.kinds:
                continue
            queue, name = s.queue, s.task
            if queue is None and name is None:
                items = [(kind, wall, t, None) for t in ts]
            else:
                items = [(kind, wall, t, None) for t in ts
                         if (queue is None or queue == t.queue)
                         and (name is None or name == t.name)]
            _add_many(s, items)

    def worker_event(self, kind: str, w: WorkerInfo, wall: float) -> None:
        for s in self.subs.values():
            if kind in s.kinds and s.task is None and (s.queue is None or s.queue in w.queues):
                _add(s, (kind, wall, w, None))

    def flush(self) -> list[tuple[bytes, m.Events]]:
        """The turn's EVENTS, one per subscriber with something to say. A message's
        `dropped` counts the events left out between the previous message's events and
        its own (within a turn the window only fills, so a turn's losses come after
        its events, and are told with the next message)."""
        out = []
        for s in self.subs.values():
            if s.pending:
                events = _as_maps(s.pending)
                out.append((s.rid, m.Events(s.sent, events, s.gap)))
                s.sent += len(events)
                s.pending, s.gap = [], s.dropped
            else:
                s.gap += s.dropped
                if s.gap and s.room() > 0:  # room again, nothing new: tell the gap alone
                    out.append((s.rid, m.Events(s.sent, [], s.gap)))
                    s.gap = 0
            s.dropped = 0
        return out


def _add(s: Subscriber, item: tuple[str, float, Any, Any]) -> None:
    if s.room() > 0:
        s.pending.append(item)
    else:
        s.dropped += 1
        s.dropped_total += 1


def _add_many(s: Subscriber, items: list[tuple[str, float, Any, Any]]) -> None:
    """_add each item, in order: the first ones while there is room, the rest dropped."""
    room = max(s.room(), 0)
    if len(items) > room:
        s.dropped += len(items) - room
        s.dropped_total += len(items) - room
        items = items[:room]
    s.pending.extend(items)


def _as_maps(pending: list[tuple[str, float, Any, Any]]) -> list[dict[str, Any]]:
    """_as_map of each: a task's move (no detail) built inline, the hot case."""
    return [{"kind": kind, "time": wall, "id": t.id, "name": t.name, "queue": t.queue,
             "attempt": t.attempt, "worker": t.worker}
            if detail is None and kind not in _WORKER_KINDS else _as_map(kind, wall, t, detail)
            for kind, wall, t, detail in pending]


def _as_map(kind: str, wall: float, subject: Any, detail: Any) -> dict[str, Any]:
    """An event as the wire carries it, read at the end of the turn (a task's attempt
    and worker are set after its move to RUNNING, in the same turn)."""
    if kind in WORKER_KINDS:
        w: WorkerInfo = subject
        return {"kind": kind, "time": wall, "worker": w.name, "host": w.host, "pid": w.pid,
                "queues": list(w.queues)}
    e = _as_maps([(kind, wall, subject, None)])[0]
    if detail is None:
        return e
    if kind == "submitted":  # the tasks it runs after or takes results from (issue 17)
        e["parents"], e["parents_total"] = list(detail[:PARENTS_SHOWN]), len(detail)
    else:
        e["done"], e["total"] = detail
    return e
