"""Rules of the master core, one small test each (Dask worker-state-machine style).

Every test drives a MasterCore through `Harness`, which validates the core after every
step, and asserts on the whole list of messages one flush() returns, as comparable
tuples (see `_view`). A flush groups messages by peer (peers in the order they were first
addressed in the turn), and each peer's in SEND_ORDER. No sockets and no real clock: time
only moves when a test says so.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from zq.core import messages as m
from zq.core import queries, recovery, serde
from zq.core.master_core import MasterCore
from zq.core.messages import Outcome, State
from zq.core.tasks import TaskRecord

C, C2 = b"client-1", b"client-2"
W1, W2, W3 = b"w1", b"w2", b"w3"
T0 = 1_000_000.0  # the fake wall clock at the start of every test
OK, ERR, FATAL, CANC = Outcome.OK, Outcome.ERROR, Outcome.FATAL, Outcome.CANCELLED
S = State


def _result_entry(tid: str, state: int, payload: Any) -> tuple[str, State, Any]:
    """(id, state, the result bytes) or, for an error payload, (id, state, its type name)."""
    st = State(state)
    if st is State.SUCCEEDED:
        return tid, st, bytes(payload)
    return tid, st, serde.decode_error(payload)["type"]


def _view(rid: bytes, msg: m.Message) -> tuple:
    """One outgoing message as a tuple that is easy to compare."""
    if isinstance(msg, m.Task):
        return rid, "TASK", [e[0] for e in msg.entries]
    if isinstance(msg, m.Result):
        return rid, "RESULT", [_result_entry(*e) for e in msg.entries]
    if isinstance(msg, m.Accepted):
        if msg.same_as:
            return rid, "ACCEPTED", msg.ids, msg.same_as
        return rid, "ACCEPTED", msg.ids
    if isinstance(msg, m.RejectedEntries):
        return rid, "REJECTED", [tid for tid, _ in msg.entries]
    if isinstance(msg, (m.Ack, m.Cancel, m.Busy)):
        return rid, msg.cmd.name, msg.ids
    if isinstance(msg, (m.Partial, m.Progress)):
        return rid, msg.cmd.name, msg.entries
    if isinstance(msg, m.Reply):
        return rid, "REPLY", msg.request_id, msg.ok
    return rid, msg.cmd.name  # WELCOME, DISCONNECT, HEARTBEAT, ERROR


class Harness:
    """A MasterCore on a fake clock; every stimulus is followed by validate()."""

    def __init__(self, **kw: Any) -> None:
        kw.setdefault("master_id", "m-test")
        self.s = MasterCore(**kw)
        self.now, self.wall = 0.0, T0
        self.s.advance(self.now, self.wall)
        self.last: Any = None  # the last Flush

    # --- time ---
    def later(self, seconds: float) -> None:
        """Both clocks move on; nothing else happens until tick()."""
        self.now += seconds
        self.wall += seconds
        self.s.advance(self.now, self.wall)

    def tick(self) -> None:
        self.s.housekeeping()
        self.s.validate()

    def dispatch(self) -> None:
        self.s.dispatch()
        self.s.validate()

    def out(self, heartbeats: bool = False) -> list[tuple]:
        """flush() as tuples; HEARTBEATs left out unless asked for."""
        self.s.validate()
        self.last = self.s.flush()
        views = [_view(rid, msg) for rid, msg in self.last.messages]
        return [v for v in views if heartbeats or v[1] != "HEARTBEAT"]

    # --- clients ---
    def submit(self, *ids: str, rid: bytes = C, name: str = "job", **opts: Any) -> None:
        self.s.on_submit(rid, [(tid, name, b"args", dict(opts)) for tid in ids])
        self.s.validate()

    def watch(self, *ids: str, rid: bytes = C) -> None:
        self.s.on_watch(rid, list(ids))
        self.s.validate()

    def cancel(self, *ids: str, rid: bytes = C) -> None:
        self.s.on_cancel(rid, list(ids))
        self.s.validate()

    # --- workers ---
    def hello(self, rid: bytes, *, credit: int = 2, queues: tuple[str, ...] = ("default",),
              running: tuple[str, ...] = (), name: str | None = None) -> None:
        name = name or rid.decode()
        self.s.on_hello(rid, m.Hello(name, "host", 1, list(queues), credit, "thread", credit,
                                     list(running)))
        self.s.validate()

    def _w(self, rid: bytes) -> Any:
        return self.s.touch_worker(rid)

    def results(self, rid: bytes, *entries: tuple[str, int, Outcome]) -> None:
        """entries: (task id, attempt, outcome); OK carries b'ok:<id>', errors an error map."""
        w = self._w(rid)
        if w is not None:
            self.s.on_worker_results(w, [(tid, att, int(oc), _payload(tid, oc))
                                         for tid, att, oc in entries])
        self.s.validate()

    def credit(self, rid: bytes, credit: int, returned: tuple[str, ...] = ()) -> None:
        w = self._w(rid)
        if w is not None:
            self.s.on_credit(w, m.Credit(credit, list(returned)))
        self.s.validate()

    def bye(self, rid: bytes, returned: tuple[str, ...] = ()) -> None:
        w = self._w(rid)
        if w is not None:
            self.s.on_bye(w, m.Bye(list(returned)))
        self.s.validate()

    def heartbeat(self, rid: bytes) -> None:
        self._w(rid)  # any message marks the worker alive
        self.s.validate()

    # --- looking inside ---
    def state(self, tid: str) -> State:
        return self.s.tasks[tid].state

    def attempt(self, tid: str) -> int:
        return self.s.tasks[tid].attempt

    def sent_tasks(self) -> list[tuple[bytes, str, int]]:
        """(worker, id, attempt) of every TASK entry in the last flush."""
        return [(rid, e[0], e[1]) for rid, msg in self.last.messages
                if isinstance(msg, m.Task) for e in msg.entries]


def _payload(tid: str, oc: Outcome) -> bytes:
    if oc == Outcome.OK:
        return b"ok:" + tid.encode()
    if oc == Outcome.CANCELLED:
        return b""
    return serde.encode_error("ValueError", f"{tid} broke")


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.s.validate()


def make(**kw: Any) -> Harness:
    return Harness(**kw)


def ok(tid: str) -> tuple[str, State, bytes]:
    return tid, S.SUCCEEDED, b"ok:" + tid.encode()


# --- submit, dispatch, result --------------------------------------------------------


def test_submit_is_accepted_and_queued(h: Harness) -> None:
    h.submit("t1", "t2")
    assert h.out() == [(C, "ACCEPTED", ["t1", "t2"])]
    assert h.state("t1") is S.QUEUED and h.s.depth == {"default": 2}


def test_dispatch_sends_task_to_worker(h: Harness) -> None:
    h.hello(W1)
    h.submit("t1", timeout=5.0, retry_on=["IOError"])
    h.dispatch()
    assert h.out() == [(W1, "WELCOME"), (W1, "TASK", ["t1"]), (C, "ACCEPTED", ["t1"])]
    task = h.last.messages[1][1]
    assert task.entries == [("t1", 1, "job", b"args", 5.0, ["IOError"])]
    assert h.state("t1") is S.RUNNING and h.s.lease == {"t1": W1}


def test_ok_result_reaches_submitter_and_worker_gets_ack(h: Harness) -> None:
    h.hello(W1)
    h.submit("t1")
    h.dispatch()
    h.out()
    h.results(W1, ("t1", 1, OK))
    assert h.out() == [(C, "RESULT", [ok("t1")]), (W1, "ACK", ["t1"])]
    assert h.state("t1") is S.SUCCEEDED and not h.s.lease and not h.s.watcher


def test_duplicate_result_is_acked_not_forwarded(h: Harness) -> None:
    h.hello(W1)
    h.submit("t1")
    h.dispatch()
    h.results(W1, ("t1", 1, OK))
    h.out()
    h.results(W1, ("t1", 1, OK))
    assert h.out() == [(W1, "ACK", ["t1"])]
    h.results(W1, ("t1", 1, ERR))
    assert h.out() == [(W1, "ACK", ["t1"])]
    assert h.state("t1") is S.SUCCEEDED


# --- credit and balancing ------------------------------------------------------------


def test_never_more_outstanding_than_credit(h: Harness) -> None:
    h.hello(W1, credit=2)
    h.submit("t1", "t2", "t3", "t4", "t5")
    h.dispatch()
    assert h.out() == [(W1, "WELCOME"), (W1, "TASK", ["t1", "t2"]),
                       (C, "ACCEPTED", ["t1", "t2", "t3", "t4", "t5"])]
    h.dispatch()
    assert h.out() == []
    h.results(W1, ("t1", 1, OK))
    h.dispatch()
    assert h.out() == [(C, "RESULT", [ok("t1")]), (W1, "ACK", ["t1"]), (W1, "TASK", ["t3"])]
    h.results(W1, ("t2", 1, ERR), ("t3", 1, FATAL))  # any outcome frees a credit
    h.dispatch()
    assert h.out()[-1] == (W1, "TASK", ["t4", "t5"])
    assert h.s.workers[W1].leased == {"t4", "t5"}


def test_credit_zero_stops_dispatch_and_returns_ids_uncounted(h: Harness) -> None:
    h.hello(W1, credit=2)
    h.submit("t1", "t2", "t3")
    h.dispatch()
    h.out()
    h.credit(W1, 0, returned=("t2",))
    h.dispatch()
    assert h.out() == []
    assert h.state("t2") is S.QUEUED and h.attempt("t2") == 0
    h.hello(W2, credit=1)
    h.dispatch()
    assert h.out() == [(W2, "WELCOME"), (W2, "TASK", ["t2"])]  # handed back: first in line
    assert h.sent_tasks() == [(W2, "t2", 1)]
    h.results(W1, ("t1", 1, OK))  # W1 still reports what it kept
    h.dispatch()
    assert h.out() == [(C, "RESULT", [ok("t1")]), (W1, "ACK", ["t1"])]


def test_credit_returned_id_not_leased_to_worker_is_ignored(h: Harness) -> None:
    h.hello(W1, credit=1)
    h.hello(W2, credit=1)
    h.submit("t1")
    h.dispatch()
    h.out()
    holder, other = (W1, W2) if h.s.lease["t1"] == W1 else (W2, W1)
    h.credit(other, 1, returned=("t1",))
    assert h.s.lease == {"t1": holder} and h.state("t1") is S.RUNNING


def test_most_free_credit_first(h: Harness) -> None:
    h.hello(W1, credit=1)
    h.hello(W2, credit=3)
    h.submit("t1")
    h.dispatch()
    assert h.out() == [(W1, "WELCOME"), (W2, "WELCOME"), (W2, "TASK", ["t1"]),
                       (C, "ACCEPTED", ["t1"])]


def test_longest_idle_first_on_ties(h: Harness) -> None:
    h.hello(W1, credit=1)
    h.later(1)
    h.hello(W2, credit=1)
    h.submit("t1")
    h.dispatch()
    assert h.out() == [(W1, "WELCOME"), (W1, "TASK", ["t1"]),  # idle since 0, W2 since 1
                       (W2, "WELCOME"), (C, "ACCEPTED", ["t1"])]
    h.later(1)
    h.heartbeat(W2)
    h.results(W1, ("t1", 1, OK))  # W1 idle again, since now (2)
    h.submit("t2")
    h.dispatch()
    assert h.out() == [(C, "ACCEPTED", ["t2"]), (C, "RESULT", [ok("t1")]),
                       (W1, "ACK", ["t1"]), (W2, "TASK", ["t2"])]


# --- queues and priority -----------------------------------------------------------------


def test_task_only_reaches_workers_of_its_queue(h: Harness) -> None:
    h.hello(W1, queues=("a",))
    h.hello(W2, queues=("b",))
    h.submit("tb", queue="b")
    h.submit("ta", queue="a")
    h.submit("tc", queue="c")
    h.dispatch()
    assert h.out() == [(W1, "WELCOME"), (W1, "TASK", ["ta"]), (W2, "WELCOME"),
                       (W2, "TASK", ["tb"]), (C, "ACCEPTED", ["tb", "ta", "tc"])]
    assert h.state("tc") is S.QUEUED and h.s.depth["c"] == 1
    h.hello(W3, queues=("c", "a"))  # a queue that appears before its worker
    h.dispatch()
    assert h.out() == [(W3, "WELCOME"), (W3, "TASK", ["tc"])]


def test_priority_higher_first_fifo_among_equals(h: Harness) -> None:
    h.submit("lo1")
    h.submit("hi1", priority=5)
    h.submit("lo2")
    h.submit("hi2", priority=5)
    h.submit("mid", priority=1)
    h.hello(W1, credit=5)
    h.dispatch()
    assert h.out()[-1] == (W1, "TASK", ["hi1", "hi2", "mid", "lo1", "lo2"])


def test_priority_across_the_queues_of_one_worker(h: Harness) -> None:
    h.submit("a0", queue="a")
    h.submit("b9", queue="b", priority=9)
    h.hello(W1, credit=1, queues=("a", "b"))
    h.dispatch()
    assert h.out()[-1] == (W1, "TASK", ["b9"])


# --- retries -----------------------------------------------------------------------------


def test_error_retries_after_backoff_then_dead(h: Harness) -> None:
    # rand() is 0.5, so a backoff is 0.75 of base * 2**(attempt-1)
    h.hello(W1)
    h.submit("t1", retries=2, retry_backoff=2.0)
    h.dispatch()
    h.out()
    assert h.sent_tasks() == [(W1, "t1", 1)]
    h.results(W1, ("t1", 1, ERR))
    assert h.out() == [(W1, "ACK", ["t1"])]
    assert h.state("t1") is S.RETRYING
    h.later(1.49)
    h.tick()
    h.dispatch()
    assert h.state("t1") is S.RETRYING and h.out() == []
    h.later(0.01)  # 2.0 * 0.75
    h.tick()
    assert h.state("t1") is S.QUEUED
    h.dispatch()
    h.out()
    assert h.sent_tasks() == [(W1, "t1", 2)]
    h.results(W1, ("t1", 2, ERR))
    h.later(2.99)
    h.tick()
    assert h.state("t1") is S.RETRYING
    h.later(0.01)  # 4.0 * 0.75
    h.tick()
    h.dispatch()
    h.out()
    assert h.sent_tasks() == [(W1, "t1", 3)]
    h.results(W1, ("t1", 3, ERR))
    assert h.out() == [(C, "RESULT", [("t1", S.DEAD, "ValueError")]), (W1, "ACK", ["t1"])]


def test_backoff_is_capped(h: Harness) -> None:
    h.hello(W1)
    h.submit("t1", retries=5, retry_backoff=10.0, retry_backoff_max=4.0)
    for attempt in (1, 2, 3):
        h.dispatch()
        h.results(W1, ("t1", attempt, ERR))
        h.later(2.99)
        h.tick()
        assert h.state("t1") is S.RETRYING
        h.later(0.01)  # 4.0 * 0.75 every time
        h.tick()
        assert h.state("t1") is S.QUEUED


def test_a_succeeded_task_lets_go_of_its_arguments_a_failed_one_keeps_them(
        h: Harness) -> None:
    h.hello(W1, credit=4)
    h.submit("fast", "slow", "bad", "watched")
    h.watch("watched", rid=b"another-client")  # two watchers: the general path
    h.dispatch()
    h.out()
    h.results(W1, ("fast", 1, OK), ("watched", 1, OK), ("bad", 1, ERR))
    assert (b"another-client", "RESULT", [ok("watched")]) in h.out()
    assert h.s.tasks["fast"].payload == h.s.tasks["watched"].payload == b""
    assert h.s.tasks["bad"].payload == b"args"  # `zq retry` runs it again
    assert h.s.tasks["slow"].payload == b"args"  # still running


@pytest.mark.parametrize("opts, outcome", [({}, ERR), ({"retries": 3}, FATAL)],
                         ids=["error_without_retries", "fatal_despite_retries"])
def test_fails_at_once(h: Harness, opts: dict[str, Any], outcome: Outcome) -> None:
    h.hello(W1)
    h.submit("t1", **opts)
    h.dispatch()
    h.out()
    h.results(W1, ("t1", 1, outcome))
    assert h.out() == [(C, "RESULT", [("t1", S.FAILED, "ValueError")]), (W1, "ACK", ["t1"])]


def test_late_failure_of_an_old_attempt_is_ignored(h: Harness) -> None:
    h.hello(W1)
    h.submit("t1", retries=1)
    h.dispatch()
    h.results(W1, ("t1", 1, ERR))
    h.later(1)
    h.tick()
    h.dispatch()
    h.out()
    h.results(W1, ("t1", 1, ERR))  # a resend of attempt 1
    assert h.out() == [(W1, "ACK", ["t1"])]
    assert h.state("t1") is S.RUNNING and h.s.lease == {"t1": W1}


# --- worker death ------------------------------------------------------------------------


def test_silent_worker_is_dropped_and_its_tasks_run_elsewhere(h: Harness) -> None:
    h.hello(W1, credit=1)
    h.submit("t1")
    h.dispatch()
    h.out()
    h.hello(W2, credit=1)  # W2 is younger: it stays alive through the test
    h.later(3.0)  # exactly interval x liveness: not yet
    h.heartbeat(W2)
    h.tick()
    assert W1 in h.s.workers
    h.later(0.01)
    h.tick()
    assert W1 not in h.s.workers
    assert h.state("t1") is S.QUEUED and h.attempt("t1") == 1
    h.dispatch()
    assert h.out() == [(W2, "WELCOME"), (W2, "TASK", ["t1"])]
    assert h.sent_tasks() == [(W2, "t1", 2)]


def test_workers_joining_leaving_and_going_silent_are_noticed_for_the_log(h: Harness) -> None:
    h.hello(W1)
    h.hello(W2)
    h.submit("t1")
    h.dispatch()
    h.out()
    assert [level for level, _ in h.last.notices] == ["info", "info"]
    assert "worker w1 (host, pid 1) registered: thread pool of 2" in h.last.notices[0][1]
    h.bye(W2)
    h.out()
    assert h.last.notices == [("info", "worker w2 (host, pid 1) said goodbye, handing back "
                                       "0 task(s)")]
    h.later(10)
    h.tick()
    h.out()
    (level, text), (level2, held) = h.last.notices
    assert level == "warning" and text.startswith("worker w1 (host, pid 1) silent for 10.0 s")
    assert (level2, held) == ("warning", "worker w1 (host, pid 1) gone holding 1 task(s); "
                                         "run again 1: t1")
    h.out()
    assert h.last.notices == []


def test_message_from_unknown_worker_gets_disconnect(h: Harness) -> None:
    h.results(W1, ("t1", 1, OK))
    h.credit(W2, 3)
    assert h.out() == [(W1, "DISCONNECT"), (W2, "DISCONNECT")]


def test_idle_worker_gets_heartbeat(h: Harness) -> None:
    h.hello(W1)
    h.tick()
    assert h.out(heartbeats=True) == [(W1, "WELCOME")]
    h.later(0.99)
    h.tick()
    assert h.out(heartbeats=True) == []
    h.later(0.01)
    h.tick()
    assert h.out(heartbeats=True) == [(W1, "HEARTBEAT")]


def _lose_to(h: Harness, rid: bytes) -> None:
    """The worker `rid` registers, takes what there is, and goes silent for good."""
    h.hello(rid, credit=1)
    h.dispatch()
    h.out()
    h.later(3.5)
    h.tick()


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_task_lost_too_often_is_dead_with_worker_lost(retries: int) -> None:
    """docs/TASKS.md: a task whose worker was lost gets up to two extra attempts beyond
    its retries, then it is dead (WorkerLost), every attempt counted."""
    h = make()
    h.submit("t1", retries=retries)
    h.out()
    allowed = retries + 1 + 2
    for i in range(allowed - 1):
        _lose_to(h, f"x{i}".encode())
        assert h.state("t1") is S.QUEUED and h.attempt("t1") == i + 1
    h.hello(b"last", credit=1)
    h.dispatch()
    h.out()
    assert h.sent_tasks() == [(b"last", "t1", allowed)]
    h.later(3.5)
    h.tick()
    assert h.out() == [(C, "RESULT", [("t1", S.DEAD, "WorkerLost")])]
    assert h.attempt("t1") == allowed
    assert f"on attempt {allowed} of {allowed}" in serde.decode_error(
        h.s.tasks["t1"].result)["message"]


def _rerun_on_w2(h: Harness) -> None:
    """W2 registers, W1 (which runs t1) goes silent past its liveness and is lost, and
    t1's next attempt is dispatched to W2."""
    h.later(2)
    h.hello(W2, credit=1)
    h.later(1.5)
    h.tick()
    h.dispatch()


