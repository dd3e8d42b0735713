"""A payload with frames of its own (a task value's large numpy arrays, protocol 1.4) is
kept by every durable store, as the task's arguments and as its result, and comes back
from load() and get() as the same Parts, so a durable task's arrays survive a restart."""

from __future__ import annotations

import os

from tests.store.test_contract import durable, kind, load, opener  # noqa: F401
from zq.core.messages import State
from zq.core.parts import Parts
from zq.core.tasks import TaskRecord


def test_parts_payloads_and_results_survive_a_reopen(durable) -> None:  # noqa: F811
    args = Parts(b"\x92\x91\xc7\x01\x0f\x00\x80", [os.urandom(300_000), memoryview(b"ab")])
    result = Parts(b"\x91\x00", [bytearray(os.urandom(70_000))])
    small = Parts(b"\x90", [b"x"])
    store = durable()
    store.save([TaskRecord("big", "app:f", args, seq=1),
                TaskRecord("small", "app:f", small, seq=2),
                TaskRecord("plain", "app:f", b"\x90", seq=3)])
    store.commit()
    done = TaskRecord("small", "app:f", small, seq=2, state=State.SUCCEEDED, result=result)
    store.update([done])
    store.commit()
    store.close()
    again = durable()
    loaded = {r.id: r for r in load(again)}
    assert loaded["big"].payload == args
    assert loaded["small"].payload == small and loaded["small"].result == result
    assert loaded["plain"].payload == b"\x90" and loaded["plain"].result is None
    one = again.get("small")
    assert one is not None and one.payload == small and one.result == result
