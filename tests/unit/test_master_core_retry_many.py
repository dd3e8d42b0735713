"""`retry_many` (protocol 1.4, issue 12): the bulk retry `zq retry --state` asks is one
QUERY the master runs in one turn: admin only, filtered by state, queue and task name,
newest first, at most `limit`, and paid for from the asker's query budget."""

from __future__ import annotations

from typing import Any

from tests.unit.test_master_core import ERR, W1, Harness
from zq.core import messages as m
from zq.core.access import Caller
from zq.core.messages import State
from zq.core.queries import QUERY_BYTES, QUERY_COST, ROW_COST, SCAN_COST

ADMIN = Caller(b"admin")


def ask(h: Harness, caller: Caller = ADMIN, **args: Any) -> tuple[bool, Any]:
    """One retry_many QUERY: (ok, body) of its REPLY."""
    h.s.on_query(caller, 9, "retry_many", args)
    h.s.validate()
    replies = [msg for rid, msg in h.s.flush().messages
               if isinstance(msg, m.Reply) and rid == caller.rid]
    assert len(replies) == 1 and replies[0].request_id == 9, replies
    return replies[0].ok, replies[0].body


def failed(h: Harness, *ids: str, name: str = "job", queue: str = "default",
           retries: int = 0) -> None:
    """Tasks that run on W1 and fail: failed (retries=0) or, with retries=1, dead."""
    h.submit(*ids, name=name, queue=queue, retries=retries, retry_backoff=0.01)
    for attempt in range(1, retries + 2):
        h.later(1)
        h.tick()
        h.dispatch()
        h.results(W1, *[(tid, attempt, ERR) for tid in ids])
    h.out()
    want = State.DEAD if retries else State.FAILED
    assert all(h.state(tid) is want for tid in ids)


def harness() -> Harness:
    h = Harness()
    h.hello(W1, credit=100, queues=("default", "other"))
    return h


def test_it_retries_exactly_what_its_filters_choose_newest_first() -> None:
    h = harness()
    failed(h, "a1", "a2", name="resize")
    failed(h, "b1", name="resize", queue="other")
    failed(h, "c1", name="crop")
    failed(h, "d1", "d2", name="resize", retries=1)  # dead, not failed
    h.submit("q1", name="resize")  # queued: never chosen
    ok, body = ask(h, state="failed", name="resize", queue="default")
    assert ok and body == {"count": 2, "retried": ["a2", "a1"], "more": False}
    assert [h.state(t) for t in ("a1", "a2")] == [State.QUEUED] * 2
    assert [h.attempt(t) for t in ("a1", "a2")] == [0, 0]  # as new
    assert [h.state(t) for t in ("b1", "c1", "d1", "d2")] == [State.FAILED] * 2 + [State.DEAD] * 2
    ok, body = ask(h, state="dead")
    assert ok and body == {"count": 2, "retried": ["d2", "d1"], "more": False}
    ok, body = ask(h, state="cancelled")
    assert ok and body == {"count": 0, "retried": [], "more": False}


def test_it_stops_at_its_limit_and_says_more_may_match() -> None:
    h = harness()
    failed(h, "t1", "t2", "t3")
    ok, body = ask(h, state="failed", limit=2)
    assert ok and body == {"count": 2, "retried": ["t3", "t2"], "more": True}
    assert h.state("t1") is State.FAILED
    ok, body = ask(h, state="failed", limit=2)
    assert ok and body == {"count": 1, "retried": ["t1"], "more": False}


def test_the_retried_tasks_run_again() -> None:
    h = harness()
    failed(h, "t1")
    ask(h, state="failed")
    h.dispatch()
    assert h.out() == [(W1, "TASK", ["t1"])] and h.sent_tasks() == [(W1, "t1", 1)]


def test_it_needs_the_admin_role_and_a_retryable_state() -> None:
    h = harness()
    failed(h, "t1")
    ok, body = ask(h, Caller(b"c", key="client-key", admin=False), state="failed")
    assert not ok and "admin" in body
    for bad, said in (({"state": "succeeded"}, "one of failed, dead, cancelled"),
                      ({}, "needs the argument 'state'"),
                      ({"state": "failed", "limit": 0}, "limit"),
                      ({"state": "failed", "limit": 10_001}, "limit"),
                      ({"state": "failed", "id": "t1"}, "no argument 'id'")):
        ok, body = ask(h, **bad)
        assert not ok and said in body, (bad, body)
    assert h.state("t1") is State.FAILED  # nothing refused changed anything


def test_it_is_paid_for_from_the_query_budget_and_bounded_by_it() -> None:
    h = harness()
    failed(h, *[f"t{i}" for i in range(10)])
    ok, body = ask(h, state="failed", limit=4)
    assert ok and body["count"] == 4
    left = h.s.query_budget[ADMIN.rid][0]
    assert left == QUERY_BYTES - QUERY_COST - SCAN_COST * 4 - ROW_COST * 4
    # A budget that pays for 3 rows retries 3, whatever the limit asked for.
    h.s.query_budget[ADMIN.rid][0] = 3 * ROW_COST + 1
    ok, body = ask(h, state="failed", limit=100)
    assert ok and body == {"count": 3, "retried": ["t5", "t4", "t3"], "more": True}
