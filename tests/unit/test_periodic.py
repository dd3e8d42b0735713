"""Periodic schedules on a fake wall clock: which tick is due, once, across restarts."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from zq.core import messages as m
from zq.core.master_core import MasterCore
from zq.core.periodic import Periodic, Schedule, latest_tick, next_tick
from zq.errors import ConfigError


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


def test_cron_ticks_in_utc_and_in_a_timezone():
    s = Schedule("r", "m:f", cron="30 9 * * *").validate()
    assert next_tick(s, utc(2026, 11, 27, 9, 0)) == utc(2026, 11, 27, 9, 30)
    assert next_tick(s, utc(2026, 11, 27, 9, 30)) == utc(2026, 11, 28, 9, 30)  # strictly after
    assert latest_tick(s, utc(2026, 11, 27, 9, 30)) == utc(2026, 11, 27, 9, 30)  # at counts
    berlin = Schedule("b", "m:f", cron="30 9 * * *", timezone="Europe/Berlin").validate()
    assert next_tick(berlin, utc(2026, 11, 27, 0, 0)) == utc(2026, 11, 27, 8, 30)  # UTC+1


def test_every_counts_from_its_anchor():
    s = Schedule("e", "m:f", every=10, anchor=100.0).validate()
    assert latest_tick(s, 105.0) is None
    assert latest_tick(s, 125.0) == 120.0
    assert next_tick(s, 120.0) == 130.0


@pytest.mark.parametrize("spec, message", [
    ({"name": "x", "task": "m:f"}, "exactly one of cron or every"),
    ({"name": "x", "task": "m:f", "cron": "* *", "every": 1}, "exactly one"),
    ({"name": "x", "task": "m:f", "cron": "61 * * * *"}, "not a 5-field cron"),
    ({"name": "x", "task": "nocolon", "every": 1}, "module:function"),
    ({"name": "x", "task": "m:f", "every": -1}, "positive"),
    ({"name": "x", "task": "m:f", "cron": "* * * * *", "timezone": "Mars/Olympus"}, "timezone"),
    ({"name": "x", "task": "m:f", "every": 1, "colour": "red"}, "unknown keys"),
])
def test_bad_schedules_say_what_is_wrong(spec, message):
    with pytest.raises(ConfigError, match=message):
        Schedule.from_dict(spec)


def test_after_downtime_a_missed_schedule_runs_once():
    p = Periodic()
    p.add(Schedule("m", "m:f", cron="* * * * *"), utc(2026, 1, 1, 0, 0, 30))
    assert p.due(utc(2026, 1, 1, 0, 0, 59)) == []
    fired = p.due(utc(2026, 1, 1, 0, 10, 5))  # ten ticks were missed
    assert [tick for _, tick in fired] == [utc(2026, 1, 1, 0, 10)]
    assert p.due(utc(2026, 1, 1, 0, 10, 50)) == []  # and not again for that tick


def test_a_tick_never_fires_twice_across_a_restart():
    p = Periodic()
    p.add(Schedule("m", "m:f", every=60), 1000.0)
    assert [t for _, t in p.due(1060.0)] == [1060.0]
    restarted = Periodic()
    restarted.load(p.dump(), 1061.0)  # what the store kept: last_tick included
    assert restarted.due(1061.0) == []
    assert [t for _, t in restarted.due(1120.0)] == [1120.0]


def sched_at(wall: float) -> MasterCore:
    s = MasterCore(master_id="t", durable=True)
    s.advance(1.0, wall)
    return s


def test_the_core_submits_a_task_per_tick_and_persists_the_schedule():
    core = sched_at(utc(2026, 1, 1, 0, 0, 0))
    core.add_schedule({"name": "tick", "task": "app:job", "cron": "*/5 * * * *",
                       "args": [1], "queue": "cron"})
    assert "schedules" in core.flush().meta
    core.advance(2.0, utc(2026, 1, 1, 0, 5, 1))
    core.housekeeping()
    tid = f"tick@{utc(2026, 1, 1, 0, 5):.0f}"
    t = core.tasks[tid]
    assert (t.name, t.queue, t.state) == ("app:job", "cron", m.State.QUEUED)
    out = core.flush()
    assert [r.id for r in out.saves] == [tid]  # the task and ...
    # ... and its tick, in one commit
    assert out.meta["schedules"][0]["last_tick"] == utc(2026, 1, 1, 0, 5)
    assert out.messages == []  # nobody submitted it: nobody to tell
    core.validate()


def test_the_longest_schedule_name_makes_task_ids_a_worker_accepts():
    """A tick's id is NAME@TIME and a run now's NAME@now-TIME: with the longest name a
    schedule may have they still fit a task id (a longer id made the worker refuse the
    whole TASK batch it came in); one character more is refused, saying why."""
    from zq.core import timers
    from zq.core.codec import MAX_ID
    from zq.core.periodic import MAX_SCHEDULE_NAME
    name = "s" * MAX_SCHEDULE_NAME
    core = sched_at(utc(2286, 1, 1, 0, 0, 0))  # ten-digit unix times until 2286
    core.add_schedule({"name": name, "task": "app:job", "every": 0.25})
    core.advance(2.0, utc(2286, 1, 1, 0, 0, 1) + 0.123457)
    core.housekeeping()
    ran = [timers.run_schedule(core, name)["id"] for _ in range(3)]  # -2, -3 in one turn
    ids = [i for i in core.tasks if i.startswith(name)]
    assert len(ids) == 4 and set(ran) < set(ids)
    assert max(map(len, ids)) <= MAX_ID, max(ids, key=len)
    with pytest.raises(ConfigError, match=f"1 to {MAX_SCHEDULE_NAME} characters"):
        Schedule.from_dict({"name": name + "s", "task": "m:f", "every": 1})


def test_restored_master_does_not_fire_a_tick_again():
    core = sched_at(1000.0)
    core.add_schedule({"name": "e", "task": "app:job", "every": 60.0})
    core.advance(2.0, 1061.0)
    core.housekeeping()
    saved = core.flush()
    again = sched_at(1062.0)
    again.restore(iter(saved.saves))
    again.periodic.load(saved.meta["schedules"], 1062.0)
    again.housekeeping()
    assert [tid for tid in again.tasks] == ["e@1060"]
    again.validate()


def test_remove_unknown_schedule_is_an_error():
    core = sched_at(1000.0)
    with pytest.raises(LookupError, match="no schedule named"):
        core.remove_schedule("ghost")