def test_late_ok_from_dead_worker_wins_and_new_lease_is_cancelled(h: Harness) -> None:
    h.hello(W1, credit=1)
    h.submit("t1", retries=1)
    h.dispatch()
    h.out()
    _rerun_on_w2(h)
    h.out()
    assert h.sent_tasks() == [(W2, "t1", 2)]
    h.hello(W1, credit=1)  # W1 comes back with the result it never got an ACK for
    h.results(W1, ("t1", 1, OK))
    assert h.out() == [(W1, "WELCOME"), (W1, "ACK", ["t1"]), (W2, "CANCEL", ["t1"]),
                       (C, "RESULT", [ok("t1")])]
    assert h.s.workers[W2].leased == set() and not h.s.lease
    h.results(W2, ("t1", 2, CANC))
    assert h.out() == [(W2, "ACK", ["t1"])]
    assert h.state("t1") is S.SUCCEEDED


def test_late_error_from_dead_worker_keeps_the_new_lease(h: Harness) -> None:
    h.hello(W1, credit=1)
    h.submit("t1", retries=1)
    h.dispatch()
    _rerun_on_w2(h)
    h.out()
    h.hello(W1, credit=1)
    h.results(W1, ("t1", 1, ERR))
    assert h.out() == [(W1, "WELCOME"), (W1, "ACK", ["t1"])]
    assert h.s.lease == {"t1": W2} and h.s.workers[W2].leased == {"t1"}
    h.later(3.5)  # now W2 dies: t1 must still be recovered, not stuck RUNNING
    h.heartbeat(W1)
    h.tick()
    assert h.state("t1") is S.QUEUED


