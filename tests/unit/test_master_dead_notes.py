"""The master core's ERROR lines for tasks gone DEAD (issue 14): one per task with id,
name, attempt and why, at most DEAD_NOTES_PER_TURN in one turn, the rest counted."""

from __future__ import annotations

from tests.unit.test_master_core import ERR, W1, Harness
from zq.core.master_core import DEAD_NOTES_PER_TURN
from zq.core.messages import State


def test_a_storm_of_deaths_logs_a_few_lines_and_counts_the_rest() -> None:
    h = Harness()
    ids = [f"t{i}" for i in range(DEAD_NOTES_PER_TURN + 3)]
    h.hello(W1, credit=len(ids))
    h.submit(*ids, name="job", retries=1, retry_backoff=0.5)
    for attempt in (1, 2):
        h.dispatch()
        h.out()
        h.results(W1, *[(tid, attempt, ERR) for tid in ids])
        h.later(1)
        h.heartbeat(W1)
        h.tick()
    assert all(h.state(tid) is State.DEAD for tid in ids)
    h.out()
    errors = [text for level, text in h.last.notices if level == "error"]
    assert errors == [f"task {tid} job dead after attempt 2: ValueError: {tid} broke"
                      for tid in ids[:DEAD_NOTES_PER_TURN]] + [
        "and 3 more task(s) dead this turn, not logged one by one"]
    h.out()
    assert h.last.notices == []
