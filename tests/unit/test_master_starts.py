"""The master and a worker that says when tasks start (protocol 1.4, STARTED): a task
leased into an idle slot starts at its lease; one leased behind busy slots waits, not
started, until STARTED names it or its RESULT comes; its queue wait then runs to the
real start, and the "started" event fires then. A worker that never offered STARTED is
served as before (leased = started). STARTED entries for tasks the worker does not run
change nothing."""

from __future__ import annotations

from typing import Any

from zq.core import messages as m
from zq.core.access import Caller
from zq.core.master_core import MasterCore
from zq.core.messages import Outcome

T0 = 1_000_000.0
C, W1, W2, SUB = b"client", b"w1", b"w2", b"sub"
SESSIONS = {W1: "a" * 32, W2: "b" * 32}


class Master:
    def __init__(self) -> None:
        self.core = MasterCore(master_id="m")
        self.now, self.wall = 0.0, T0
        self.core.advance(self.now, self.wall)
        self.log: list[tuple[bytes, m.Message]] = []  # every message flushed

    def flush(self) -> list[tuple[bytes, m.Message]]:
        out = self.core.flush().messages
        self.log += out
        return out

    def later(self, seconds: float) -> None:
        self.now += seconds
        self.wall += seconds
        self.core.advance(self.now, self.wall)

    def hello(self, rid: bytes, *, starts: bool = True, concurrency: int = 1,
              credit: int = 3) -> list[m.Message]:
        self.core.on_hello(rid, m.Hello(rid.decode(), "h", 1, ["default"], concurrency,
                                        "thread", credit, [], SESSIONS[rid], {},
                                        started=starts))
        return self.sent(rid)

    def submit(self, *ids: str) -> None:
        self.core.on_submit(C, [(tid, "app:f", b"\x92\x90\x80", {}) for tid in ids])

    def lease(self) -> dict[bytes, list[str]]:
        """One dispatch; the ids each worker was sent, in order."""
        self.core.dispatch()
        out: dict[bytes, list[str]] = {}
        for rid, msg in self.flush():
            if isinstance(msg, m.Task):
                out.setdefault(rid, []).extend(e[0] for e in msg.entries)
        self.core.validate()
        return out

    def sent(self, rid: bytes) -> list[m.Message]:
        return [msg for r, msg in self.flush() if r == rid]

    def started(self, rid: bytes, *entries: tuple[str, int]) -> None:
        w = self.core.touch_worker(rid)
        assert w is not None
        self.core.on_started(w, list(entries))
        self.core.validate()

    def succeeded(self, rid: bytes, tid: str) -> None:
        w = self.core.touch_worker(rid)
        assert w is not None
        self.core.on_worker_results(w, [(tid, 1, int(Outcome.OK), b"\x01")])
        self.core.validate()

    def get(self, tid: str) -> dict[str, Any]:
        return self.core.tasks[tid].as_dict()


def test_welcome_takes_starts_only_from_a_worker_that_offers_them() -> None:
    master = Master()
    (welcome,) = master.hello(W1)
    assert isinstance(welcome, m.Welcome) and welcome.started is True
    (welcome,) = master.hello(W2, starts=False)  # a 1.3 worker
    assert isinstance(welcome, m.Welcome) and welcome.started is False


def test_only_the_tasks_that_fill_idle_slots_start_at_their_lease() -> None:
    master = Master()
    master.hello(W1, concurrency=1, credit=3)
    master.submit("a", "b", "c")
    master.later(2.0)
    assert master.lease() == {W1: ["a", "b", "c"]}
    a, b = master.get("a"), master.get("b")
    assert a["state"] == b["state"] == "running"
    assert a["started"] == T0 + 2.0 and a["queue_wait"] == 2.0
    assert b["started"] is None and b["queue_wait"] is None  # waits in the worker's queue
    assert master.get("c")["started"] is None


def test_started_gives_the_real_start_and_the_whole_queue_wait() -> None:
    master = Master()
    master.hello(W1, concurrency=1, credit=3)
    master.submit("a", "b", "c")
    master.later(2.0)
    master.lease()
    master.later(1.0)
    master.succeeded(W1, "a")
    master.later(0.5)
    master.started(W1, ("b", 1))
    b = master.get("b")
    assert b["started"] == T0 + 3.5
    assert b["queue_wait"] == 3.5  # 2 s in the master's queue, 1.5 s in the worker's
    master.started(W1, ("b", 1))  # told twice: the first start stands
    master.later(1.0)
    master.started(W1, ("b", 1))
    assert master.get("b")["started"] == T0 + 3.5


def test_a_result_without_started_is_the_start() -> None:
    """A task that ends within the worker's notice delay is not announced."""
    master = Master()
    master.hello(W1, concurrency=1, credit=3)
    master.submit("a", "b")
    master.lease()
    master.later(4.0)
    master.succeeded(W1, "b")
    b = master.get("b")
    assert b["state"] == "succeeded"
    assert b["started"] == T0 + 4.0 and b["queue_wait"] == 4.0 and b["runtime"] == 0.0


def test_a_cancelled_unstarted_task_never_started() -> None:
    master = Master()
    master.hello(W1, concurrency=1, credit=3)
    master.submit("a", "b")
    master.lease()
    master.core.on_cancel(C, ["b"])
    assert [msg.ids for msg in master.sent(W1) if isinstance(msg, m.Cancel)] == [["b"]]
    w = master.core.touch_worker(W1)
    assert w is not None
    master.core.on_worker_results(w, [("b", 1, int(Outcome.CANCELLED), b"")])
    b = master.get("b")
    assert b["state"] == "cancelled" and b["started"] is None and b["runtime"] is None


def test_a_worker_without_started_is_served_as_before() -> None:
    master = Master()
    master.hello(W1, starts=False, concurrency=1, credit=3)
    master.submit("a", "b")
    master.later(1.0)
    master.lease()
    assert master.get("b")["started"] == T0 + 1.0  # leased = started


def test_the_started_event_fires_at_the_real_start() -> None:
    master = Master()
    master.core.on_query(Caller(SUB), 1, "events", {"kinds": ["started"]})
    master.hello(W1, concurrency=1, credit=3)
    master.submit("a", "b")
    master.lease()
    master.later(1.0)
    master.started(W1, ("b", 1))

    master.flush()
    assert [(e["kind"], e["id"], e["time"]) for r, msg in master.log
            if r == SUB and isinstance(msg, m.Events) for e in msg.events] == [
        ("started", "a", T0), ("started", "b", T0 + 1.0)]


def test_started_for_tasks_the_worker_does_not_run_changes_nothing() -> None:
    master = Master()
    master.hello(W1, concurrency=1, credit=2)
    master.hello(W2, concurrency=1, credit=2)
    master.submit("a1", "a2", "b1", "b2", "q")
    leased = master.lease()
    mine, theirs = leased[W1], leased[W2]
    queued = [t for t in ("a1", "a2", "b1", "b2", "q") if master.get(t)["state"] == "queued"]
    assert queued and not master.get(mine[1])["started"] and not master.get(theirs[1])["started"]
    master.later(1.0)
    master.started(W1, (theirs[1], 1), ("unknown", 1), (queued[0], 1), (mine[1], 7))
    assert master.get(theirs[1])["started"] is None  # another worker's
    assert master.get(queued[0])["state"] == "queued"  # not leased at all
    assert master.get(mine[1])["started"] is None  # not the attempt it runs
    master.started(W1, (mine[1], 1))
    assert master.get(mine[1])["started"] == T0 + 1.0
