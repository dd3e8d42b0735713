"""Promises of docs/TASKS.md and docs/PROTOCOL.md that no other test checked, one test
each, on the master core with a fake clock (see tests/unit/test_master_core.py)."""

from __future__ import annotations

import pytest

from tests.unit.test_master_core import C2, CANC, OK, W1, W2, C, S, lease_times, make, ok

CANCELLED = "CancelledError"


# --- rate limits ---------------------------------------------------------------------------

def test_the_latest_rate_limit_given_for_a_name_applies() -> None:
    h = make()
    h.hello(W1, credit=200)
    h.submit(*[f"a{i}" for i in range(100)], rate_limit="1/s")
    h.dispatch()
    assert lease_times(h, 4.0) == pytest.approx([0, 1, 2, 3, 4], abs=0.051)
    h.submit("b0", rate_limit="4/s")  # from now on 4/s, for every task of the name
    assert len(lease_times(h, 4.0)) == 16  # a full bucket of 4, then one every 0.25 s
    h.submit("c0")  # no rate_limit given: the name keeps its latest limit
    assert len(lease_times(h, 4.0)) == 16


# Periods that are exact in binary floating point, so the fake clock hits each tick.
@pytest.mark.parametrize("spec, every", [("30/m", 2.0), ("240/m", 0.25), ("5/h", 720.0),
                                         ("3600/h", 1.0)])
def test_rate_limit_per_minute_and_per_hour(spec: str, every: float) -> None:
    h = make()
    h.hello(W1, credit=100)
    h.submit(*[f"t{i}" for i in range(4)], rate_limit=spec)
    step = every / 16
    assert lease_times(h, 3 * every, step=step) == pytest.approx(
        [0, every, 2 * every, 3 * every], abs=step / 2)


@pytest.mark.parametrize("spec", ["100", "100/d", "x/s", "0/s", "-3/s", "", "/s", "1/",
                                  "nan/s", "inf/s", "1e400/m"])
def test_a_malformed_rate_limit_is_rejected_and_changes_nothing(spec: str) -> None:
    h = make()
    h.hello(W1, credit=100)
    h.submit("first", rate_limit="1/s")
    h.submit("bad", rate_limit=spec)
    assert h.out() == [(W1, "WELCOME"), (C, "ACCEPTED", ["first"]), (C, "REJECTED", ["bad"])]
    reason = h.last.messages[-1][1].entries[0][1]
    assert "rate limit" in reason and "'100/s', '20/m' or '5/h'" in reason
    assert "bad" not in h.s.tasks
    h.dispatch()
    h.submit("second", "third")  # still 1/s for the name
    assert lease_times(h, 2.0) == pytest.approx([0, 1, 2], abs=0.051)


def test_one_rate_limit_over_several_workers() -> None:
    h = make()
    h.hello(W1, credit=50)
    h.hello(W2, credit=50)
    h.submit(*[f"t{i}" for i in range(12)], rate_limit="2/s")
    h.dispatch()
    h.out()
    workers = {rid for rid, _, _ in h.sent_tasks()}
    leases: list[tuple[float, bytes]] = []
    for step in range(1, 101):  # 5 s
        h.later(0.05)
        h.heartbeat(W1)
        h.heartbeat(W2)
        h.tick()
        h.dispatch()
        h.out()
        leases += [(round(step * 0.05, 6), rid) for rid, _, _ in h.sent_tasks()]
    assert [t for t, _ in leases] == pytest.approx([0.5 * k for k in range(1, 11)], abs=0.051)
    workers |= {rid for _, rid in leases}
    assert workers == {W1, W2}  # both took some: the limit is not per worker


# --- after= ----------------------------------------------------------------------------------

def test_a_cancelled_dependency_cancels_its_dependents() -> None:
    """docs/TASKS.md: cancelled if one of the tasks it runs after ends failed, dead or
    cancelled. Cancelling a queued parent cancels the child, and the child's child."""
    h = make()
    h.submit("parent")
    h.submit("child", after=["parent"], rid=C2)
    h.submit("grandchild", after=["child"], rid=C2)
    h.out()
    h.cancel("parent")
    assert h.out() == [(C, "RESULT", [("parent", S.CANCELLED, CANCELLED)]),
                       (C2, "RESULT", [("child", S.CANCELLED, CANCELLED),
                                       ("grandchild", S.CANCELLED, CANCELLED)])]
    h.hello(W1, credit=5)
    h.dispatch()
    assert h.out() == [(W1, "WELCOME")]  # nothing left to run


