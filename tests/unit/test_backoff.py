"""zq.core.backoff: the one backoff the master (retries), the worker and the client
(reconnects) share. The numbers are the documented ones, written out."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zq.core import backoff, worker_core
from zq.core.backoff import CLIENT_JITTER, RETRY_JITTER, compute_backoff, worker_jitter

JUST_UNDER_ONE = 1.0 - 2 ** -40
rands = st.floats(0, 1, exclude_max=True)
jitters = st.sampled_from([RETRY_JITTER, CLIENT_JITTER, worker_jitter(0.0),
                           worker_jitter(0.3), worker_jitter(1.0)])


def test_base_doubles_from_the_first_attempt_up_to_the_cap() -> None:
    no_jitter = (1.0, 0.0)
    got = [compute_backoff(a, base=0.5, cap=5.0, rand=0.7, jitter=no_jitter)
           for a in range(1, 8)]
    assert got == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    # attempts before `first` wait the base, as the first does
    assert compute_backoff(0, base=0.5, cap=5.0, rand=0.7, jitter=no_jitter) == 0.5
    assert compute_backoff(0, base=0.5, cap=5.0, rand=0.7, first=0, jitter=no_jitter) == 0.5
    assert compute_backoff(1, base=0.5, cap=5.0, rand=0.7, first=0, jitter=no_jitter) == 1.0


def test_each_callers_jitter_range() -> None:
    """Retries: the upper half of the delay; clients: 0.75 to 1.25 of it; workers: up
    to their fraction shaved off."""
    for jitter, lo, hi in ((RETRY_JITTER, 2.0, 4.0), (CLIENT_JITTER, 3.0, 5.0),
                           (worker_jitter(0.25), 3.0, 4.0)):
        a = compute_backoff(3, base=1.0, cap=60.0, rand=0.0, jitter=jitter)
        b = compute_backoff(3, base=1.0, cap=60.0, rand=JUST_UNDER_ONE, jitter=jitter)
        assert sorted([a, b]) == pytest.approx([lo, hi])


@given(attempt=st.integers(-5, 1_000_000), rand=rands, jitter=jitters,
       base=st.floats(1e-3, 10.0), cap=st.floats(1e-3, 1e6))
def test_any_attempt_gives_a_finite_wait_within_the_capped_range(
        attempt: int, rand: float, jitter: tuple[float, float], base: float,
        cap: float) -> None:
    d = compute_backoff(attempt, base=base, cap=cap, rand=rand, jitter=jitter)
    full = min(cap, base * 2.0 ** min(max(0, attempt - 1), 60))
    low, spread = jitter
    bounds = sorted([full * low, full * (low + spread)])
    assert math.isfinite(d)
    assert bounds[0] * (1 - 1e-9) <= d <= bounds[1] * (1 + 1e-9)


@given(attempt=st.integers(0, 2_000), rand=rands, jitter=jitters)
def test_never_shorter_for_a_later_attempt(attempt: int, rand: float,
                                           jitter: tuple[float, float]) -> None:
    a = compute_backoff(attempt, base=0.1, cap=30.0, rand=rand, jitter=jitter)
    b = compute_backoff(attempt + 1, base=0.1, cap=30.0, rand=rand, jitter=jitter)
    assert b >= a


def test_the_worker_and_client_helpers_are_this_backoff() -> None:
    """One implementation: the worker's name is a thin adapter (the client core calls
    compute_backoff itself: tests/unit/test_client_core.py)."""
    for a in range(0, 40):
        for r in (0.0, 0.3, JUST_UNDER_ONE):
            assert worker_core.compute_backoff(a, base=0.1, cap=30.0, jitter_fraction=0.2,
                                               rand=r) == compute_backoff(
                a, base=0.1, cap=30.0, rand=r, first=0, jitter=worker_jitter(0.2))
    assert backoff.MAX_EXPONENT < 1024  # 2.0 ** 1024 overflows
