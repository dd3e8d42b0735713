"""Retry backoff as docs/TASKS.md states it: `retry_backoff * 2**(attempt-1)` seconds
(default 1 s), capped at `retry_backoff_max` (default 600 s), with jitter in the upper
half. The numbers below are the documented ones, written out, not the formula again."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.test_master_core import ERR, W1, Harness, S
from zq.core.backoff import compute_backoff

JUST_UNDER_ONE = 1.0 - 2 ** -40  # the largest rand() the tests use: [0, 1) excludes 1

# attempt -> the documented full delay with the defaults (1 s doubling, capped at 600 s)
DEFAULT_DELAYS = {1: 1, 2: 2, 3: 4, 4: 8, 5: 16, 6: 32, 7: 64, 8: 128, 9: 256, 10: 512,
                  11: 600, 12: 600, 50: 600}


# --- compute_backoff, the pure function -------------------------------------------------

@pytest.mark.parametrize("attempt, full", sorted(DEFAULT_DELAYS.items()))
def test_the_delay_is_within_the_upper_half_of_the_documented_one(attempt: int,
                                                                  full: float) -> None:
    low = compute_backoff(attempt, base=1.0, cap=600.0, rand=0.0)
    high = compute_backoff(attempt, base=1.0, cap=600.0, rand=JUST_UNDER_ONE)
    assert low == pytest.approx(full / 2)
    assert high == pytest.approx(full) and high <= full


@given(attempt=st.integers(1, 10_000), rand=st.floats(0, 1, exclude_max=True))
def test_jitter_never_leaves_the_upper_half_nor_passes_the_cap(attempt: int,
                                                                rand: float) -> None:
    full = DEFAULT_DELAYS.get(attempt, 600)
    assert full / 2 <= compute_backoff(attempt, base=1.0, cap=600.0, rand=rand) <= full


def test_jitter_spreads_a_burst_over_the_whole_upper_half() -> None:
    rng = random.Random(11)
    delays = [compute_backoff(3, base=0.5, cap=600.0, rand=rng.random()) for _ in range(500)]
    assert 1.0 <= min(delays) < 1.1 and 1.9 < max(delays) <= 2.0  # full delay 0.5 * 2**2
    assert len({round(d, 3) for d in delays}) > 100


def test_the_cap_applies_before_the_jitter() -> None:
    assert compute_backoff(5, base=10.0, cap=4.0, rand=0.0) == pytest.approx(2.0)
    assert compute_backoff(5, base=10.0, cap=4.0, rand=JUST_UNDER_ONE) <= 4.0


# --- the master core uses it with the documented defaults --------------------------------

def first_retry_due(rand: float, **opts: float) -> float:
    """Seconds from the failure of attempt 1 until the task is queued again, to 10 ms."""
    h = Harness(rand=lambda: rand)
    h.hello(W1)
    h.submit("t1", retries=1, **opts)
    h.dispatch()
    h.results(W1, ("t1", 1, ERR))
    waited = 0.0
    while h.state("t1") is S.RETRYING:
        assert waited < 1300, "never retried"
        h.later(0.01)
        h.heartbeat(W1)
        h.tick()
        waited += 0.01
    assert h.state("t1") is S.QUEUED
    return waited


def test_a_retry_waits_between_half_a_second_and_one_second_by_default() -> None:
    assert first_retry_due(0.0) == pytest.approx(0.5, abs=0.011)
    assert first_retry_due(JUST_UNDER_ONE) == pytest.approx(1.0, abs=0.011)


def test_retry_backoff_sets_the_first_delay() -> None:
    assert first_retry_due(0.0, retry_backoff=3.0) == pytest.approx(1.5, abs=0.011)
    assert first_retry_due(JUST_UNDER_ONE, retry_backoff=3.0) == pytest.approx(3.0, abs=0.011)


def test_the_default_cap_is_600_seconds() -> None:
    """Attempt 11 of a task with default backoff would wait 1024 s uncapped."""
    h = Harness(rand=lambda: JUST_UNDER_ONE)
    h.hello(W1)
    h.submit("t1", retries=11)
    for attempt in range(1, 12):
        h.dispatch()
        h.out()
        assert h.sent_tasks() == [(W1, "t1", attempt)]
        h.results(W1, ("t1", attempt, ERR))
        full = DEFAULT_DELAYS[attempt]
        h.later(full - 0.5)
        h.heartbeat(W1)
        h.tick()
        assert h.state("t1") is S.RETRYING, attempt
        h.later(0.5)
        h.heartbeat(W1)
        h.tick()
        assert h.state("t1") is S.QUEUED, attempt
