"""The one backoff with jitter: the master's retry delays, the worker's and the
client's reconnect waits. Dramatiq's ``compute_backoff`` is the model: a pure function
of the attempt number and a random number the caller draws (the core has no random
source of its own, so tests choose it)."""

from __future__ import annotations

# 2.0 ** 1024 raises OverflowError; past this exponent every sane cap has been reached.
MAX_EXPONENT = 1000

# The jitter each caller uses, as (low, spread): the delay is multiplied by
# low + spread * rand, rand in [0, 1).
RETRY_JITTER = (0.5, 0.5)  # master retries: the upper half of the delay (docs/TASKS.md)
CLIENT_JITTER = (0.75, 0.5)  # client reconnects: 0.75 to 1.25 of the delay


def worker_jitter(fraction: float) -> tuple[float, float]:
    """Worker reconnects: up to `fraction` of the delay shaved off, never added."""
    return (1.0, -fraction)


def compute_backoff(attempt: int, *, base: float, cap: float, rand: float,
                    first: int = 1, jitter: tuple[float, float] = RETRY_JITTER) -> float:
    """Seconds to wait before try `attempt`: `base` for attempt `first` (and any
    before it), doubling with each attempt after it up to `cap`, then multiplied by
    ``low + spread * rand`` with ``(low, spread) = jitter`` and rand in [0, 1), so a
    burst of retries or a fleet of reconnecting peers spreads out. The cap applies
    before the jitter."""
    exponent = min(max(0, attempt - first), MAX_EXPONENT)
    delay = min(cap, base * 2.0 ** exponent)
    low, spread = jitter
    return delay * (low + spread * rand)
