"""Results count only from the worker a task is leased to (issue 9, finding 7); the
credit a worker may claim is capped and the master takes back a task held past its time
limit (finding 8). The legitimate paths stay: a late result of an attempt that was lost
or failed, results for adopted tasks, and for restored tasks after a master restart."""

from __future__ import annotations

from typing import Any

from zq.core import messages as m
from zq.core import queries, serde
from zq.core.master_core import MasterCore
from zq.core.messages import Outcome, State
from zq.core.tasks import TaskRecord
from zq.core.workers import MAX_CONCURRENCY, PREFETCH_CEILING

C = b"client"
GOOD, THIEF, HOLE = b"good", b"thief", b"hole"


class Core:
    def __init__(self, **kw: Any) -> None:
        self.s = MasterCore(master_id="m", **kw)
        self.now, self.wall = 0.0, 1_000_000.0
        self.s.advance(self.now, self.wall)

    def later(self, seconds: float) -> None:
        self.now += seconds
        self.wall += seconds
        self.s.advance(self.now, self.wall)

    def hello(self, rid: bytes, credit: int, concurrency: int = 1, queues=("default",),
              running=()) -> None:
        self.s.on_hello(rid, m.Hello(rid.decode(), "h", 1, list(queues), concurrency,
                                     "thread", credit, list(running)))
        self.s.validate()

    def submit(self, tid: str, **opts: Any) -> None:
        self.s.on_submit(C, [(tid, "app:f", b"", opts)])
        self.s.validate()

    def results(self, rid: bytes, *entries: tuple[str, int, Outcome]) -> None:
        w = self.s.touch_worker(rid)
        assert w is not None
        self.s.on_worker_results(w, [(tid, a, int(o), b"forged" if o == Outcome.OK else
                                      (b"" if o == Outcome.CANCELLED else
                                       serde.encode_error("E", "x"))) for tid, a, o in entries])
        self.s.validate()

    def heartbeat(self, *rids: bytes) -> None:
        for rid in rids:
            self.s.touch_worker(rid)

    def sent(self) -> list[tuple[bytes, str, list]]:
        out = []
        for rid, msg in self.s.flush().messages:
            ids = getattr(msg, "ids", None) or [e[0] for e in getattr(msg, "entries", [])]
            out.append((rid, type(msg).__name__, ids))
        return out

    def state(self, tid: str) -> State:
        return self.s.tasks[tid].state


def test_a_worker_cannot_settle_tasks_it_was_never_given() -> None:
    c = Core()
    c.hello(GOOD, credit=1)
    c.submit("running")  # leased to GOOD
    c.s.dispatch()
    c.submit("queued")  # GOOD is full: it waits
    c.submit("delayed", delay=60.0)
    c.hello(THIEF, credit=0)  # takes nothing, forges everything
    c.sent()
    c.results(THIEF, ("running", 1, Outcome.OK), ("queued", 1, Outcome.OK),
              ("queued", 0, Outcome.OK), ("delayed", 1, Outcome.OK),
              ("running", 1, Outcome.FATAL), ("running", 1, Outcome.CANCELLED))
    assert c.sent() == [(THIEF, "Ack", ["running", "queued", "queued", "delayed",
                                        "running", "running"])]  # acknowledged, ignored
    assert (c.state("running"), c.state("queued"), c.state("delayed")) == (
        State.RUNNING, State.QUEUED, State.PENDING)
    assert c.s.lease["running"] == GOOD
    assert queries.status(c.s)["ignored_results"] == 6
    w = c.s.touch_worker(THIEF)
    c.s.on_partial(w, [("running", 1, 0, b"chunk")])
    c.s.on_progress(w, [("running", 1, 0.5, 1.0)])
    assert c.sent() == [] and c.s.tasks["running"].progress is None  # nothing forwarded
    c.results(GOOD, ("running", 1, Outcome.OK))  # the holder's result counts
    assert c.state("running") is State.SUCCEEDED


def test_a_restored_task_takes_a_result_from_any_worker_until_the_hold_ends() -> None:
    c = Core(durable=True)
    c.s.restore([TaskRecord("a", "app:f", b"", state=State.RUNNING, attempt=1, seq=1),
                 TaskRecord("b", "app:f", b"", state=State.QUEUED, attempt=1, seq=2)])
    c.hello(GOOD, credit=0)  # reconnects after the restart, still holding a's result
    c.results(GOOD, ("a", 1, Outcome.OK))
    assert c.state("a") is State.SUCCEEDED
    c.later(3.5)  # the hold ends: b's lease is no longer unknown
    c.heartbeat(GOOD)
    c.s.housekeeping()
    c.results(GOOD, ("b", 1, Outcome.OK))
    assert c.state("b") is State.QUEUED and c.s.ignored_results == 1


