"""Tasks the workflow tests run (canvas: chains, groups, chords; issue 17)."""

from __future__ import annotations

import time

import zq


@zq.task
def add(a, b):
    return a + b


@zq.task
def mul(a, b):
    return a * b


@zq.task
def total(values, start=0):
    return start + sum(values)


@zq.task
def fail(message):
    raise ValueError(message)


def slow(seconds, value):
    """Not a @zq.task: reached by name with zq.sig()."""
    time.sleep(seconds)
    return value
