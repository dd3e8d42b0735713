"""QUERY in the pure core (issue 9, finding 2): one table of kinds, every argument
type-checked before anything runs, the privilege each kind needs, and a REPLY ok=false
that says what is wrong instead of an exception out of the core."""

from __future__ import annotations

import math
from typing import Any

import pytest

from zq.core import messages as m
from zq.core import queries
from zq.core.access import Caller
from zq.core.master_core import MasterCore

RID = b"client"
ADMIN = Caller(RID)
CLIENT_KEY = Caller(RID, key="client-key", admin=False)


def core() -> MasterCore:
    s = MasterCore(master_id="m-test")
    s.advance(1.0, 1_000_000.0)
    return s


def ask(s: MasterCore, kind: str, caller: Caller = ADMIN, **args: Any) -> tuple[bool, Any]:
    """One QUERY through the core: (ok, body) of the REPLY it answers with."""
    s.on_query(caller, 7, kind, args)
    s.validate()
    replies = [msg for rid, msg in s.flush().messages if isinstance(msg, m.Reply)]
    assert len(replies) == 1 and replies[0].request_id == 7, replies
    return replies[0].ok, replies[0].body


# Each of these raised out of the master loop before (AttributeError, OverflowError, ...)
# or was taken as it came. Every one is answered ok=false now.
BAD = [
    ("tasks", {"state": 4}, "state"),  # client.tasks(state=4): AttributeError before
    ("tasks", {"state": "nonsense"}, "one of"),
    ("tasks", {"limit": "ten"}, "limit"),
    ("tasks", {"limit": 10**9}, "limit"),
    ("tasks", {"limit": 0}, "limit"),
    ("tasks", {"limit": True}, "limit"),
    ("tasks", {"queue": ["io"]}, "queue"),
    ("tasks", {"colour": "red"}, "no argument 'colour'"),
    ("get", {}, "needs the argument 'id'"),
    ("get", {"id": 5}, "id"),
    ("get", {"id": "x" * 129}, "id"),
    ("purge", {"state": "running"}, "one of"),
    ("purge", {"older_than": math.inf}, "finite"),
    ("purge", {"older_than": math.nan}, "finite"),
    ("purge", {"older_than": -1}, "older_than"),
    ("purge", {"older_than": "1h"}, "older_than"),
    ("retry", {"id": None}, "needs the argument"),
    ("schedule_add", {"name": "s", "task": "m:f", "every": 60.0, "anchor": math.inf},
     "no argument 'anchor'"),  # OverflowError at the first tick before
    ("schedule_add", {"name": "s", "task": "m:f", "every": 60.0, "last_tick": 1e300},
     "no argument 'last_tick'"),
    ("schedule_add", {"name": "s", "task": "m:f", "every": math.inf}, "every"),
    ("schedule_add", {"name": "s", "task": "m:f", "every": 1e-300}, "every"),
    ("schedule_add", {"name": "s", "task": "m:f", "every": 60.0, "queue": [1]}, "queue"),
    ("schedule_add", {"name": "s", "task": "m:f", "every": 60.0, "priority": [1]}, "priority"),
    ("schedule_add", {"name": "s", "task": "m:f", "every": 60.0, "kwargs": {1: 2}}, "kwargs"),
    ("schedule_add", {"name": "s", "task": "m:f", "every": 60.0, "args": [[[[[[[[[[
        [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}, "nests"),
    ("schedule_remove", {"name": 3}, "name"),
    ("status", {"verbose": True}, "no argument"),
]


@pytest.mark.parametrize("kind, args, says", BAD, ids=[f"{k}-{i}" for i, (k, _, _) in
                                                       enumerate(BAD)])
def test_bad_arguments_are_refused_before_anything_runs(kind: str, args: dict, says: str) -> None:
    s = core()
    s.on_submit(b"c", [("t1", "job", b"", {})])
    s.flush()
    ok, body = ask(s, kind, **args)
    assert not ok and says in body, body
    assert not s.periodic.schedules  # nothing was added


def test_an_unknown_kind_names_the_known_ones() -> None:
    ok, body = ask(core(), "drop_tables")
    assert not ok and "unknown query" in body and "status" in body


def test_good_queries_still_answer() -> None:
    s = core()
    s.on_submit(b"c", [(f"t{i}", "job", b"", {}) for i in range(5)])
    s.flush()
    assert ask(s, "tasks", state="queued", limit=2) == (True, queries.list_tasks(s, state="queued",
                                                                          limit=2))
    ok, rows = ask(s, "tasks")
    assert ok and [r["id"] for r in rows] == ["t4", "t3", "t2", "t1", "t0"]
    assert ask(s, "get", id="t1")[1]["id"] == "t1"
    assert ask(s, "get", id="ghost") == (False, "unknown task id ghost")
    ok, added = ask(s, "schedule_add", name="s", task="m:f", every=60, cron=None)
    assert ok and added["every"] == 60 and added["next_run"] == 1_000_060.0
    assert ask(s, "schedule_remove", name="s") == (True, True)
    ok, st = ask(s, "status")
    assert ok and st["counts"]["queued"] == 5


def test_numbers_may_be_ints_or_floats() -> None:
    s = core()
    assert ask(s, "purge", state="succeeded", older_than=0)[0]
    assert ask(s, "purge", state="succeeded", older_than=0.5)[0]
    assert ask(s, "schedule_add", name="a", task="m:f", every=2)[0]
    assert ask(s, "schedule_add", name="b", task="m:f", every=2.5)[0]


def test_tasks_limit_is_capped_and_the_table_is_not_copied() -> None:
    s = core()
    s.on_submit(b"c", [(f"t{i}", "job", b"", {}) for i in range(queries.MAX_TASKS_LIMIT + 5)])
    s.flush()
    assert len(queries.list_tasks(s, limit=10**6)) == queries.MAX_TASKS_LIMIT  # capped too

    class Uncopyable(dict):
        def values(self):  # type: ignore[override]
            view = super().values()

            class View:
                def __reversed__(self):
                    return reversed(view)

                def __iter__(self):
                    raise AssertionError("the whole task table was walked from the start")
            return View()
    s.tasks = Uncopyable(s.tasks)
    assert [r["id"] for r in queries.list_tasks(s, limit=3)] == ["t1004", "t1003", "t1002"]


def test_a_client_key_reads_but_only_an_admin_changes() -> None:
    s = core()
    assert ask(s, "status", CLIENT_KEY)[0]
    assert ask(s, "tasks", CLIENT_KEY)[0]
    assert ask(s, "schedule_list", CLIENT_KEY)[0]
    for kind, args in [("purge", {}), ("retry", {"id": "t1"}),
                       ("schedule_add", {"name": "s", "task": "m:f", "every": 60}),
                       ("schedule_remove", {"name": "s"})]:
        ok, body = ask(s, kind, CLIENT_KEY, **args)
        assert not ok and "admin role" in body, body
    assert not s.periodic.schedules
    assert ask(s, "schedule_add", ADMIN, name="s", task="m:f", every=60)[0]


def test_every_kind_in_the_table_checks_its_arguments() -> None:
    """The table is the one place: every kind refuses an unknown argument."""
    for kind in queries.KINDS:
        ok, body = ask(core(), kind, zz_unknown=1)
        assert not ok and "zz_unknown" in body


def test_a_failed_message_is_counted_and_answered() -> None:
    s = core()
    s.on_failed_message(RID, "boom", request_id=3)
    s.on_failed_message(RID, "bang")
    out = s.flush().messages
    assert out == [(RID, m.Reply(3, False, "boom")), (RID, m.Error("bang"))]
    assert queries.status(s)["dropped_messages"] == 2