def test_old_result_stops_a_rerun_on_the_same_worker(h: Harness) -> None:
    h.hello(W1, credit=1)
    h.submit("t1")
    h.dispatch()
    h.out()
    h.hello(W1, credit=1)  # registers again without t1: it ended, its result not yet ACKed
    h.dispatch()
    assert h.out() == [(W1, "WELCOME"), (W1, "TASK", ["t1"])]
    assert h.sent_tasks() == [(W1, "t1", 2)]
    h.results(W1, ("t1", 1, OK))  # sent again after WELCOME: it wins, attempt 2 must stop
    assert h.out() == [(W1, "ACK", ["t1"]), (W1, "CANCEL", ["t1"]), (C, "RESULT", [ok("t1")])]


def test_adopted_run_of_an_older_attempt_reports_a_failure(h: Harness) -> None:
    h.hello(W1, credit=1)
    h.submit("t1", retries=2)
    h.dispatch()
    _rerun_on_w2(h)
    h.later(3.5)
    h.tick()  # W2 is lost too
    h.out()
    h.hello(b"w1-again", name="w1", credit=1, running=("t1",))  # W1 still runs attempt 1
    assert h.s.lease == {"t1": b"w1-again"} and h.attempt("t1") == 2
    h.results(b"w1-again", ("t1", 1, ERR))  # not a late duplicate: the run it holds failed
    assert h.out() == [(b"w1-again", "WELCOME"), (b"w1-again", "ACK", ["t1"])]
    assert h.state("t1") is S.RETRYING


