"""Schedules paused, resumed and run now (protocol 1.5, issue 15): a paused schedule does
not tick, resumes from its next tick after now (no burst of missed ticks), its pause is
stored with it; "run now" submits one run without moving its ticks. The three QUERY
kinds are admin-only and check their one argument."""

from __future__ import annotations

from typing import Any

import pytest

from zq.core import messages as m
from zq.core.access import Caller
from zq.core.master_core import MasterCore
from zq.core.periodic import Periodic, Schedule

T0 = 1_000_000.0  # a whole minute: `every` ticks below land on T0 + k * every
ADMIN = Caller(b"admin")
CLIENT = Caller(b"client", key="client-key", admin=False)


def core_with(every: float = 10.0, **spec: Any) -> MasterCore:
    core = MasterCore(master_id="m", durable=True)
    core.advance(0.0, T0)
    core.add_schedule({"name": "job", "task": "app:f", "every": every, **spec})
    core.flush()
    return core


def at(core: MasterCore, seconds: float) -> list[str]:
    """Move both clocks to T0 + seconds, run housekeeping: the task ids it submitted."""
    core.advance(seconds, T0 + seconds)
    core.housekeeping()
    core.validate()
    return [t.id for t in core.flush().saves]


def ask(core: MasterCore, kind: str, caller: Caller = ADMIN, **args: Any) -> tuple[bool, Any]:
    ok, body, _ = ask_stored(core, kind, caller, **args)
    return ok, body


def ask_stored(core: MasterCore, kind: str, caller: Caller = ADMIN,
               **args: Any) -> tuple[bool, Any, dict[str, Any]]:
    """One QUERY: (ok, body) of its REPLY and the meta values the turn stores."""
    core.on_query(caller, 5, kind, args)
    core.validate()
    out = core.flush()
    replies = [msg for rid, msg in out.messages if isinstance(msg, m.Reply)]
    assert len(replies) == 1, replies
    return replies[0].ok, replies[0].body, out.meta


def listed(core: MasterCore) -> dict[str, Any]:
    ok, body = ask(core, "schedule_list")
    assert ok
    return {s["name"]: s for s in body}["job"]


def test_a_paused_schedule_does_not_tick() -> None:
    core = core_with()
    assert at(core, 10) == ["job@1000010"]
    ok, body = ask(core, "schedule_pause", name="job")
    assert ok and body["paused"] is True and body["next_run"] is None
    assert [at(core, s) for s in (20, 35, 60, 95)] == [[], [], [], []]
    view = listed(core)
    assert view["paused"] is True and view["next_run"] is None
    assert view["last_tick"] == T0 + 10


def test_a_resumed_schedule_ticks_from_its_next_tick_without_a_burst() -> None:
    core = core_with()
    assert at(core, 10) == ["job@1000010"]
    ask(core, "schedule_pause", name="job")
    at(core, 95)  # the ticks at 20 ... 90 are missed while paused
    ok, body = ask(core, "schedule_resume", name="job")
    assert ok and body["paused"] is False and body["next_run"] == T0 + 100
    assert at(core, 99) == []
    assert at(core, 100) == ["job@1000100"]  # one run, for the tick after the resume
    assert at(core, 110) == ["job@1000110"]


def test_resuming_a_schedule_that_is_not_paused_changes_nothing() -> None:
    core = core_with()
    before = listed(core)
    ok, body = ask(core, "schedule_resume", name="job")
    assert ok and body == before


def test_the_pause_is_stored_and_outlasts_a_restart() -> None:
    core = core_with()
    stored = ask_stored(core, "schedule_pause", name="job")[2]["schedules"]
    assert stored[0]["paused"] is True
    again = Periodic()
    assert again.load(stored, T0 + 500) == []
    assert again.view("job")["paused"] is True and again.next_due() is None
    assert again.due(T0 + 1000) == []


def test_a_schedule_not_paused_is_stored_as_before_1_5() -> None:
    core = core_with()
    ask(core, "schedule_pause", name="job")
    [stored] = ask_stored(core, "schedule_resume", name="job")[2]["schedules"]
    assert "paused" not in stored  # a 1.4 master loads it (it refuses unknown keys)
    Schedule.from_dict(stored)


