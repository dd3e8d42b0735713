"""Schedules at the boundary (issue 9, finding 3): validated before they are stored, no
internal field taken from a peer, field types checked, at least 0.25 s between ticks, and
a stored schedule that cannot load is skipped and listed as broken."""

from __future__ import annotations

import math
from typing import Any

import pytest

from zq.core import messages as m
from zq.core import queries
from zq.core.master_core import MasterCore
from zq.core.periodic import Periodic, Schedule
from zq.errors import ConfigError

WALL = 1_000_000.0
GOOD = {"name": "g", "task": "app:job", "every": 60.0}


def core() -> MasterCore:
    s = MasterCore(master_id="m-test", durable=True)
    s.advance(1.0, WALL)
    return s


def nested(depth: int) -> Any:
    v: Any = 1
    for _ in range(depth):
        v = [v]
    return v


@pytest.mark.parametrize("change, says", [
    ({"queue": ["io"]}, "queue"),  # client.schedule(..., queue=("io",)) sends this
    ({"queue": [1]}, "queue"),
    ({"priority": [1]}, "priority"),
    ({"priority": 1.5}, "priority"),
    ({"every": 1e-300}, "every"),
    ({"every": 0.2}, "every"),
    ({"every": math.inf}, "every"),
    ({"every": True}, "every"),
    ({"anchor": math.inf}, "unknown keys"),
    ({"last_tick": 5.0}, "unknown keys"),
    ({"name": ["x"]}, "name"),
    ({"task": 7}, "task"),
    ({"timezone": 3}, "timezone"),
    ({"kwargs": {1: 2}}, "kwargs"),
    ({"args": nested(600)}, "nest"),  # deeper than Python recursion can copy or save
    ({"args": ["x" * 70_000]}, "bytes"),
])
def test_a_bad_schedule_is_refused_and_nothing_is_stored(change: dict, says: str) -> None:
    s = core()
    with pytest.raises(queries.Refused, match=says):
        s.add_schedule({**GOOD, **change})
    assert not s.periodic.schedules and not s.flush().meta  # nothing kept, nothing saved
    s.advance(2.0, WALL + 3600)
    s.housekeeping()  # and nothing fires
    assert not s.tasks


def test_internal_fields_never_come_from_a_peer() -> None:
    s = core()
    s.on_query(_ADMIN, 1, "schedule_add", {**GOOD, "anchor": -1e308})
    (_, reply), = s.flush().messages
    assert not reply.ok and "anchor" in reply.body
    added = s.add_schedule(dict(GOOD))
    assert added["anchor"] == WALL and added["last_tick"] is None


def test_a_stored_schedule_that_cannot_load_is_skipped_listed_and_kept() -> None:
    stored = [
        {**GOOD, "name": "bad-anchor", "anchor": math.inf},  # OverflowError at load before
        {**GOOD, "name": "bad-queue", "queue": [1], "anchor": WALL - 120.0,
         "last_tick": WALL - 120.0},  # a TypeError at its first tick before
        "not even a table",
        {**GOOD, "anchor": WALL - 60.5, "last_tick": WALL - 120.5},
    ]
    s = core()
    notes = s.periodic.load(stored, WALL)
    assert len(notes) == 3 and all("cannot load" in n for n in notes)
    listed = {v["name"]: v for v in s.list_schedules()}
    assert set(listed) == {"bad-anchor", "bad-queue", "#3", "g"}
    assert listed["bad-queue"]["broken"] and listed["bad-queue"]["next_run"] is None
    assert listed["g"]["broken"] is None and listed["g"]["next_run"] is not None
    s.housekeeping()  # the good one fires; the broken ones never do
    assert list(s.tasks) == [Schedule.from_dict(stored[3]).task_id(WALL - 0.5)]
    s.validate()
    dumped = s.flush().meta["schedules"]
    assert stored[0] in dumped and stored[1] in dumped  # kept as they were, not lost
    s.remove_schedule("bad-anchor")  # an operator removes one ...
    s.add_schedule({**GOOD, "name": "bad-queue"})  # ... and mends the other
    assert [v["name"] for v in s.list_schedules() if v["broken"]] == ["#3"]


def test_the_schedule_file_reader_takes_public_fields_only(tmp_path) -> None:
    from zq.schedule_file import read_schedule_file
    path = tmp_path / "s.toml"
    path.write_text('[[schedule]]\nname = "x"\ntask = "m:f"\nevery = 0.2\n')
    with pytest.raises(ConfigError, match="every"):
        read_schedule_file(str(path))


def test_periodic_add_validates_types_directly() -> None:
    with pytest.raises(ConfigError, match="queue"):
        Periodic().add(Schedule("x", "m:f", every=5, queue=("io",)), WALL)  # type: ignore[arg-type]


from zq.core.access import Caller  # noqa: E402

_ADMIN = Caller(b"c")
assert m.Reply  # the replies above are REPLY messages
