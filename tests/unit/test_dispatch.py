"""Dispatch: tasks that can start at once go first, prefetch is a fair share."""

from __future__ import annotations

from zq.core import messages as m
from zq.core.master_core import MasterCore


def setup(workers: dict[bytes, tuple[int, int]]) -> MasterCore:
    s = MasterCore(master_id="t")
    s.advance(1.0, 1000.0)
    for rid, (concurrency, credit) in workers.items():
        s.on_hello(rid, m.Hello(rid.decode(), "h", 1, ["default"], concurrency, "thread",
                                credit, []))
    s.flush()
    return s


def leased(s: MasterCore) -> dict[bytes, int]:
    s.dispatch()
    out = {rid: 0 for rid in s.workers}
    for rid, msg in s.flush().messages:
        if isinstance(msg, m.Task):
            out[rid] += len(msg.entries)
    s.validate()
    return out


def submit(s: MasterCore, n: int, start: int = 0) -> None:
    s.on_submit(b"c", [(f"t{i}", "a:f", b"", {}) for i in range(start, start + n)])


def test_idle_slots_first_then_a_fair_share_of_prefetch():
    s = setup({b"a": (2, 100), b"b": (2, 100)})
    submit(s, 6)
    assert leased(s) == {b"a": 3, b"b": 3}  # 2 + 2 start now, the 2 left are shared


def test_a_busy_worker_gets_prefetch_only_after_idle_slots_elsewhere():
    s = setup({b"busy": (2, 100)})
    submit(s, 2)
    assert leased(s) == {b"busy": 2}  # its two slots are taken now
    s.on_hello(b"idle", m.Hello("idle", "h", 1, ["default"], 2, "thread", 100, []))
    s.flush()
    submit(s, 2, start=2)
    assert leased(s) == {b"busy": 0, b"idle": 2}  # not prefetched onto the busy one


def test_a_single_worker_takes_everything_up_to_its_credit():
    s = setup({b"a": (2, 50)})
    submit(s, 80)
    assert leased(s) == {b"a": 50}


def test_never_more_than_credit_even_with_a_big_share():
    s = setup({b"a": (1, 3), b"b": (1, 30)})
    submit(s, 40)
    got = leased(s)
    assert got[b"a"] == 3 and got[b"b"] == 30