def test_the_credit_honoured_is_capped() -> None:
    c = Core()
    c.hello(HOLE, credit=2**24, concurrency=1)
    assert c.s.workers[HOLE].credit == 1 + PREFETCH_CEILING
    c.hello(b"wide", credit=2**24, concurrency=1 << 20)
    assert c.s.workers[b"wide"].credit == MAX_CONCURRENCY + PREFETCH_CEILING
    c.s.on_credit(c.s.workers[HOLE], m.Credit(10**6, []))
    assert c.s.workers[HOLE].credit == 1 + PREFETCH_CEILING
    for i in range(5000):
        c.s.on_submit(C, [(f"t{i}", "app:f", b"", {})])
    c.s.dispatch()
    assert len(c.s.workers[HOLE].leased) <= 1 + PREFETCH_CEILING
    c.s.validate()


def test_a_task_held_past_its_time_limit_is_taken_back_and_runs_elsewhere() -> None:
    c = Core()  # heartbeat 1 s x 3: the grace is max(5 s, 2 windows) = 6 s
    c.hello(HOLE, credit=100)
    c.submit("t", timeout=2.0)
    c.s.dispatch()
    assert c.s.lease["t"] == HOLE
    c.hello(GOOD, credit=1)
    c.sent()
    c.later(7.9)
    c.heartbeat(HOLE, GOOD)  # the black hole stays alive, and never reports
    c.s.housekeeping()
    assert c.s.lease["t"] == HOLE  # not yet: 2 s + 6 s
    c.later(0.2)
    c.heartbeat(HOLE, GOOD)
    c.s.housekeeping()
    c.s.dispatch()
    c.s.validate()
    out = c.sent()
    assert (HOLE, "Cancel", ["t"]) in out and (GOOD, "Task", ["t"]) in out
    assert c.s.workers[HOLE].overdue == {"t"} and c.s.workers[HOLE].free == 0
    assert queries.status(c.s)["timed_out"] == 1 and c.s.tasks["t"].attempt == 2
    c.results(GOOD, ("t", 2, Outcome.OK))
    assert c.state("t") is State.SUCCEEDED
    c.results(HOLE, ("t", 1, Outcome.CANCELLED))  # answers the CANCEL at last
    assert not c.s.workers[HOLE].overdue


def test_a_hoarder_gets_nothing_more_once_its_tasks_are_overdue() -> None:
    c = Core()
    c.hello(HOLE, credit=3)
    for i in range(3):
        c.submit(f"t{i}", timeout=1.0)
    c.s.dispatch()
    c.later(7.1)
    c.heartbeat(HOLE)
    c.s.housekeeping()
    c.s.dispatch()
    assert not c.s.workers[HOLE].leased and c.s.workers[HOLE].free == 0
    assert all(c.state(f"t{i}") is State.QUEUED for i in range(3))


def test_time_limits_exhaust_the_attempts_like_a_lost_worker() -> None:
    c = Core()
    for k in range(3):  # 1 attempt + LOST_ALLOWANCE 2, each on a new black hole
        c.hello(f"hole{k}".encode(), credit=1)
        c.s.dispatch() if k else (c.submit("t", timeout=1.0), c.s.dispatch())
        c.later(7.1)
        c.heartbeat(*[f"hole{j}".encode() for j in range(k + 1)])
        c.s.housekeeping()
    assert c.state("t") is State.DEAD
    err = serde.decode_error(c.s.tasks["t"].result)
    assert err["type"] == "TaskTimeout" and "attempt 3 of 3" in err["message"]


def test_the_window_for_restored_tasks_closes_without_queued_ones_too() -> None:
    c = Core(durable=True)
    c.s.restore([TaskRecord("r", "app:f", b"", state=State.RETRYING, attempt=1, retries=3,
                            seq=1)])
    c.hello(THIEF, credit=0)
    c.later(3.5)  # the hold ends; nothing was held in a queue
    c.heartbeat(THIEF)
    c.s.housekeeping()
    c.results(THIEF, ("r", 1, Outcome.OK))
    assert c.state("r") is not State.SUCCEEDED and c.s.ignored_results == 1