def test_a_dependency_cancelled_while_running_cancels_its_dependents() -> None:
    h = make()
    h.hello(W1)
    h.submit("parent")
    h.submit("child", after=["parent"], rid=C2)
    h.dispatch()
    h.out()
    h.cancel("parent")
    assert h.out() == [(W1, "CANCEL", ["parent"])]
    assert h.state("child") is S.PENDING  # the parent may still finish first
    h.results(W1, ("parent", 1, CANC))
    assert h.out() == [(C, "RESULT", [("parent", S.CANCELLED, CANCELLED)]),
                       (C2, "RESULT", [("child", S.CANCELLED, CANCELLED)]),
                       (W1, "ACK", ["parent"])]


def test_a_dependency_that_wins_the_race_to_cancel_lets_its_dependents_run() -> None:
    h = make()
    h.hello(W1)
    h.submit("parent")
    h.submit("child", after=["parent"])
    h.dispatch()
    h.out()
    h.cancel("parent")
    assert h.out() == [(W1, "CANCEL", ["parent"])]
    h.results(W1, ("parent", 1, OK))  # it finished before the CANCEL reached the worker
    h.dispatch()
    assert h.out() == [(C, "RESULT", [ok("parent")]), (W1, "ACK", ["parent"]),
                       (W1, "TASK", ["child"])]


# --- key deduplication -------------------------------------------------------------------------

def test_key_deduplication_ends_when_the_result_expires() -> None:
    """docs/TASKS.md: while a task with this key exists (until its result expires)."""
    h = make(durable=True, result_ttl=60.0)
    h.hello(W1)
    h.submit("t1", key="invoice-42")
    h.dispatch()
    h.results(W1, ("t1", 1, OK))
    h.out()
    h.later(59.0)
    h.heartbeat(W1)
    h.tick()
    h.submit("t2", key="invoice-42")  # t1's result is still kept: t2 is t1
    assert h.out() == [(C, "ACCEPTED", ["t2"], {"t2": "t1"}), (C, "RESULT", [ok("t1")])]
    h.later(1.0)
    h.heartbeat(W1)
    h.tick()
    h.out()
    assert h.last.deletes == ["t1"]
    h.submit("t3", key="invoice-42")  # expired: the key makes a new task
    h.dispatch()
    assert h.out() == [(C, "ACCEPTED", ["t3"]), (W1, "TASK", ["t3"])]
    assert h.s.keys == {"invoice-42": "t3"}


def test_key_deduplication_ends_when_a_short_result_ttl_expires() -> None:
    h = make(result_ttl=3600.0)
    h.hello(W1)
    h.submit("t1", key="k", result_ttl=5.0)
    h.dispatch()
    h.results(W1, ("t1", 1, OK))
    h.later(5.0)
    h.heartbeat(W1)
    h.tick()
    h.out()
    h.submit("t2", key="k")
    h.dispatch()
    assert h.out() == [(C, "ACCEPTED", ["t2"]), (W1, "TASK", ["t2"])]


# --- heartbeats -------------------------------------------------------------------------------

def test_the_master_heartbeats_a_worker_only_when_it_sent_it_nothing_for_an_interval() -> None:
    """docs/PROTOCOL.md §6: a peer sends HEARTBEAT only when it has sent nothing for
    heartbeat_interval (1 s here). A TASK every 0.6 s means no HEARTBEAT at all."""
    h = make()
    h.hello(W1, credit=1)
    h.out()
    for i in range(10):
        h.submit(f"t{i}")
        h.dispatch()
        assert h.out(heartbeats=True)[-1] == (W1, "TASK", [f"t{i}"])
        h.later(0.6)
        h.results(W1, (f"t{i}", 1, OK))
        h.tick()
        assert (W1, "HEARTBEAT") not in h.out(heartbeats=True), i
    h.later(0.99)  # the last ACK went 0.99 s ago
    h.heartbeat(W1)
    h.tick()
    assert h.out(heartbeats=True) == []
    h.later(0.01)
    h.heartbeat(W1)
    h.tick()
    assert h.out(heartbeats=True) == [(W1, "HEARTBEAT")]


def test_the_master_answers_a_clients_heartbeat() -> None:
    h = make()
    h.s.on_client_heartbeat(C)
    assert h.out(heartbeats=True) == [(C, "HEARTBEAT")]
