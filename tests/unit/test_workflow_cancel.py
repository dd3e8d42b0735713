"""Cancelling a workflow upstream (issue 17): the QUERY cancel_inputs, which the client
sends with the CANCEL of a workflow's final task, cancels what that task takes results
from, transitively, that has not started and that no other unfinished task needs. What
follows a cancelled task is cancelled by the existing rules (downstream); this is the way
up. Driven through the MasterCore harness, which validates the core after every step."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_master_core import OK, W1, C, Harness, S, make
from zq.core import messages as m
from zq.core.access import Caller

ADMIN = Caller(C)


def ask(h: Harness, *ids: Any, caller: Caller = ADMIN) -> tuple[bool, Any]:
    h.s.on_query(caller, 7, "cancel_inputs", {"ids": list(ids)})
    h.s.validate()
    replies = [msg for _, msg in h.s.flush().messages if isinstance(msg, m.Reply)]
    assert len(replies) == 1 and replies[0].request_id == 7, replies
    return replies[0].ok, replies[0].body


def chain(h: Harness, *ids: str) -> None:
    """A chain: each task takes the one before it as its input."""
    h.submit(ids[0])
    for before, tid in zip(ids, ids[1:]):
        h.submit(tid, inputs=[before])


def test_cancelling_a_chains_last_step_cancels_the_steps_not_started() -> None:
    h = make()
    h.hello(W1, credit=1)
    chain(h, "a", "b", "c", "d")
    h.dispatch()  # a runs; b, c, d are held
    assert h.state("a") is S.RUNNING
    h.cancel("d")
    ok, body = ask(h, "d")
    assert ok and body == {"cancelled": ["c", "b"], "refused": []}
    assert [h.state(t) for t in "abcd"] == [S.RUNNING, S.CANCELLED, S.CANCELLED,
                                            S.CANCELLED]
    # The running first step is left to finish; its result is wanted by nobody now.
    h.results(W1, ("a", 1, OK))
    assert h.state("a") is S.SUCCEEDED and h.s.kept == {}


def test_without_it_only_what_follows_is_cancelled() -> None:
    """The old behaviour, which cancel_inputs adds to: CANCEL of the last step alone
    leaves the steps before it to run."""
    h = make()
    h.hello(W1, credit=1)
    chain(h, "a", "b", "c")
    h.dispatch()
    h.cancel("c")
    assert [h.state(t) for t in "abc"] == [S.RUNNING, S.PENDING, S.CANCELLED]


def test_a_chords_callback_cancels_its_members_not_started() -> None:
    h = make()
    h.hello(W1, credit=2)
    members = [f"m{i}" for i in range(50)]
    h.submit(*members)
    h.submit("cb", inputs=members)
    h.dispatch()  # two members leased to the worker
    running = {t for t in members if h.state(t) is S.RUNNING}
    assert len(running) == 2
    h.results(W1, *((t, 1, OK) for t in sorted(running)[:1]))  # one of them succeeds
    ok, body = ask(h, "cb")  # the query first, the CANCEL after: the same end
    h.cancel("cb")
    assert ok and sorted(body["cancelled"]) == sorted(set(members) - running)
    assert h.state("cb") is S.CANCELLED
    assert {t for t in members if h.state(t) is S.CANCELLED} == set(members) - running


def test_an_input_another_live_task_takes_is_kept() -> None:
    h = make()
    shared_by_two = ["a"]
    h.submit("a", "x")
    h.submit("b", inputs=shared_by_two + ["x"])
    h.submit("other", inputs=["a"])  # another workflow takes a too
    h.submit("later", after=["x"])  # and a plain after= task waits on x
    h.cancel("b")
    ok, body = ask(h, "b")
    assert ok and body["cancelled"] == []
    assert h.state("a") is S.QUEUED and h.state("x") is S.QUEUED
    assert h.state("other") is S.PENDING and h.state("later") is S.PENDING


@pytest.mark.parametrize("b_waits_by", ["inputs", "after"])
def test_a_diamond_is_cancelled_whatever_the_walk_order(b_waits_by: str) -> None:
    """top takes a and b; b takes a (as an input, or runs after it). Looking at a from
    top first, b still needs it; once b goes, nothing live needs a, whichever of top's
    inputs is looked at first."""
    for inputs in (["a", "b"], ["b", "a"]):
        h = make()
        h.submit("a")
        h.submit("b", **{b_waits_by: ["a"]})
        h.submit("top", inputs=inputs)
        h.cancel("top")
        ok, body = ask(h, "top")
        assert ok and sorted(body["cancelled"]) == ["a", "b"], inputs
        assert h.state("a") is S.CANCELLED and h.state("b") is S.CANCELLED


def test_a_group_of_chains_named_together() -> None:
    h = make()
    chain(h, "a1", "a2")
    chain(h, "b1", "b2")
    h.submit("both", inputs=["a1"])  # a1 is also taken by a task outside the group
    h.cancel("a2", "b2")
    ok, body = ask(h, "a2", "b2")
    assert ok and body["cancelled"] == ["b1"]
    assert h.state("a1") is S.QUEUED and h.state("b1") is S.CANCELLED


def test_another_clients_tasks_upstream_are_left_alone_with_keys() -> None:
    h = make()
    h.s.on_submit(C, [("a", "job", b"args", {})], Caller(C, key="alice", admin=False))
    h.s.on_submit(C, [("b", "job", b"args", {"inputs": ["a"]})],
                  Caller(C, key="bob", admin=False))
    h.s.validate()
    ok, body = ask(h, "b", caller=Caller(C, key="bob", admin=False))
    assert ok and body["cancelled"] == [] and h.state("a") is S.QUEUED
    ok, body = ask(h, "b", caller=Caller(C, key="alice", admin=False))
    assert ok and body["cancelled"] == ["a"]


def test_each_entry_is_checked_alone_and_the_list_bounded() -> None:
    h = make()
    chain(h, "a", "b")
    ok, body = ask(h, 7, "", "x" * 200, "b", "unknown")
    assert ok and body["cancelled"] == ["a"]
    assert [i for i, _ in body["refused"]] == [0, 1, 2]
    ok, why = ask(h)
    assert not ok and "ids must hold 1 to 10000" in why
    h.s.on_query(ADMIN, 8, "cancel_inputs", {"ids": "b"})
    replies = [msg for _, msg in h.s.flush().messages if isinstance(msg, m.Reply)]
    assert not replies[0].ok and "must be an array" in replies[0].body


def test_an_input_restored_after_a_restart_may_still_run_and_is_kept() -> None:
    """After a master restart a task that was leased is queued again but held: its
    worker may still be running it (as cancel_unstarted decides, zq.core.cancels)."""
    from tests.unit.test_cancel_unstarted import Master
    before = Master()
    before.hello(W1, concurrency=1, credit=3)
    before.submit("a", "x")
    before.submit("top", inputs=["x"])
    before.lease()  # a runs, x waits in w1's queue
    master = Master()
    master.core.restore(list(before.core.tasks.values()))
    assert master.state("x") == "queued"
    master.core.on_query(ADMIN, 7, "cancel_inputs", {"ids": ["top"]})
    master.core.validate()
    replies = [msg for _, msg in master.flush() if isinstance(msg, m.Reply)]
    assert replies[0].ok and replies[0].body["cancelled"] == []
    assert master.state("x") == "queued"