def test_restored_attempt_count_may_lag_the_adopted_run() -> None:
    h = make(durable=True)
    h.s.restore([TaskRecord("t1", "job", b"", state=S.QUEUED, attempt=1, retries=1, seq=1)])
    h.hello(W1, running=("t1",))  # attempt 2 was leased before the crash, never saved
    h.out()
    h.results(W1, ("t1", 2, ERR))
    assert h.out() == [(W1, "ACK", ["t1"])]
    assert h.state("t1") is S.RETRYING and not h.s.lease


def test_late_ok_for_a_task_waiting_to_retry_wins(h: Harness) -> None:
    h.hello(W1, credit=1)
    h.submit("t1", retries=2)
    h.dispatch()
    h.results(W1, ("t1", 1, ERR))
    h.out()
    assert h.state("t1") is S.RETRYING
    h.results(W1, ("t1", 1, OK))  # contradictory, but a success is a success
    assert h.out() == [(C, "RESULT", [ok("t1")]), (W1, "ACK", ["t1"])]


# --- BYE, HELLO again ------------------------------------------------------------------


def test_bye_requeues_returned_uncounted_and_the_rest_counted(h: Harness) -> None:
    h.hello(W1, credit=2)
    h.submit("t1", "t2")
    h.dispatch()
    h.out()
    h.bye(W1, returned=("t2",))
    assert W1 not in h.s.workers
    assert (h.attempt("t1"), h.attempt("t2")) == (1, 0)
    h.hello(W2, credit=2)
    h.dispatch()
    h.out()
    assert sorted(h.sent_tasks()) == [(W2, "t1", 2), (W2, "t2", 1)]


def test_reconnecting_worker_keeps_what_it_still_runs(h: Harness) -> None:
    h.hello(W1, credit=2)
    h.submit("t1", "t2")
    h.dispatch()
    h.out()
    # W1 lost the master and comes back on a fresh socket: a new routing id, same name
    h.hello(b"w1-again", name="w1", credit=2, running=("t1",))
    h.dispatch()
    assert h.out() == [(b"w1-again", "WELCOME")]  # no second TASK for t1
    assert h.s.lease["t1"] == b"w1-again" and h.attempt("t1") == 1
    h.later(3.5)  # the old connection expires: t2, which W1 forgot, runs again
    h.heartbeat(b"w1-again")
    h.tick()
    h.dispatch()
    assert h.out() == [(b"w1-again", "TASK", ["t2"])]
    assert h.sent_tasks() == [(b"w1-again", "t2", 2)]


