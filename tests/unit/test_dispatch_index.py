"""Dispatch reads its workers from an index (zq.core.offers) instead of sorting every
connected worker each tick: the same leases as the sort it replaced, for any mix of
slots, credit, leases, idle times and ties; a tick reads only the workers it offers to;
many single-slot workers take turns (oldest idle first), none starves."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from zq.core import messages as m
from zq.core.master_core import MasterCore
from zq.core.messages import Outcome


def hello(rid: bytes, concurrency: int, credit: int) -> m.Hello:
    return m.Hello(rid.decode(), "h", 1, ["default"], concurrency, "thread", credit, [])


def submit(s: MasterCore, n: int, start: int = 0) -> list[str]:
    ids = [f"t{i}" for i in range(start, start + n)]
    s.on_submit(b"c", [(tid, "a:f", b"", {}) for tid in ids])
    return ids


def leases(s: MasterCore) -> dict[bytes, list[str]]:
    """The TASK entries of the turn, per worker."""
    out: dict[bytes, list[str]] = {}
    for rid, msg in s.flush().messages:
        if isinstance(msg, m.Task):
            out.setdefault(rid, []).extend(e[0] for e in msg.entries)
    return out


# --- the sort dispatch used before the index, as the reference ---------------------------

def reference(workers: list[Any], queued: int, limit: int) -> dict[bytes, int]:
    """Tasks per worker as the sorting dispatch leased them: idle slots first (most
    first, longest idle first, then registration order), then water-filling of the rest
    (least free credit first, ties the other way round), a fair share each."""
    leased = {w.rid: 0 for w in workers}
    held = {w.rid: len(w.leased) for w in workers}

    def free(w: Any) -> int:
        return 0 if w.overdue else w.credit - held[w.rid]

    def slots(w: Any) -> int:
        return 0 if w.overdue else w.concurrency - held[w.rid]

    def give(w: Any, n: int) -> None:
        nonlocal queued, left
        n = min(n, queued)
        leased[w.rid] += n
        held[w.rid] += n
        queued -= n
        left -= n

    left = limit
    candidates = [w for w in workers if free(w) > 0]
    for w in sorted([w for w in candidates if slots(w) > 0], key=lambda w: (-slots(w),
                                                                           w.idle_since)):
        give(w, min(free(w), slots(w), left))
        if not queued or left <= 0:
            return leased
    order = sorted([w for w in candidates if free(w) > 0],
                   key=lambda w: (-free(w), w.idle_since))[::-1]
    for i, w in enumerate(order):
        give(w, min(free(w), -(-queued // (len(order) - i)), left))
        if not queued or left <= 0:
            break
    return leased


WORKER = st.tuples(st.integers(1, 4),  # concurrency
                   st.integers(0, 8),  # credit
                   st.integers(0, 8),  # tasks it holds already
                   st.sampled_from([0.0, 1.0, 2.0]),  # idle since (ties likely)
                   st.booleans())  # a task past its time limit unanswered (offered nothing)


@settings(max_examples=300, deadline=None)
@given(workers=st.lists(WORKER, min_size=1, max_size=12), queued=st.integers(1, 60),
       limit=st.integers(1, 80), rounds=st.integers(1, 3))
def test_the_index_leases_as_the_sort_did(workers: list[tuple[int, int, int, float, bool]],
                                          queued: int, limit: int, rounds: int) -> None:
    s = MasterCore(master_id="t")
    s.advance(5.0, 1000.0)
    for i, (concurrency, credit, holds, since, overdue) in enumerate(workers):
        rid = f"w{i:02}".encode()
        s.on_hello(rid, hello(rid, concurrency, credit))
        w = s.workers[rid]
        # States a long run reaches, set directly; marked as the core's own changes do.
        w.leased.update(f"held-{i}-{k}" for k in range(holds))
        w.idle_since = since
        if overdue:
            w.overdue.add(f"late-{i}")
        s.offers.mark(rid)
    s.flush()
    for r in range(rounds):  # the index carries its state from one tick to the next
        submit(s, queued, start=1000 * r)
        expected = reference(list(s.workers.values()), s.counts[m.State.QUEUED], limit)
        s.dispatch(limit)
        got = {rid: len(ids) for rid, ids in leases(s).items()}
        assert {rid: n for rid, n in expected.items() if n} == got


class Counting(dict):  # type: ignore[type-arg]
    """The core's workers table, counting the workers read out of it."""

    reads = 0

    def values(self) -> Any:
        Counting.reads += len(self)
        return super().values()

    def items(self) -> Any:
        Counting.reads += len(self)
        return super().items()

    def __iter__(self) -> Any:
        Counting.reads += len(self)
        return super().__iter__()

    def get(self, key: Any, default: Any = None) -> Any:
        Counting.reads += 1
        return super().get(key, default)

    def __getitem__(self, key: Any) -> Any:
        Counting.reads += 1
        return super().__getitem__(key)


def test_a_tick_reads_the_workers_it_offers_to_not_every_worker() -> None:
    """1,000 workers, one task a tick: each tick reads a few workers (before: all 1,000,
    sorted, every tick, ~3 ms)."""
    s = MasterCore(master_id="t")
    s.advance(1.0, 1000.0)
    for i in range(1000):
        rid = f"w{i}".encode()
        s.on_hello(rid, hello(rid, 1, 2))
    s.flush()
    s.workers = Counting(s.workers)
    submit(s, 1)
    s.dispatch()  # the first tick indexes the 1,000 workers that just registered
    leases(s)
    for k in range(50):
        Counting.reads = 0
        submit(s, 1, start=1 + k)
        s.dispatch()
        assert len(leases(s)) == 1
        assert Counting.reads <= 4, f"tick {k} read {Counting.reads} workers"
    s.validate()


def test_many_single_slot_workers_take_turns_and_none_starves() -> None:
    """200 single-slot workers, a task at a time, each answered before the next: the
    longest idle goes first, so all 200 get one before any gets a second."""
    s = MasterCore(master_id="t")
    s.advance(1.0, 1000.0)
    rids = [f"w{i:03}".encode() for i in range(200)]
    for rid in rids:
        s.on_hello(rid, hello(rid, 1, 2))
    s.flush()
    order: list[bytes] = []
    now = 1.0
    for k in range(400):
        submit(s, 1, start=k)
        s.dispatch()
        (rid, ids), = leases(s).items()
        order.append(rid)
        now += 0.01
        s.advance(now, 1000.0 + now)
        w = s.touch_worker(rid)
        assert w is not None
        s.on_worker_results(w, [(ids[0], 1, int(Outcome.OK), b"r")])
        s.flush()
        s.validate()
    assert order[:200] == rids  # registered at once: in registration order
    assert order[200:] == rids  # then by how long each has been idle: the same turn again
