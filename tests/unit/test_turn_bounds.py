"""The pieces that bound one turn of the master's loop (issue 10, finding 7): the core
leases at most a given number of tasks per dispatch, and the master keeps the longest
turn of a sliding window for `status`."""

from __future__ import annotations

import logging

import pytest

from tests.unit.test_master_core import W1, W2, Harness
from zq import master as master_module
from zq.master import TurnTimes


def test_dispatch_offers_at_most_its_limit_and_says_when_it_stopped_there() -> None:
    h = Harness()
    h.hello(W1, credit=10)
    h.hello(W2, credit=10)
    h.submit(*[f"t{i}" for i in range(30)])
    h.out()
    assert h.s.dispatch(limit=7) is True
    assert len(h.s.lease) == 7
    assert h.s.dispatch(limit=7) is True
    assert len(h.s.lease) == 14
    assert h.s.dispatch(limit=7) is False  # the credit ran out first: 20 leased
    assert len(h.s.lease) == 20
    h.s.validate()
    assert h.s.dispatch() is False  # nothing to lease: no credit left


def test_dispatch_in_slices_fills_every_worker_as_one_pass_does() -> None:
    """Which task goes where may differ (each slice starts with idle slots again), but
    every worker ends up holding what its credit allows, each task leased once."""
    def held(limit: int | None) -> dict[bytes, int]:
        h = Harness()
        h.hello(W1, credit=12)
        h.hello(W2, credit=5)
        h.submit(*[f"t{i}" for i in range(40)])
        for _ in range(100):  # bounded: each call leases at least one task or stops
            if not (h.s.dispatch(limit) if limit else h.s.dispatch()):
                break
        h.out()
        h.s.validate()
        return {rid: len(h.s.workers[rid].leased) for rid in (W1, W2)}
    assert held(3) == held(None) == {W1: 12, W2: 5}


def test_longest_turn_covers_the_last_window_and_forgets_older_ones() -> None:
    t = TurnTimes()
    t.note(100.0, 100.1, 100.2, 100.3, 100.4)  # a 0.4 s turn
    t.note(101.0, 101.01, 101.02, 101.03, 101.05)
    assert t.longest == pytest.approx(0.4)
    t.note(112.0, 112.0, 112.0, 112.0, 112.01)  # next window: the 0.4 s one is its "before"
    assert t.longest == pytest.approx(0.4)
    t.note(125.0, 125.0, 125.0, 125.0, 125.02)  # two windows on: forgotten
    assert t.longest == pytest.approx(0.02)
    t.note(150.0, 150.0, 150.0, 150.0, 150.03)  # a gap of several windows: nothing carried
    assert t.longest == pytest.approx(0.03)


def test_a_slow_turn_is_logged_with_where_it_went(caplog: pytest.LogCaptureFixture) -> None:
    t = TurnTimes()
    with caplog.at_level(logging.WARNING, logger="zq.master"):
        t.note(10.0, 10.1, 10.2, 10.3, 10.4)
        assert not caplog.records
        slow = master_module.SLOW_TURN
        t.note(20.0, 20.0 + slow / 2, 20.0 + slow / 2, 20.0 + slow, 20.0 + slow)
    assert [r.getMessage() for r in caplog.records] == [
        f"a loop turn took {slow:.2f} s (messages and dispatch {slow / 2:.2f} s, commit "
        f"0.00 s, send {slow / 2:.2f} s, store upkeep 0.00 s)"]