def test_hello_again_on_the_same_connection(h: Harness) -> None:
    h.hello(W1, credit=3)
    h.submit("t1", "t2", "t3")
    h.dispatch()
    h.out()
    h.hello(W1, credit=3, running=("t1",))
    assert h.s.workers[W1].leased == {"t1"}
    assert h.state("t2") is S.QUEUED and h.state("t3") is S.QUEUED
    h.dispatch()
    out = h.out()  # lost tasks are requeued in set order: compare them sorted
    assert [v[:2] for v in out] == [(W1, "WELCOME"), (W1, "TASK")]
    assert sorted(h.sent_tasks()) == [(W1, "t2", 2), (W1, "t3", 2)]


def test_hello_running_unknown_or_finished_ids_get_cancel(h: Harness) -> None:
    h.hello(W1)
    h.submit("done")
    h.dispatch()
    h.results(W1, ("done", 1, OK))
    h.out()
    h.hello(W2, running=("nope", "done"))
    assert h.out() == [(W2, "WELCOME"), (W2, "CANCEL", ["nope", "done"])]
    assert h.s.workers[W2].leased == set()


def test_hello_running_a_queued_task_never_given_to_it_is_refused(h: Harness) -> None:
    """A HELLO cannot claim a task the master never gave that session (it could then
    settle it with any result): the master says CANCEL and the task stays queued."""
    h.submit("t1", "t2")
    h.hello(W1, credit=1, running=("t2",))
    h.dispatch()
    out = h.out()
    assert (W1, "CANCEL", ["t2"]) in out and (W1, "TASK", ["t1"]) in out
    assert h.state("t2") is S.QUEUED and h.attempt("t2") == 0


def test_hello_running_a_delayed_or_retrying_task_of_another_session_is_refused() -> None:
    h = make()
    h.submit("later", delay=60.0)
    h.hello(W1)
    h.submit("again", retries=1)
    h.dispatch()
    h.results(W1, ("again", 1, ERR))
    h.hello(W2, running=("later", "again"))
    assert h.state("later") is S.PENDING and h.state("again") is S.RETRYING
    assert h.s.lease == {}
    h.s.validate()


# --- delay, eta, after -----------------------------------------------------------------


def test_delay_keeps_task_pending_until_due(h: Harness) -> None:
    h.hello(W1)
    h.submit("t1", delay=5.0)
    h.dispatch()
    assert h.state("t1") is S.PENDING and h.out() == [(W1, "WELCOME"), (C, "ACCEPTED", ["t1"])]
    h.later(4.99)
    h.heartbeat(W1)
    h.tick()
    h.dispatch()
    assert h.state("t1") is S.PENDING and h.out() == []
    h.later(0.01)
    h.tick()
    h.dispatch()
    assert h.out() == [(W1, "TASK", ["t1"])]


def test_eta_is_wall_clock(h: Harness) -> None:
    h.hello(W1)
    h.submit("past", eta=T0 - 1)
    h.submit("future", eta=T0 + 10)
    h.dispatch()
    assert h.out() == [(W1, "WELCOME"), (W1, "TASK", ["past"]),
                       (C, "ACCEPTED", ["past", "future"])]
    h.now += 100  # monotonic time alone does not make it due
    h.s.advance(h.now, h.wall)
    h.heartbeat(W1)
    h.tick()
    assert h.state("future") is S.PENDING
    h.wall += 10
    h.s.advance(h.now, h.wall)
    h.tick()
    h.dispatch()
    assert h.out()[-1] == (W1, "TASK", ["future"])


def test_after_waits_for_dependencies_then_runs(h: Harness) -> None:
    h.hello(W1, credit=4)
    h.submit("a", "b")
    h.submit("c", after=["a", "b"])
    h.dispatch()
    h.out()
    assert h.state("c") is S.PENDING
    h.results(W1, ("a", 1, OK))
    h.dispatch()
    assert h.state("c") is S.PENDING
    h.results(W1, ("b", 1, OK))
    h.dispatch()
    assert h.out() == [(C, "RESULT", [ok("a"), ok("b")]),
                       (W1, "ACK", ["a", "b"]), (W1, "TASK", ["c"])]


def test_after_a_dependency_that_already_succeeded(h: Harness) -> None:
    h.hello(W1)
    h.submit("a")
    h.dispatch()
    h.results(W1, ("a", 1, OK))
    h.out()
    h.submit("b", after=["a"])
    h.dispatch()
    assert h.out() == [(C, "ACCEPTED", ["b"]), (W1, "TASK", ["b"])]


def test_after_a_dependency_that_fails_for_good_cancels(h: Harness) -> None:
    h.hello(W1)
    h.submit("a", retries=1)
    h.submit("b", after=["a"], rid=C2)
    h.dispatch()
    h.out()
    h.results(W1, ("a", 1, ERR))  # it will retry: b keeps waiting
    assert h.state("b") is S.PENDING and h.out() == [(W1, "ACK", ["a"])]
    h.later(1)
    h.tick()
    h.dispatch()
    h.results(W1, ("a", 2, ERR))
    assert h.out() == [(W1, "ACK", ["a"]), (W1, "TASK", ["a"]),
                       (C, "RESULT", [("a", S.DEAD, "ValueError")]),
                       (C2, "RESULT", [("b", S.CANCELLED, "CancelledError")])]


def test_after_a_dependency_that_already_failed_cancels_at_once(h: Harness) -> None:
    h.hello(W1)
    h.submit("a")
    h.dispatch()
    h.results(W1, ("a", 1, FATAL))
    h.out()
    h.submit("b", after=["a"])
    assert h.out() == [(C, "ACCEPTED", ["b"]), (C, "RESULT", [("b", S.CANCELLED,
                                                                "CancelledError")])]


def test_after_unknown_task_is_rejected(h: Harness) -> None:
    h.submit("b", after=["ghost"])
    assert h.out() == [(C, "REJECTED", ["b"])]
    assert "b" not in h.s.tasks


def test_after_a_dependency_forgotten_since_it_succeeded() -> None:
    h = make(max_finished=1)
    h.hello(W1, credit=3)
    h.submit("a", "b")
    h.submit("c", after=["a", "b"])
    h.dispatch()
    h.results(W1, ("a", 1, OK))
    h.submit("x")
    h.dispatch()
    h.results(W1, ("x", 1, OK))
    h.tick()
    h.out()
    assert "a" not in h.s.tasks  # memory cap: the oldest result is forgotten
    h.results(W1, ("b", 1, OK))
    h.dispatch()
    h.out()
    assert h.sent_tasks() == [(W1, "c", 1)]


def test_delay_and_after_together(h: Harness) -> None:
    h.hello(W1)
    h.submit("a")
    h.submit("b", after=["a"], delay=10.0)
    h.dispatch()
    h.results(W1, ("a", 1, OK))
    h.dispatch()
    h.out()
    assert h.state("b") is S.PENDING
    h.later(10)
    h.heartbeat(W1)
    h.tick()
    h.dispatch()
    h.out()
    assert h.sent_tasks() == [(W1, "b", 1)]


