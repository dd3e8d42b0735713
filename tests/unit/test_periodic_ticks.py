"""docs/TASKS.md: each tick of a schedule submits one task, NAME@TICK; a tick never
runs twice. Counted per tick on a fake clock, for periods shorter than a second too."""

from __future__ import annotations

import pytest

from zq.core.master_core import MasterCore
from zq.core.periodic import Schedule


@pytest.mark.parametrize("anchor", [1000.0, 1000.3, 1000.5, 1000.75, 1000.999])
@pytest.mark.parametrize("every", [0.25, 0.5, 0.7, 1.0, 1.5])
def test_every_tick_submits_its_own_task(anchor: float, every: float) -> None:
    core = MasterCore(master_id="m", durable=True)
    core.advance(0.0, anchor)
    core.add_schedule({"name": "job", "task": "app:f", "every": every})
    fired: list[str] = []
    steps = 400  # 20 s of wall time in steps of 0.05 s, each step shorter than a period
    for k in range(1, steps + 1):
        core.advance(k * 0.05, anchor + k * 0.05)
        core.housekeeping()
        fired += [r.id for r in core.flush().saves]
    ticks = int(20 / every + 1e-9)
    assert len(fired) == ticks and len(set(fired)) == ticks, fired
    assert fired == sorted(fired, key=lambda tid: float(tid.partition("@")[2]))
    core.validate()


def test_a_whole_second_tick_keeps_its_plain_unix_time_id() -> None:
    s = Schedule("nightly", "m:f", cron="0 3 * * *").validate()
    assert s.task_id(1767236400.0) == "nightly@1767236400"
    assert Schedule("poll", "m:f", every=0.5).task_id(1000.5) == "poll@1000.5"
