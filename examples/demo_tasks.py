"""Tasks of the demo: ordinary functions in an ordinary module, run by `--app demo_tasks`."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import zq


def noop(_=None):
    return None


def count_primes(lo: int, hi: int) -> int:
    """CPU work: primes in [lo, hi) by trial division."""
    count = 0
    for n in range(max(lo, 2), hi):
        if all(n % d for d in range(2, int(n ** 0.5) + 1)):
            count += 1
    return count


WORD = re.compile(r"[a-z][a-z']+")  # words, not the box-drawing of README's pictures


def word_count(line: str) -> dict:
    counts: dict[str, int] = {}
    for word in WORD.findall(line.lower()):
        counts[word] = counts.get(word, 0) + 1
    return counts


@zq.task(retries=3, retry_backoff=0.1)
def flaky(marker: str, failures: int) -> str:
    """Fails `failures` times (counted in a file), then succeeds: retries at work."""
    path = Path(marker)
    runs = int(path.read_text()) if path.exists() else 0
    path.write_text(str(runs + 1))
    if runs < failures:
        raise ConnectionError(f"upstream unavailable (attempt {zq.current_task().attempt})")
    return f"succeeded on attempt {zq.current_task().attempt}"


def countdown(n: int):
    """A generator task: each value reaches the client while the task still runs."""
    for i in range(n, 0, -1):
        time.sleep(0.05)
        yield i
    return "liftoff"


def slow_square(x: int, seconds: float = 0.3) -> dict:
    time.sleep(seconds)
    return {"value": x * x, "pid": os.getpid()}


def divide(a: float, b: float) -> float:
    return a / b