# --- cancel ----------------------------------------------------------------------------


def test_cancel_queued_is_final_at_once(h: Harness) -> None:
    h.submit("t1")
    h.out()
    h.cancel("t1")
    assert h.out() == [(C, "RESULT", [("t1", S.CANCELLED, "CancelledError")])]
    assert h.s.tasks["t1"].result is not None
    h.hello(W1)
    h.dispatch()
    assert h.out() == [(W1, "WELCOME")]


def test_cancel_pending_and_retrying(h: Harness) -> None:
    h.hello(W1)
    h.submit("p", delay=5.0)
    h.submit("r", retries=1)
    h.dispatch()
    h.results(W1, ("r", 1, ERR))
    h.out()
    h.cancel("p", "r")
    assert h.out() == [(C, "RESULT", [("p", S.CANCELLED, "CancelledError"),
                                      ("r", S.CANCELLED, "CancelledError")])]
    h.later(10)
    h.tick()
    h.dispatch()
    assert h.out() == []


def test_cancel_running_asks_the_worker(h: Harness) -> None:
    h.hello(W1)
    h.submit("t1")
    h.dispatch()
    h.out()
    h.cancel("t1", rid=C2)
    assert h.out() == [(W1, "CANCEL", ["t1"])]
    assert h.state("t1") is S.RUNNING
    h.cancel("t1", rid=C2)  # asked again: CANCEL is not repeated
    assert h.out() == []
    h.results(W1, ("t1", 1, CANC))
    out = h.out()
    assert sorted(out) == sorted([(C, "RESULT", [("t1", S.CANCELLED, "CancelledError")]),
                                  (C2, "RESULT", [("t1", S.CANCELLED, "CancelledError")]),
                                  (W1, "ACK", ["t1"])])


def test_cancel_running_loses_the_race_to_a_result(h: Harness) -> None:
    h.hello(W1)
    h.submit("t1")
    h.dispatch()
    h.cancel("t1")
    h.out()
    h.results(W1, ("t1", 1, OK))
    assert h.out() == [(C, "RESULT", [ok("t1")]), (W1, "ACK", ["t1"])]
    assert not h.s.cancelling


def test_cancel_running_then_an_error_does_not_retry(h: Harness) -> None:
    h.hello(W1)
    h.submit("t1", retries=3)
    h.dispatch()
    h.cancel("t1")
    h.out()
    h.results(W1, ("t1", 1, ERR))  # it failed before the CANCEL reached it
    assert h.out() == [(C, "RESULT", [("t1", S.CANCELLED, "CancelledError")]),
                       (W1, "ACK", ["t1"])]


def test_cancelled_outcome_without_a_cancel_reruns_the_task(h: Harness) -> None:
    h.hello(W1)
    h.submit("t1")
    h.dispatch()
    h.out()
    h.results(W1, ("t1", 1, CANC))  # the worker stopped it on its own (shutting down)
    assert h.state("t1") is S.QUEUED
    h.dispatch()
    assert h.out() == [(W1, "ACK", ["t1"]), (W1, "TASK", ["t1"])]


def test_cancel_running_task_handed_back_or_lost(h: Harness) -> None:
    h.hello(W1, credit=2)
    h.submit("t1", "t2")
    h.dispatch()
    h.cancel("t1", "t2")
    h.out()
    h.credit(W1, 0, returned=("t1",))
    assert h.out() == [(C, "RESULT", [("t1", S.CANCELLED, "CancelledError")])]
    h.later(3.5)
    h.tick()
    assert h.out() == [(C, "RESULT", [("t2", S.CANCELLED, "CancelledError")])]


def test_cancel_unknown_is_rejected_and_final_is_ignored(h: Harness) -> None:
    h.hello(W1)
    h.submit("t1")
    h.dispatch()
    h.results(W1, ("t1", 1, OK))
    h.out()
    h.cancel("ghost", "t1")
    assert h.out() == [(C, "REJECTED", ["ghost"])]
    assert h.state("t1") is S.SUCCEEDED


def test_cancel_then_retry_is_leased_once(h: Harness) -> None:
    h.submit("t1")
    h.cancel("t1")
    queries.retry(h.s, "t1")  # its first ready-queue entry is still there
    h.hello(W1, credit=3)
    h.dispatch()
    h.out()
    assert h.sent_tasks() == [(W1, "t1", 1)]


# --- key dedup, resubmit, watch --------------------------------------------------------


def test_same_key_is_the_same_task(h: Harness) -> None:
    h.submit("t1", key="k")
    h.submit("t2", key="k", rid=C2)
    assert h.out() == [(C, "ACCEPTED", ["t1"]), (C2, "ACCEPTED", ["t2"], {"t2": "t1"})]
    assert "t2" not in h.s.tasks
    h.hello(W1)
    h.dispatch()
    assert h.out() == [(W1, "WELCOME"), (W1, "TASK", ["t1"])]
    h.results(W1, ("t1", 1, OK))
    assert h.out() == [(C, "RESULT", [ok("t1")]), (C2, "RESULT", [ok("t1")]),
                       (W1, "ACK", ["t1"])]
    h.submit("t3", key="k")  # the task with the key still exists (finished)
    assert h.out() == [(C, "ACCEPTED", ["t3"], {"t3": "t1"}), (C, "RESULT", [ok("t1")])]


def test_resubmitting_an_id_changes_nothing(h: Harness) -> None:
    h.hello(W1)
    h.submit("t1")
    h.submit("t1")
    h.dispatch()
    assert h.out() == [(W1, "WELCOME"), (W1, "TASK", ["t1"]), (C, "ACCEPTED", ["t1", "t1"])]
    h.submit("t1")
    h.dispatch()
    assert h.out() == [(C, "ACCEPTED", ["t1"])]
    assert len(h.s.tasks) == 1 and h.s.counts[S.RUNNING] == 1
    h.results(W1, ("t1", 1, OK))
    h.out()
    h.submit("t1")  # finished: acknowledged again and answered with its result
    assert h.out() == [(C, "ACCEPTED", ["t1"]), (C, "RESULT", [ok("t1")])]


def test_watch(h: Harness) -> None:
    h.hello(W1)
    h.submit("t1", "t2")
    h.dispatch()
    h.results(W1, ("t1", 1, OK))
    h.out()
    h.watch("t1", "t2", "ghost", rid=C2)
    assert h.out() == [(C2, "REJECTED", ["ghost"]), (C2, "RESULT", [ok("t1")])]
    h.watch("t2", rid=C2)  # watching twice still gives one result
    h.results(W1, ("t2", 1, OK))
    assert h.out() == [(C, "RESULT", [ok("t2")]), (C2, "RESULT", [ok("t2")]),
                       (W1, "ACK", ["t2"])]


