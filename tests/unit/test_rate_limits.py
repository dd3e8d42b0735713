"""zq.core.dispatch.RateLimits: the token bucket per task name, on its own (the master
core's use of it is in test_master_core.py and test_boundary_roles.py)."""

from __future__ import annotations

import pytest

from zq.core.dispatch import RateLimits


def test_a_bucket_holds_one_seconds_worth_and_says_how_long_to_wait() -> None:
    r = RateLimits()
    assert not r and "f" not in r
    assert r.set("f", "2/s", now=0.0, may_change=False)
    assert r and "f" in r
    assert r.take("f", 0.0) is None  # a new bucket holds one token
    assert r.take("f", 0.0) == pytest.approx(0.5)  # the next is due in 1/2 s
    assert r.take("f", 0.5) is None
    assert r.take("f", 10.0) is None and r.take("f", 10.0) is None  # full: 2 tokens
    assert r.take("f", 10.0) == pytest.approx(0.5)


def test_a_set_rate_changes_only_when_allowed() -> None:
    r = RateLimits()
    r.set("f", "60/m", now=0.0, may_change=False)
    assert not r.set("f", "1/s", now=0.0, may_change=False)  # the same rate: no change
    with pytest.raises(ValueError, match="admin"):
        r.set("f", "5/s", now=0.0, may_change=False)
    assert r.set("f", "5/s", now=0.0, may_change=True) and r.per_second("f") == 5.0
    with pytest.raises(ValueError):
        r.set("g", "fast", now=0.0, may_change=True)
    assert r.dump() == {"f": 5.0}


def test_stored_rates_load_and_bad_ones_are_skipped_with_a_note() -> None:
    r = RateLimits()
    notes = r.load({"f": 3, "g": "x", 7: 1.0, "h": float("inf"), "i": -1.0}, now=0.0)
    assert r.dump() == {"f": 3.0} and len(notes) == 4
    assert r.load(None, 0.0) == [] and len(r.load([1], 0.0)) == 1
