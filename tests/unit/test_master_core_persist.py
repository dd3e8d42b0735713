"""What the master core gives the store to keep, so that a master crash cannot undo what
was already said (issue 10, crash consistency): a lease is stored with its attempt, a cancel
of a running task is stored before the worker is told, and while the store cannot commit
no submission is accepted (issue 11: BUSY, never ACCEPTED)."""

from __future__ import annotations

from tests.unit.test_master_core import CANC, W1, C, Harness, S
from zq.core import messages as m
from zq.core.master_core import MasterCore
from zq.core.tasks import TaskRecord


def record(tid: str, state: S, attempt: int = 0) -> TaskRecord:
    """A task as a restart reads it back from the store."""
    return TaskRecord(tid, "job", b"args", state=state, attempt=attempt, seq=1)


def durable() -> Harness:
    return Harness(durable=True)


def stored(h: Harness) -> dict[str, tuple[S, int]]:
    """(state, attempt) of every task the last flush gave the store, saved or updated."""
    return {t.id: (t.state, t.attempt) for t in h.last.saves + h.last.updates}


def test_a_lease_is_stored_with_its_attempt() -> None:
    h = durable()
    h.hello(W1)
    h.submit("t1")
    h.out()
    assert stored(h) == {"t1": (S.QUEUED, 0)}
    h.dispatch()
    assert h.out() == [(W1, "TASK", ["t1"])]
    assert stored(h) == {"t1": (S.RUNNING, 1)}  # in the commit before the TASK goes out


def test_a_task_handed_back_unstarted_is_stored_queued_again() -> None:
    h = durable()
    h.hello(W1)
    h.submit("t1")
    h.dispatch()
    h.out()
    h.credit(W1, 0, returned=("t1",))
    h.out()
    assert stored(h) == {"t1": (S.QUEUED, 0)}


def test_an_adopted_task_is_stored_running_on_its_worker() -> None:
    h = durable()
    h.s.restore([record("t1", S.RUNNING, attempt=2)])
    h.hello(W1, running=("t1",))
    h.out()
    assert stored(h) == {"t1": (S.RUNNING, 2)}
    assert h.last.updates[0].worker == "w1"


def test_a_cancel_of_a_running_task_is_stored_before_the_worker_hears_it() -> None:
    h = durable()
    h.hello(W1)
    h.submit("t1", "t2")
    h.dispatch()
    h.out()
    h.cancel("t1")
    assert h.out() == [(W1, "CANCEL", ["t1"])]
    assert h.last.meta == {"cancelling": ["t1"]}  # same flush: committed before it is sent
    h.results(W1, ("t1", 1, CANC))
    h.out()
    assert h.last.meta == {"cancelling": []}
    assert h.state("t1") is S.CANCELLED


def test_after_a_restart_a_stored_cancel_ends_the_task_instead_of_running_it() -> None:
    h = durable()
    h.s.restore([record("t1", S.RUNNING, attempt=1), record("t2", S.RUNNING, attempt=1)])
    h.s.restore_cancelling(["t1", "unknown", 7])
    h.s.validate()
    assert h.state("t1") is S.CANCELLED and h.state("t2") is S.QUEUED
    h.hello(W1, running=("t1",))  # its worker still runs it: told to stop
    assert (W1, "CANCEL", ["t1"]) in h.out()
    assert h.last.meta == {"cancelling": []}
    assert stored(h)["t1"] == (S.CANCELLED, 1)


def test_while_the_store_cannot_commit_a_submission_gets_busy_and_nothing_is_leased() -> None:
    h = durable()
    h.submit("t0")
    h.out()
    h.s.store_writable = False
    h.hello(W1)
    h.submit("t1", "t2")
    h.submit("t3", queue="q", retries=2)
    h.dispatch()
    assert h.out() == [(W1, "WELCOME"), (C, "BUSY", ["t1", "t2", "t3"])]
    assert sorted(h.s.tasks) == ["t0"] and h.state("t0") is S.QUEUED
    h.s.store_writable = True
    h.submit("t1")
    h.dispatch()
    assert h.out() == [(C, "ACCEPTED", ["t1"]), (W1, "TASK", ["t0", "t1"])]


def test_the_memory_store_is_given_nothing() -> None:
    s = MasterCore(master_id="m")
    s.on_hello(W1, m.Hello("w1", "host", 1, ["default"], 1, "thread", 1, []))
    s.on_submit(C, [("t1", "job", b"a", {})])
    s.dispatch()
    s.cancel(s.tasks["t1"])
    out = s.flush()
    assert not (out.saves or out.updates or out.meta)


def test_restore_counts_every_task_read_back_with_dependencies_waiting() -> None:
    # The master logs "N tasks restored" with restore()'s count; a pending task waiting
    # for another made it the number of that task's unmet dependencies instead.
    s = MasterCore(master_id="m-test")
    parent = record("p", S.QUEUED)
    child = TaskRecord("c", "job", b"args", state=S.PENDING, seq=2, after=["p"])
    done = record("d", S.SUCCEEDED)
    assert s.restore([parent, child, done]) == 3
    assert s.unmet == {"c": 1} and s.waiting == {"p": ["c"]}
    assert s.counts[S.QUEUED] == 1 and s.counts[S.PENDING] == 1 and s.counts[S.SUCCEEDED] == 1
    s.validate()