def test_partial_and_progress_reach_watchers(h: Harness) -> None:
    h.hello(W1)
    h.submit("t1")
    h.dispatch()
    h.watch("t1", rid=C2)
    h.out()
    w = h.s.touch_worker(W1)
    h.s.on_partial(w, [("t1", 1, 0, b"chunk")])
    h.s.on_progress(w, [("t1", 1, 1.0, 4.0)])
    assert h.out() == [(C, "PARTIAL", [("t1", 1, 0, b"chunk")]),
                       (C, "PROGRESS", [("t1", 1, 1.0, 4.0)]),
                       (C2, "PARTIAL", [("t1", 1, 0, b"chunk")]),
                       (C2, "PROGRESS", [("t1", 1, 1.0, 4.0)])]
    h.watch("t1", rid=b"late")
    assert h.out() == [(b"late", "PROGRESS", [("t1", 1, 1.0, 4.0)])]


# --- back-pressure and rate limits -----------------------------------------------------


def test_over_max_queued_is_busy() -> None:
    h = make(max_queued=2)
    h.submit("t1", "t2", "t3", "t4")
    assert h.out() == [(C, "ACCEPTED", ["t1", "t2"]), (C, "BUSY", ["t3", "t4"])]
    assert set(h.s.tasks) == {"t1", "t2"}
    h.hello(W1, credit=1)
    h.dispatch()  # one leaves the queue: room for one more
    h.submit("t3", "t4")
    assert h.out() == [(W1, "WELCOME"), (W1, "TASK", ["t1"]), (C, "ACCEPTED", ["t3"]),
                       (C, "BUSY", ["t4"])]


def lease_times(h: Harness, seconds: float, step: float = 0.05,
                workers: tuple[bytes, ...] = (W1,)) -> list[float]:
    """Run the clock until `seconds` from now in small steps; the time of every lease."""
    times: list[float] = []
    elapsed = 0.0
    for _ in range(round(seconds / step) + 1):
        h.dispatch()
        h.out()
        times += [round(elapsed, 6)] * len(h.sent_tasks())
        h.later(step)
        elapsed += step
        for w in workers:
            h.heartbeat(w)
        h.tick()
    return times


def test_rate_limit_per_task_name(h: Harness) -> None:
    """rate_limit="2/s": the k-th start of the name happens half a second after the one
    before, neither sooner (the limit) nor later (the limit is the only brake); other
    names are not limited."""
    h.hello(W1, credit=100)
    h.submit(*[f"t{i}" for i in range(30)], rate_limit="2/s")
    h.submit("free", name="other")
    h.dispatch()
    h.out()
    assert [tid for _, tid, _ in h.sent_tasks()] == ["t0", "free"]  # one token to start
    times = lease_times(h, 5.0)
    assert times == pytest.approx([0.5 * k for k in range(1, 11)], abs=0.051)


def test_rate_limit_bucket_holds_one_seconds_worth() -> None:
    """After an idle spell the bucket is full: 4/s lets a burst of 4 start at once,
    then one each quarter of a second."""
    h = make()
    h.hello(W1, credit=100)
    h.submit("warm", rate_limit="4/s")
    h.dispatch()
    h.later(5.0)
    h.heartbeat(W1)
    h.tick()
    h.out()
    h.submit(*[f"t{i}" for i in range(8)], rate_limit="4/s")
    times = lease_times(h, 1.5)
    assert times == pytest.approx([0, 0, 0, 0, 0.25, 0.5, 0.75, 1.0], abs=0.051)


# --- restore ---------------------------------------------------------------------------


def _records() -> list[TaskRecord]:
    return [
        TaskRecord("q", "job", b"a", state=S.QUEUED, seq=1),
        TaskRecord("r", "job", b"a", state=S.RUNNING, attempt=1, seq=2),
        TaskRecord("adopt", "job", b"a", state=S.RUNNING, attempt=1, seq=3),
        TaskRecord("done", "job", b"a", state=S.SUCCEEDED, attempt=1, seq=4,
                   result=b"ok:done", updated=T0),
        TaskRecord("eta", "job", b"a", state=S.PENDING, eta=T0 + 10, seq=5),
        TaskRecord("retry", "job", b"a", state=S.RETRYING, attempt=1, retries=2, seq=6),
    ]


def test_restore_holds_running_and_queued_for_one_liveness_window() -> None:
    h = make(durable=True)
    assert h.s.restore(_records()) == 6
    h.s.validate()
    h.hello(W1, credit=5, running=("adopt",))
    h.tick()
    h.dispatch()
    # held: only the retrying task (due now) goes out; "adopt" is not sent again
    assert h.out() == [(W1, "WELCOME"), (W1, "TASK", ["retry"])]
    assert h.s.lease["adopt"] == W1 and h.attempt("adopt") == 1
    assert h.sent_tasks() == [(W1, "retry", 2)]
    h.watch("done")
    assert h.out() == [(C, "RESULT", [ok("done")])]
    assert h.s.tasks["done"].payload == b"" and h.s.tasks["q"].payload == b"a"
    h.later(3.0)
    h.heartbeat(W1)
    h.tick()
    h.dispatch()
    assert h.out() == [(W1, "TASK", ["q", "r"])]
    assert sorted(h.sent_tasks()) == [(W1, "q", 1), (W1, "r", 2)]
    h.later(7)
    h.heartbeat(W1)
    h.tick()
    h.dispatch()
    assert h.out() == [(W1, "TASK", ["eta"])]


def _dispatch_past_the_hold(h: Harness) -> None:
    """W1 registers, the window that holds restored tasks for their old workers ends,
    and what is free is dispatched to W1."""
    h.hello(W1, credit=5)
    h.later(3.5)
    h.heartbeat(W1)
    h.tick()
    h.dispatch()
    h.out()


def test_restore_then_cancel_and_retry_during_the_hold() -> None:
    h = make()
    h.s.restore(_records())
    h.cancel("q")
    queries.retry(h.s, "q")
    _dispatch_past_the_hold(h)
    assert [tid for _, tid, _ in h.sent_tasks()].count("q") == 1


def test_restore_pending_after_a_dependency() -> None:
    h = make()
    h.s.restore([
        TaskRecord("child", "job", b"", state=S.PENDING, after=["parent"], seq=2),
        TaskRecord("parent", "job", b"", state=S.QUEUED, seq=1),
    ])
    _dispatch_past_the_hold(h)
    assert h.sent_tasks() == [(W1, "parent", 1)]
    h.results(W1, ("parent", 1, OK))
    h.dispatch()
    h.out()
    assert h.sent_tasks() == [(W1, "child", 1)]


# --- expiry and durability -----------------------------------------------------------------


