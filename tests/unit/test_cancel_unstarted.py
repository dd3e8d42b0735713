"""Cancel unless started (protocol 1.5, QUERY `cancel_unstarted`, zq.core.cancels): a
task not started is cancelled at once and the asker is told so per id; a started one is
left to run and answered "running"; the master's record decides the race with a
STARTED in flight, and the answer always matches how the task ends. Every entry is
checked alone: a bad one is refused with its index and reason, the rest applied."""

from __future__ import annotations

from typing import Any

import pytest

from zq.core import messages as m
from zq.core.access import Caller
from zq.core.master_core import MasterCore
from zq.core.messages import Outcome

T0 = 1_000_000.0
C, OTHER, W1, W2 = b"client", b"other", b"w1", b"w2"
SESSIONS = {W1: "a" * 32, W2: "b" * 32}


class Master:
    def __init__(self) -> None:
        self.core = MasterCore(master_id="m")
        self.core.advance(0.0, T0)

    def flush(self) -> list[tuple[bytes, m.Message]]:
        return self.core.flush().messages

    def hello(self, rid: bytes, *, starts: bool = True, concurrency: int = 1,
              credit: int = 3, running: list[str] | None = None) -> None:
        self.core.on_hello(rid, m.Hello(rid.decode(), "h", 1, ["default"], concurrency,
                                        "thread", credit, running or [], SESSIONS[rid], {},
                                        started=starts))
        self.flush()

    def submit(self, *ids: str, caller: Caller | None = None, **opts: Any) -> None:
        self.core.on_submit(C, [(tid, "app:f", b"\x92\x90\x80", dict(opts)) for tid in ids],
                            caller)
        self.flush()

    def lease(self) -> None:
        self.core.dispatch()
        self.flush()
        self.core.validate()

    def ask(self, ids: Any, caller: Caller | None = None,
            ) -> tuple[dict[str, Any], list[tuple[bytes, m.Message]]]:
        """One cancel_unstarted QUERY: its REPLY body (ok) and everything else sent."""
        self.core.on_query(caller or Caller(C), 5, "cancel_unstarted", {"ids": ids})
        self.core.validate()
        out = self.flush()
        replies = [msg for _, msg in out if isinstance(msg, m.Reply)]
        assert len(replies) == 1 and replies[0].ok, replies
        return replies[0].body, [(r, msg) for r, msg in out if not isinstance(msg, m.Reply)]

    def result(self, rid: bytes, tid: str, outcome: Outcome, payload: bytes = b"") -> None:
        w = self.core.touch_worker(rid)
        assert w is not None
        self.core.on_worker_results(w, [(tid, 1, int(outcome), payload)])
        self.core.validate()

    def state(self, tid: str) -> str:
        return self.core.tasks[tid].state.label


def cancels_to(out: list[tuple[bytes, m.Message]], rid: bytes) -> list[str]:
    return [i for r, msg in out if r == rid and isinstance(msg, m.Cancel) for i in msg.ids]


def results_to(out: list[tuple[bytes, m.Message]], rid: bytes) -> list[tuple[str, int]]:
    return [(e[0], e[1]) for r, msg in out if r == rid and isinstance(msg, m.Result)
            for e in msg.entries]


def test_queued_and_prefetched_tasks_cancel_the_running_one_does_not() -> None:
    master = Master()
    master.hello(W1, concurrency=1, credit=3)
    master.submit("a", "b", "c", "q")
    master.lease()  # a runs (idle slot), b and c wait in w1's queue, q stays queued
    body, out = master.ask(["a", "b", "c", "q"])
    assert body == {"cancelled": ["b", "c", "q"], "kept": {"a": "running"}, "refused": []}
    assert [master.state(t) for t in "abcq"] == ["running", "cancelled", "cancelled",
                                                 "cancelled"]
    assert cancels_to(out, W1) == ["b", "c"]  # w1 drops them from its queue
    assert results_to(out, C) == [("b", 5), ("c", 5), ("q", 5)]  # before the REPLY
    w = master.core.workers[W1]
    assert w.leased == {"a"}  # their slots are free at once
    assert master.core.tasks["b"].started is None


def test_a_worker_answering_the_cancel_changes_nothing_more() -> None:
    master = Master()
    master.hello(W1, concurrency=1, credit=3)
    master.submit("a", "b")
    master.lease()
    master.ask(["b"])
    master.result(W1, "b", Outcome.CANCELLED)  # w1 dropped it from its queue
    assert master.state("b") == "cancelled"
    acks = [msg for r, msg in master.flush() if r == W1 and isinstance(msg, m.Ack)]
    assert acks == [m.Ack(["b"])]


def test_the_race_a_start_in_flight_is_decided_for_the_cancel() -> None:
    """w1 began b just as the request came: its STARTED arrives after the master
    cancelled b, then its result. The task ends cancelled, as the answer said."""
    master = Master()
    master.hello(W1, concurrency=2, credit=4)
    master.submit("a1", "a2", "b")
    master.lease()
    body, _ = master.ask(["b"])
    assert body["cancelled"] == ["b"]
    w = master.core.touch_worker(W1)
    assert w is not None
    master.core.on_started(w, [("b", 1)])  # late: changes nothing
    master.result(W1, "b", Outcome.OK, b"\x01")  # it ran to its end before the CANCEL
    b = master.core.tasks["b"]
    assert b.state.label == "cancelled" and b.started is None
    assert master.core.ignored_results == 0  # a duplicate of a final task: acknowledged


