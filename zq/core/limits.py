"""Defaults and bounds that more than one module needs, each defined once here. (The
wire's own bounds, such as ids, names and inline payload size, live in codec.py.)"""

from __future__ import annotations

MAX_MESSAGE = 256 * 1024 * 1024  # bytes per frame, by default; a larger frame drops the peer
MAX_QUEUED = 5_000_000  # queued tasks, by default; above this SUBMIT gets BUSY
RESULT_TTL = 86400.0  # seconds a final task's result is kept, by default
MAX_NESTING = 32  # levels of arrays and maps in a query's or a schedule's arguments