def _expiring_at(h: Harness, *seconds: float) -> list[list[str]]:
    """The ids deleted at each of these times from now (results expire strictly by their
    own ttl: docs/TASKS.md)."""
    deleted, start = [], h.wall
    for at in seconds:
        h.later(start + at - h.wall)
        h.heartbeat(W1)
        h.tick()
        h.out()
        deleted.append(sorted(h.last.deletes))
    return deleted


def test_result_expires_after_ttl() -> None:
    h = make(durable=True, result_ttl=10.0)
    h.hello(W1, credit=3)
    h.submit("t1")
    h.submit("short", result_ttl=1.0)
    h.dispatch()
    h.results(W1, ("t1", 1, OK), ("short", 1, OK))
    h.out()
    # "short" expires after its own 1 s, not behind the older t1 (first in, first out)
    assert _expiring_at(h, 0.99, 1.0, 9.99, 10.0) == [[], ["short"], [], ["t1"]]
    assert not h.s.tasks
    h.watch("t1", "short")
    assert h.out() == [(C, "REJECTED", ["t1", "short"])]


def test_a_long_result_ttl_holds_no_shorter_one_back() -> None:
    h = make(durable=True, result_ttl=10.0)
    h.hello(W1, credit=3)
    h.submit("long", result_ttl=100.0)
    h.submit("plain")
    h.dispatch()
    h.results(W1, ("long", 1, OK))
    h.later(5)
    h.results(W1, ("plain", 1, OK))
    h.out()
    assert _expiring_at(h, 9.99, 10.0, 94.99, 95.0) == [[], ["plain"], [], ["long"]]


def test_restored_results_expire_by_when_they_finished_not_by_submission() -> None:
    h = make(durable=True, result_ttl=10.0)
    h.s.restore([
        TaskRecord("first-in", "job", b"", state=S.SUCCEEDED, seq=1, result=b"ok:first-in",
                   updated=T0 - 2),  # finished last
        TaskRecord("second-in", "job", b"", state=S.SUCCEEDED, seq=2, result=b"ok:second-in",
                   updated=T0 - 8),
        TaskRecord("own", "job", b"", state=S.FAILED, seq=3, result_ttl=3.0,
                   result=serde.encode_error("ValueError", "x"), updated=T0 - 1),
    ])
    h.hello(W1)
    assert _expiring_at(h, 1.99, 2.0, 7.99, 8.0) == [[], ["own", "second-in"], [],
                                                      ["first-in"]]


def test_max_finished_caps_memory_not_the_store() -> None:
    h = make(durable=True, max_finished=2)
    h.hello(W1, credit=3)
    h.submit("a", "b", "c")
    h.dispatch()
    h.results(W1, ("a", 1, OK), ("b", 1, OK), ("c", 1, OK))
    h.tick()
    h.out()
    assert set(h.s.tasks) == {"b", "c"} and h.last.deletes == []
    recovery.adopt_loaded(h.s, TaskRecord("a", "job", b"", state=S.SUCCEEDED, result=b"ok:a"))
    h.watch("a")
    assert h.out() == [(C, "RESULT", [ok("a")])]


def test_durable_saves_changed_tasks() -> None:
    h = make(durable=True)
    h.submit("t1")
    h.out()
    assert [t.id for t in h.last.saves] == ["t1"]
    h.hello(W1)
    h.dispatch()
    h.results(W1, ("t1", 1, OK))
    h.out()
    # saved before: only what changes is written (an update), not the whole row again
    assert h.last.saves == []
    assert [(t.id, t.state) for t in h.last.updates] == [("t1", S.SUCCEEDED)]
    h.out()
    assert h.last.saves == [] and h.last.updates == []


def test_not_durable_never_saves(h: Harness) -> None:
    h.hello(W1)
    h.submit("t1", "t2", retries=1)
    h.dispatch()
    h.results(W1, ("t1", 1, OK), ("t2", 1, ERR))
    h.later(5)
    h.tick()
    h.out()
    assert h.last.saves == [] and h.last.deletes == []


# --- retry, purge, list_tasks, status -------------------------------------------------------


def test_retry_by_hand(h: Harness) -> None:
    h.hello(W1)
    h.submit("t1")
    h.dispatch()
    h.results(W1, ("t1", 1, FATAL))
    h.out()
    assert queries.retry(h.s, "t1")["state"] == "queued"
    h.dispatch()
    h.out()
    assert h.sent_tasks() == [(W1, "t1", 1)]
    with pytest.raises(ValueError):
        queries.retry(h.s, "t1")  # running
    with pytest.raises(LookupError):
        queries.retry(h.s, "ghost")


def test_purge(h: Harness) -> None:
    h.hello(W1, credit=3)
    h.submit("a", "b", "c")
    h.dispatch()
    h.results(W1, ("a", 1, OK), ("b", 1, FATAL))
    h.later(60)
    h.submit("d")
    h.dispatch()
    h.results(W1, ("d", 1, OK))
    h.out()
    assert queries.purge(h.s, "succeeded", older_than=30) == 1
    h.out()
    assert h.last.deletes == ["a"] and set(h.s.tasks) == {"b", "c", "d"}
    with pytest.raises(ValueError):
        queries.purge(h.s, "running", 0)
    with pytest.raises(ValueError):
        queries.purge(h.s, "nonsense", 0)


def test_list_tasks(h: Harness) -> None:
    h.submit("a", queue="x")
    h.submit("b", name="other")
    h.submit("c")
    assert [t["id"] for t in queries.list_tasks(h.s)] == ["c", "b", "a"]
    assert [t["id"] for t in queries.list_tasks(h.s, queue="x")] == ["a"]
    assert [t["id"] for t in queries.list_tasks(h.s, name="other")] == ["b"]
    assert [t["id"] for t in queries.list_tasks(h.s, state="queued", limit=2)] == ["c", "b"]
    assert queries.list_tasks(h.s, state="running") == []
    row = queries.list_tasks(h.s, name="other")[0]
    assert row["state"] == "queued" and row["attempt"] == 0 and row["error"] is None
    with pytest.raises(ValueError):
        queries.list_tasks(h.s, state="nonsense")


def test_status(h: Harness) -> None:
    h.hello(W1, credit=1)
    h.submit("a", "b")
    h.dispatch()
    h.later(1)
    h.results(W1, ("a", 1, OK))
    h.later(1)
    st = queries.status(h.s)
    assert st["master_id"] == "m-test"
    assert st["queues"] == {"default": 1}
    assert st["counts"]["succeeded"] == 1 and st["counts"]["queued"] == 1
    assert [w["name"] for w in st["workers"]] == ["w1"]
    assert st["workers"][0]["running"] == 0
    assert st["throughput"] == pytest.approx(0.1)
