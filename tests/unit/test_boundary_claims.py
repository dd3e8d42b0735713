"""A HELLO cannot claim a task that was never given to that worker session (issue 9,
finding 7, found by the faults helper's fuzzing): listing a queued task in
HELLO.running used to lease it to the claimer, which could then settle it with any
value. Claims stay valid for what they are for: a restored task during the recovery
hold, and a task whose attempt the same session held before the master gave it up."""

from __future__ import annotations

from tests.unit.test_boundary_results import Core
from zq.core import messages as m
from zq.core.messages import Outcome, State

EVIL = b"evil"


def claim(c: Core, rid: bytes, *tids: str, queues=("elsewhere",)) -> None:
    c.s.on_hello(rid, m.Hello(rid.decode(), "h", 1, list(queues), 1, "thread", 0,
                              list(tids), session="e" * 32))
    c.s.validate()


def test_a_hello_cannot_claim_a_queued_task_and_settle_it() -> None:
    c = Core()
    c.submit("victim", queue="unserved")
    c.submit("delayed", delay=60)
    c.sent()
    claim(c, EVIL, "victim", "delayed")
    assert (EVIL, "Cancel", ["victim", "delayed"]) in c.sent()  # not yours: stop it
    c.results(EVIL, ("victim", 1, Outcome.OK), ("delayed", 1, Outcome.OK))
    assert c.state("victim") is State.QUEUED and c.state("delayed") is State.PENDING
    assert c.s.ignored_results == 2


def test_a_session_cut_off_past_the_liveness_window_takes_its_task_back() -> None:
    c = Core(heartbeat_interval=1.0, liveness=3)
    c.submit("t")
    c.s.on_hello(b"w1", m.Hello("w1", "h", 1, ["default"], 1, "thread", 1, [],
                                session="a" * 32))
    c.s.dispatch()
    c.sent()
    assert c.state("t") is State.RUNNING
    c.later(5.0)  # silent past the window: dropped, its task requeued
    c.s.housekeeping()
    assert c.state("t") is State.QUEUED
    c.s.on_hello(b"w1b", m.Hello("w1", "h", 1, ["default"], 1, "thread", 1, ["t"],
                                 session="a" * 32))  # the same process, reconnected
    c.s.validate()
    assert c.state("t") is State.RUNNING and c.s.lease["t"] == b"w1b"
