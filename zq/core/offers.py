"""The workers dispatch may offer tasks to, kept in the two orders it reads them in
(zq.core.dispatch): by idle slots, most first, and by free credit, least first. A tick
that leases a few tasks reads a few workers from the front of an order instead of
sorting every connected worker (1,000 workers: ~3 ms a tick before, whatever the
number of tasks leased).

The orders are heaps with lazy deletion. A worker whose slots, credit, leases, idle
mark or ready queues may have changed is marked (``mark``), and ``refresh`` indexes it
again before the next read; an entry that is not its worker's latest is skipped when
it comes up. Whatever changes those fields marks the worker: a message from it
(workers.touch_worker), a lease (dispatch reads and marks), a lease lost or taken over,
a result for its task from another worker, a new ready queue it serves.
``check`` (MasterCore.validate) proves no change went unmarked.
"""

from __future__ import annotations

import heapq
from typing import Any, Iterator

# (order key..., token, rid): the token tells the worker's latest entry from older ones
Entry = tuple[Any, ...]

# Stale entries kept before a heap is rebuilt from the live ones: this many per worker.
SLACK = 4


def idle_key(w: Any, ordinal: int) -> tuple[int, float, int] | None:
    """Where w stands among the workers with idle slots (most slots first, longest idle
    first, then the earliest registered); None if it has none to offer."""
    if w.overdue or not w.ready_queues:
        return None
    slots = w.concurrency - len(w.leased)
    if slots <= 0 or w.credit - len(w.leased) <= 0:
        return None
    return (-slots, w.idle_since, ordinal)


def free_key(w: Any, ordinal: int) -> tuple[int, float, int] | None:
    """Where w stands among the workers with free credit: least free first (water
    filling: what one cannot take flows on), then the most recently idle, then the
    latest registered; None if it has no credit free."""
    if w.overdue or not w.ready_queues:
        return None
    free = w.credit - len(w.leased)
    if free <= 0:
        return None
    return (free, -w.idle_since, -ordinal)


class OfferIndex:
    """Workers that may take tasks, in dispatch's two orders (see the module)."""

    __slots__ = ("_idle", "_free", "_live", "_ordinal", "_next", "_dirty", "_token",
                 "free_count")

    def __init__(self) -> None:
        self._idle: list[Entry] = []  # heap: (*idle_key, token, rid)
        self._free: list[Entry] = []  # heap: (*free_key, token, rid)
        # rid -> (its idle entry or None, its free entry or None), as last indexed
        self._live: dict[bytes, tuple[Entry | None, Entry | None]] = {}
        self._ordinal: dict[bytes, int] = {}  # rid -> registration order (ties)
        self._next = 0
        self._dirty: set[bytes] = set()
        self._token = 0
        self.free_count = 0  # workers with a free-credit entry (dispatch's fair share)

    def added(self, rid: bytes) -> None:
        """A worker registered on rid (again: it goes last among equals, as a new one)."""
        self._next += 1
        self._ordinal[rid] = self._next
        self._dirty.add(rid)

    def mark(self, rid: bytes) -> None:
        """What the worker on rid may be offered changed (or it left)."""
        self._dirty.add(rid)

    def mark_all(self, rids: Any) -> None:
        self._dirty.update(rids)

    def refresh(self, workers: dict[bytes, Any]) -> None:
        """Index again every marked worker (one gone is dropped)."""
        if not self._dirty:
            return
        live, idle, free = self._live, self._idle, self._free
        for rid in self._dirty:
            w = workers.get(rid)
            if w is None:
                self._drop(rid)
                self._ordinal.pop(rid, None)
                continue
            ordinal = self._ordinal[rid]
            ik, fk = idle_key(w, ordinal), free_key(w, ordinal)
            old = live.get(rid)
            if old is not None and _same(old[0], ik) and _same(old[1], fk):
                continue  # unchanged (a heartbeat): its entries stand
            self._drop(rid)
            self._token += 1
            ie = None if ik is None else (*ik, self._token, rid)
            fe = None if fk is None else (*fk, self._token, rid)
            if ie is not None:
                heapq.heappush(idle, ie)
            if fe is not None:
                heapq.heappush(free, fe)
            if ie is not None or fe is not None:
                live[rid] = (ie, fe)
                self.free_count += fe is not None
        self._dirty.clear()
        if len(idle) + len(free) > SLACK * (len(live) + 16):
            self._rebuild()

    def by_idle_slots(self, workers: dict[bytes, Any]) -> Iterator[Any]:
        """Workers with idle slots, most first. Each one read is marked (the caller may
        lease to it); stop reading at any point, the rest keeps its place."""
        return self._read(self._idle, 0, workers)

    def by_free_credit(self, workers: dict[bytes, Any]) -> Iterator[Any]:
        """Workers with free credit, least first (read as by_idle_slots)."""
        return self._read(self._free, 1, workers)

    def _read(self, heap: list[Entry], which: int, workers: dict[bytes, Any]
              ) -> Iterator[Any]:
        live = self._live
        while heap:
            entry = heapq.heappop(heap)
            rid = entry[-1]
            cur = live.get(rid)
            if cur is None or cur[which] is not entry:
                continue  # an older entry, or its worker was read already
            self._drop(rid)
            self._dirty.add(rid)  # read (and maybe leased to): indexed again at refresh
            yield workers[rid]

    def _drop(self, rid: bytes) -> None:
        """rid's entries stop being its latest (they are skipped where they lie)."""
        old = self._live.pop(rid, None)
        if old is not None and old[1] is not None:
            self.free_count -= 1

    def _rebuild(self) -> None:
        live = self._live
        self._idle = [e for e, _ in live.values() if e is not None]
        self._free = [e for _, e in live.values() if e is not None]
        heapq.heapify(self._idle)
        heapq.heapify(self._free)

    def check(self, workers: dict[bytes, Any]) -> None:
        """For MasterCore.validate: every worker not marked is indexed where its fields
        say, in both orders, and nothing else is."""
        for rid, w in workers.items():
            assert rid in self._ordinal, f"worker {w.name} was never added to the offers"
            if rid in self._dirty:
                continue
            ordinal = self._ordinal[rid]
            ie, fe = self._live.get(rid, (None, None))
            for entry, key, order in ((ie, idle_key(w, ordinal), "idle slots"),
                                      (fe, free_key(w, ordinal), "free credit")):
                assert _same(entry, key), (
                    f"worker {w.name} is offered by {order} as {entry and entry[:3]}, but "
                    f"its fields say {key}: a change to it was not marked")
        for rid in self._live:
            assert rid in workers or rid in self._dirty, "a gone worker is still offered"
        assert self.free_count == sum(1 for _, fe in self._live.values() if fe is not None), \
            "free_count drifted"
        for heap, which in ((self._idle, 0), (self._free, 1)):
            for e in self._live.values():
                if e[which] is not None:
                    assert e[which] in heap, "a live offer entry is missing from its heap"


def _same(entry: Entry | None, key: tuple[Any, ...] | None) -> bool:
    if entry is None or key is None:
        return entry is None and key is None
    return entry[:len(key)] == key
