"""Tasks the bench workers run (`zq worker --app bench.tasks`). The client names them by
string ("bench.tasks:noop") so a script run as `python bench/x.py` sends the same name."""

from __future__ import annotations

NOOP = "bench.tasks:noop"
SIZE = "bench.tasks:size"
ECHO = "bench.tasks:echo"


def noop(_=None):
    return None


def size(data: bytes) -> int:
    """A payload in, a small result out: what the payload bench times."""
    return len(data)


def echo(data: bytes) -> bytes:
    return data