def test_a_start_reported_first_keeps_the_task_running() -> None:
    master = Master()
    master.hello(W1, concurrency=1, credit=3)
    master.submit("a", "b")
    master.lease()
    master.result(W1, "a", Outcome.OK, b"\x01")
    w = master.core.touch_worker(W1)
    assert w is not None
    master.core.on_started(w, [("b", 1)])
    body, out = master.ask(["b"])
    assert body == {"cancelled": [], "kept": {"b": "running"}, "refused": []}
    assert master.state("b") == "running" and not cancels_to(out, W1)


def test_a_worker_that_does_not_report_starts_runs_what_it_was_given() -> None:
    """A 1.3 worker: a task handed to it counts as started (it may be running)."""
    master = Master()
    master.hello(W1, starts=False, concurrency=1, credit=3)
    master.submit("a", "b")
    master.lease()
    body, _ = master.ask(["a", "b"])
    assert body["kept"] == {"a": "running", "b": "running"} and body["cancelled"] == []


def test_restored_and_adopted_tasks_count_as_started() -> None:
    """After a master restart a task that was leased may still run on a worker that has
    not re-registered; once its worker adopts it, whether it started was told to the
    old master only. Either way it is left to run."""
    before = Master()
    before.hello(W1, concurrency=1, credit=3)
    before.submit("a", "x")
    before.lease()  # a runs, x waits in w1's queue (not started)
    master = Master()
    master.core.restore(list(before.core.tasks.values()))
    body, _ = master.ask(["x"])
    assert body["kept"] == {"x": "running"}  # held: its worker may still run it
    master.hello(W1, concurrency=1, credit=3, running=["a", "x"])
    assert "x" in master.core.workers[W1].adopted
    assert master.core.tasks["x"].started is None
    body, _ = master.ask(["x"])
    assert body["kept"] == {"x": "running"} and master.state("x") == "running"


def test_final_unknown_and_other_keys_tasks_are_answered_not_touched() -> None:
    master = Master()
    mine, theirs = Caller(C, key="k1", admin=False), Caller(C, key="k2", admin=False)
    master.hello(W1, concurrency=2, credit=2)
    master.submit("ok", "bad", caller=mine)
    master.submit("gone", "theirs", caller=theirs)
    master.ask(["gone"], theirs)
    master.lease()
    master.result(W1, "ok", Outcome.OK, b"\x01")
    master.result(W1, "bad", Outcome.FATAL, b"\x80")
    master.flush()
    body, out = master.ask(["ok", "bad", "gone", "theirs", "nope"], mine)
    assert body == {"cancelled": [], "refused": [], "kept": {
        "ok": "succeeded", "bad": "failed", "gone": "denied", "theirs": "denied",
        "nope": "unknown"}}
    assert master.state("theirs") == "queued" and not out
    body, _ = master.ask(["gone", "theirs"], Caller(C))  # an admin's may touch them
    assert body["cancelled"] == ["gone", "theirs"]  # "gone" was cancelled already


def test_a_pending_and_a_retrying_task_cancel_and_what_waits_on_them_follows() -> None:
    master = Master()
    master.hello(W1, concurrency=1, credit=1)
    master.submit("first", retries=2)
    master.submit("later", delay=60.0)
    master.submit("next", after=["first"])
    master.lease()
    master.result(W1, "first", Outcome.ERROR, b"\x80")  # backs off before its retry
    assert master.state("first") == "retrying"
    body, _ = master.ask(["first", "later"])
    assert body["cancelled"] == ["first", "later"]
    assert master.state("next") == "cancelled"  # it ran after a cancelled task


# Each kind of bad input: the whole query refused with a reason, or that entry alone.
BAD_QUERIES = [
    ({}, "needs the argument 'ids'"),
    ({"ids": "a"}, "must be an array"),
    ({"ids": {"a": 1}}, "must be an array"),
    ({"ids": []}, "1 to 10000 task ids, not 0"),
    ({"ids": ["a"] * 10_001}, "1 to 10000 task ids, not 10001"),
    ({"ids": ["a"], "force": True}, "no argument 'force'"),
]


@pytest.mark.parametrize("args, why", BAD_QUERIES)
def test_a_malformed_query_is_refused_whole_and_changes_nothing(args: dict[str, Any],
                                                                why: str) -> None:
    master = Master()
    master.submit("a")
    master.core.on_query(Caller(C), 9, "cancel_unstarted", args)
    master.core.validate()
    (reply,) = [msg for _, msg in master.flush() if isinstance(msg, m.Reply)]
    assert reply.ok is False and why in reply.body, reply.body
    assert master.state("a") == "queued"


@pytest.mark.parametrize("entry, why", [
    (5, "entry #1: a task id must be a non-empty string"),
    (None, "entry #1"),
    ("", "entry #1"),
    ("x" * 129, "at most 128 characters"),
    (["a"], "entry #1"),
    (b"a", "entry #1"),
    ({"id": "a"}, "entry #1"),
    (True, "entry #1"),
])
def test_a_bad_entry_is_refused_alone_and_the_rest_applies(entry: Any, why: str) -> None:
    master = Master()
    master.submit("a", "b")
    body, _ = master.ask(["a", entry, "b", "a"])  # "a" twice: answered once
    assert body["cancelled"] == ["a", "b"] and body["kept"] == {}
    (refused,) = body["refused"]
    assert refused[0] == 1 and why in refused[1], refused


def test_ten_thousand_ids_in_one_query() -> None:
    master = Master()
    ids = [f"t{i}" for i in range(10_000)]
    master.submit(*ids)
    body, out = master.ask(ids)
    assert len(body["cancelled"]) == 10_000 and master.core.counts[m.State.CANCELLED] == 10_000
    assert len(results_to(out, C)) == 10_000