def test_replacing_a_paused_schedule_keeps_it_paused() -> None:
    core = core_with()
    ask(core, "schedule_pause", name="job")
    ok, body = ask(core, "schedule_add", name="job", task="app:g", every=5.0)
    assert ok and body["paused"] is True and body["task"] == "app:g" and body["next_run"] is None
    assert at(core, 30) == []


def test_a_peer_cannot_set_paused_through_schedule_add() -> None:
    core = core_with()
    ok, body = ask(core, "schedule_add", name="x", task="app:f", every=5.0, paused=True)
    assert not ok and "paused" in body


def test_run_now_submits_one_run_and_leaves_the_ticks_alone() -> None:
    core = core_with(args=[1, "a"], kwargs={"k": 2}, queue="q", priority=3)
    at(core, 10)
    before = listed(core)
    core.advance(12.5, T0 + 12.5)
    ok, body = ask(core, "schedule_run", name="job")
    assert ok and body["id"] == "job@now-1000012.5"
    t = core.tasks["job@now-1000012.5"]
    assert (t.name, t.queue, t.priority) == ("app:f", "q", 3)
    from zq.core import serde
    assert serde.decode_call(t.payload) == ([1, "a"], {"k": 2})
    after = listed(core)
    assert after["next_run"] == before["next_run"] == T0 + 20
    assert after["last_tick"] == before["last_tick"] == T0 + 10
    assert at(core, 20) == ["job@1000020"]


def test_run_now_twice_in_one_turn_runs_twice_and_works_while_paused() -> None:
    core = core_with()
    ask(core, "schedule_pause", name="job")
    ids = [ask(core, "schedule_run", name="job")[1]["id"] for _ in range(2)]
    assert ids == ["job@now-1000000", "job@now-1000000-2"]
    assert all(i in core.tasks for i in ids)
    assert listed(core)["paused"] is True


def test_run_now_when_the_master_is_full_says_so() -> None:
    core = MasterCore(master_id="m", durable=True, max_queued=1)
    core.advance(0.0, T0)
    core.add_schedule({"name": "job", "task": "app:f", "every": 10.0})
    core.on_submit(b"c", [("other", "app:f", b"\x92\x90\x80", {})])
    ok, body = ask(core, "schedule_run", name="job")
    assert not ok and "try again later" in body


@pytest.mark.parametrize("kind", ["schedule_pause", "schedule_resume", "schedule_run"])
@pytest.mark.parametrize("args, message", [
    ({}, "needs the argument 'name'"),
    ({"name": 7}, "must be a non-empty string"),
    ({"name": ""}, "must be a non-empty string"),
    ({"name": "x" * 201}, "at most 200 characters"),
    ({"name": ["job"]}, "must be a non-empty string"),
    ({"name": "job", "extra": 1}, "takes no argument 'extra'"),
    ({"name": "nope"}, "no schedule named 'nope'"),
])
def test_bad_arguments_are_refused_and_change_nothing(kind: str, args: dict,
                                                      message: str) -> None:
    core = core_with()
    before = listed(core)
    ok, body = ask(core, kind, **args)
    assert not ok and message in body
    assert listed(core) == before and set(core.tasks) == set()


@pytest.mark.parametrize("kind", ["schedule_pause", "schedule_resume", "schedule_run"])
def test_they_need_the_admin_role(kind: str) -> None:
    core = core_with()
    ok, body = ask(core, kind, CLIENT, name="job")
    assert not ok and "admin" in body
    assert listed(core)["paused"] is False and not core.tasks


@pytest.mark.parametrize("kind", ["schedule_pause", "schedule_resume", "schedule_run"])
def test_a_broken_schedule_is_refused_with_why(kind: str) -> None:
    core = MasterCore(master_id="m", durable=True)
    core.advance(0.0, T0)
    core.periodic.load([{"name": "old", "task": "app:f", "every": "soon"}], T0)
    ok, body = ask(core, kind, name="old")
    assert not ok and "broken" in body and "add it again or remove it" in body
