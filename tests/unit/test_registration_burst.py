"""A burst of HELLOs (1,000 workers re-registering after a master restart) costs the
master the same per HELLO whatever the number registered: a HELLO reads no other
worker, and the first dispatch after the burst reads each new worker a fixed number
of times."""

from __future__ import annotations

from tests.unit.test_dispatch_index import Counting, hello, leases, submit
from zq.core import messages as m
from zq.core.master_core import MasterCore


def test_a_hello_reads_no_other_worker() -> None:
    s = MasterCore(master_id="t")
    s.advance(1.0, 1000.0)
    s.workers = Counting()
    for i in range(1000):
        Counting.reads = 0
        rid = f"w{i}".encode()
        s.on_hello(rid, hello(rid, 4, 8))
        assert Counting.reads <= 2, f"HELLO {i} read {Counting.reads} workers"
    s.flush()
    Counting.reads = 0
    submit(s, 4000)
    s.dispatch()
    assert sum(len(ids) for ids in leases(s).values()) == 4000  # 4 slots each
    assert Counting.reads <= 3 * 1000  # each indexed, read, indexed again after its lease
    s.validate()


def test_a_worker_registering_again_on_its_connection_is_offered_anew() -> None:
    """The same rid says HELLO again (a reconnect the master did not see): its old
    entry in the offers is not used, the new registration is."""
    s = MasterCore(master_id="t")
    s.advance(1.0, 1000.0)
    s.on_hello(b"a", hello(b"a", 1, 1))
    s.on_hello(b"b", hello(b"b", 1, 1))
    s.flush()
    submit(s, 1)
    s.dispatch()
    assert list(leases(s)) == [b"a"]
    s.on_hello(b"a", m.Hello("a", "h", 1, ["default"], 3, "thread", 3, []))  # lost its task
    s.flush()
    s.dispatch()
    got = leases(s)
    assert got == {b"a": ["t0"]}  # requeued at the front, a has 3 idle slots now
    s.validate()
