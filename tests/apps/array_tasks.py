"""Tasks for the numpy-frames tests (--app tests.apps.array_tasks, issue 13)."""

from __future__ import annotations

import hashlib
from typing import Any


def memory_of(a: Any) -> str:
    """What an array's memory belongs to: 'Frame' for a view of a received ZeroMQ frame
    (no copy), 'bytearray' for a copy made while decoding, else the owner's type."""
    import numpy as np
    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    if isinstance(a, memoryview):
        a = a.obj
    return type(a).__name__


def digest(a: Any) -> str:
    return hashlib.sha256(a.tobytes()).hexdigest()


def describe(*arrays: Any) -> list[tuple[str, tuple[int, ...], bool, str, str]]:
    """(dtype, shape, writable, memory_of, digest) of each argument, as the worker got
    it."""
    out = []
    for a in arrays:
        writable = bool(a.flags.writeable)
        if writable:
            a[(0,) * a.ndim] = a[(0,) * a.ndim]  # really writable: this would raise
        out.append((a.dtype.str, a.shape, writable, memory_of(a), digest(a)))
    return out


def twice(a: Any) -> Any:
    return a * 2


def ones(n: int, count: int = 1) -> Any:
    """`count` arrays of n bytes each."""
    import numpy as np
    return [np.ones(n, dtype=np.uint8) for _ in range(count)]
