"""Limits on leasing: how many tasks one tick leases, the grace the master gives a task's
time limit, and the rate limits per task name (a token bucket each)."""

from __future__ import annotations

import math
from typing import Any

from zq.core.balance import parse_rate

# Tasks leased per tick at most (~15 ms): a worker may hold 2,000 tasks and more, and a
# thousand workers joining at once would otherwise be leased millions in one turn.
MAX_LEASES = 5000
# The master enforces time limits too: a task leased longer than its timeout plus this
# grace (at least 2 liveness windows) is taken back, counted as a lost attempt, and the
# worker is sent CANCEL. The worker's own limit stays the first line.
TIME_LIMIT_GRACE = 5.0
# A due time reached within a microsecond counts as reached: clocks are floats, and a
# time summed from steps (0.05 ten times) falls a hair short of the product (0.5).
EPSILON = 1e-6


class RateLimits:
    """rate_limit="100/s" per task name: a token bucket holding one second's worth (at
    least one token), refilled on the monotonic clock."""

    __slots__ = ("_buckets",)

    def __init__(self) -> None:
        self._buckets: dict[str, list[float]] = {}  # name -> [per second, tokens, at]

    def __bool__(self) -> bool:
        return bool(self._buckets)

    def __contains__(self, name: object) -> bool:
        return name in self._buckets

    def per_second(self, name: str) -> float | None:
        b = self._buckets.get(name)
        return None if b is None else b[0]

    def set(self, name: str, spec: str, now: float, *, may_change: bool) -> bool:
        """Set name's rate from a spec ('100/s', '20/m', '5/h'); True if it changed.
        ValueError for a bad spec, or a change to a set rate when not may_change."""
        per_second = parse_rate(spec)
        cur = self._buckets.get(name)
        if cur is not None and cur[0] == per_second:
            return False
        if cur is not None and not may_change:
            raise ValueError(f"the rate limit of {name} is already set ({cur[0]:g}/s); "
                             "changing it needs the admin role")
        if cur is None:
            self._buckets[name] = [per_second, 1.0, now]
        else:
            cur[0] = per_second
        return True

    def load(self, stored: Any, now: float) -> list[str]:
        """The rate limits a store kept (task name -> tasks per second); one that is not
        a finite positive number is skipped. Returns a log line per skipped one."""
        if stored is None:
            return []
        if type(stored) is not dict:
            return [f"the stored rate limits are not a table ({type(stored).__name__}): "
                    "none loaded"]
        notes = []
        for name, per_second in stored.items():
            if (type(name) is str and type(per_second) in (int, float)
                    and 0 < per_second < math.inf):
                self._buckets[name] = [float(per_second), 1.0, now]
            else:
                notes.append(f"stored rate limit {str(name)[:80]!r}: {per_second!r} is not "
                             "a number of tasks per second: skipped")
        return notes

    def dump(self) -> dict[str, float]:
        """What the store keeps: task name -> tasks per second."""
        return {n: b[0] for n, b in self._buckets.items()}

    def take(self, name: str, now: float) -> float | None:
        """Take a token for one task of name: None if there was one, else the seconds
        until one is due."""
        bucket = self._buckets[name]
        per_second, tokens, at = bucket
        tokens = min(max(1.0, per_second), tokens + (now - at) * per_second)
        bucket[2] = now
        if tokens >= 1.0 - EPSILON:
            bucket[1] = max(0.0, tokens - 1.0)
            return None
        bucket[1] = tokens
        return (1.0 - tokens) / per_second
