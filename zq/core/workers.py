"""What the master knows of each connected worker: its session, credit, leases and
liveness marks, and the measures the dispatcher orders workers by."""

from __future__ import annotations

from typing import Any

from zq.core import messages as m
from zq.core.balance import ReadyQueue

# The credit the master honours: a worker's declared concurrency (at most
# MAX_CONCURRENCY) plus at most PREFETCH_CEILING prefetched tasks (the adaptive prefetch
# of zq's worker never asks for more): a worker declaring a huge credit cannot hoard
# the queue.
MAX_CONCURRENCY = 10_000
PREFETCH_CEILING = 2_000

# The session of a 1.0 worker, which sends no token, is its name (as in 1.0): the prefix
# holds a ':', which a token never does, so it matches no worker that sent one.
LEGACY_SESSION = "1.0:"
SESSION_SHOWN = 8  # characters of a session token that `status` shows: enough to tell
# workers apart, too few to claim another worker's tasks with


class WorkerInfo:
    """What the master knows of one connected worker. A worker is known by its session
    token (``session``), which its process keeps across reconnects; its name is a label
    that several workers may share."""

    __slots__ = ("rid", "name", "host", "pid", "queues", "concurrency", "pool", "credit",
                 "leased", "last_seen", "last_sent", "idle_since", "ready_queues", "adopted",
                 "session", "max_credit", "overdue")

    def __init__(self, rid: bytes, hello: m.Hello, now: float) -> None:
        self.rid = rid
        self.session = hello.session or LEGACY_SESSION + hello.name
        self.name, self.host, self.pid = hello.name, hello.host, hello.pid
        self.queues = tuple(hello.queues) or ("default",)
        self.concurrency, self.pool = hello.concurrency, hello.pool
        self.max_credit = min(hello.concurrency, MAX_CONCURRENCY) + PREFETCH_CEILING
        self.credit = min(hello.credit, self.max_credit)
        self.leased: set[str] = set()
        # Taken back past their time limit and not reported since: while any is, the
        # worker is offered nothing more (a worker that never answers hoards no more).
        self.overdue: set[str] = set()
        self.adopted: set[str] = set()  # leased by HELLO.running: attempt unknown
        self.last_seen = self.last_sent = self.idle_since = now
        self.ready_queues: list[ReadyQueue] = []

    @property
    def free(self) -> int:
        """Tasks the master may still send: none while a task taken back past its time
        limit is not answered (the worker then answers CANCEL at once, if it reads)."""
        return 0 if self.overdue else self.credit - len(self.leased)

    @property
    def short_session(self) -> str:
        """What `status` and the log show of the token ("" for a 1.0 worker)."""
        return "" if self.session.startswith(LEGACY_SESSION) else self.session[:SESSION_SHOWN]

    def as_dict(self, now: float) -> dict[str, Any]:
        return {"name": self.name, "session": self.short_session, "host": self.host,
                "pid": self.pid, "pool": self.pool,
                "concurrency": self.concurrency, "credit": self.credit,
                "queues": list(self.queues), "running": len(self.leased),
                "overdue": len(self.overdue),
                "last_seen": round(now - self.last_seen, 3)}


def free_credit(w: WorkerInfo) -> int:
    return w.free


def idle_slots(w: WorkerInfo) -> int:
    return 0 if w.overdue else w.concurrency - len(w.leased)


def idle_since(w: WorkerInfo) -> float:
    return w.idle_since
