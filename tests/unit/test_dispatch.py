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


def test_what_a_share_leaves_behind_goes_to_a_worker_with_free_credit():
    """The fair share counts every worker with free credit, here also one serving
    another queue, which takes none of these: the task its share left goes to a worker
    that can take it, in the same dispatch, not at the next turn (found by the core's
    state machine test: "w0 has 1 free credit beside queued tasks")."""
    s = MasterCore(master_id="t")
    s.advance(1.0, 1000.0)
    for rid, queues, concurrency, credit in ((b"w0", ["default"], 1, 3),
                                             (b"w1", ["default"], 1, 1),
                                             (b"w2", ["b"], 4, 4)):
        s.on_hello(rid, m.Hello(rid.decode(), "h", 1, queues, concurrency, "thread", credit,
                                []))
    s.flush()
    submit(s, 4)  # default
    s.on_submit(b"c", [("tb", "a:f", b"", {"queue": "b"})])
    assert leased(s) == {b"w0": 3, b"w1": 1, b"w2": 1}
    assert not any(q.best_priority() is not None for q in s.workers[b"w0"].ready_queues)
