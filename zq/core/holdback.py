"""The master's ACKs wait a little and go together (issue 18).

An ACK only lets a worker forget results that are durable already, so a late one loses
nothing: the worker keeps its results ACK_HOLD seconds longer (it sends them again after
a reconnect, and the master ignores duplicates), and a stopping worker waits that much
longer for its last ACK. What it saves: a worker in a round-trip loop handled an ACK in
a turn of its own after every task, and the master sent it one message more per task;
now one ACK names the results of ACK_HOLD seconds (HOLD_IDS at most, then it goes at
once). A held ACK goes at once, before it, when a TASK or CANCEL names one of its tasks
(an earlier attempt's ACK must not reach the worker after the next attempt's TASK).
Measured in bench/README ("The round trip, step by step").

ACCEPTED is not held: a client with a small `max_unacked` would wait for it, and a held
one could only go before the RESULT it would have ridden with, on the round trip's path.
Pure: the loop (zq.master) sends what `hold` and `take_due` return.
"""

from __future__ import annotations

import math
from typing import Iterable

from zq.core import messages as m

ACK_HOLD = 0.02  # seconds
HOLD_IDS = 1000


class AckHold:
    """Task ids to ACK, per worker, until the oldest has waited ACK_HOLD seconds."""

    __slots__ = ("_ids", "due")

    def __init__(self) -> None:
        # per worker, its held ids as the keys of a dict: in order, and a TASK's ids are
        # looked up in them without building a set (before(), once per TASK sent)
        self._ids: dict[bytes, dict[str, None]] = {}
        self.due = math.inf  # monotonic time the held ACKs must go

    def __bool__(self) -> bool:
        return bool(self._ids)

    def hold(self, rid: bytes, ack: m.Ack, now: float) -> list[m.Ack]:
        """Keep ack's ids; returns the ACKs to send now instead: what was held and ack,
        each as large as it came, once together they reach HOLD_IDS."""
        held = self._ids.get(rid)
        if held is None:
            if len(ack.ids) >= HOLD_IDS:
                return [ack]
            if not self._ids:
                self.due = now + ACK_HOLD
            self._ids[rid] = dict.fromkeys(ack.ids)
            return []
        if len(held) + len(ack.ids) >= HOLD_IDS:
            self._drop(rid)
            return [m.Ack(list(held)), ack]
        held.update(dict.fromkeys(ack.ids))
        return []

    def before(self, rid: bytes, ids: Iterable[str]) -> m.Ack | None:
        """The held ACK that must go before a message naming these task ids to rid (a
        TASK or a CANCEL): the worker keeps its results by task id alone, so an ACK of
        an earlier attempt that came after a new attempt's TASK would make it forget the
        new attempt's result."""
        held = self._ids.get(rid)
        if held is None or held.keys().isdisjoint(ids):
            return None
        self._drop(rid)
        return m.Ack(list(held))

    def take_due(self, now: float) -> list[tuple[bytes, m.Ack]]:
        """Every held ACK, once the oldest has waited ACK_HOLD; else nothing."""
        if now < self.due:
            return []
        return self.take_all()

    def take_all(self) -> list[tuple[bytes, m.Ack]]:
        out = [(rid, m.Ack(list(ids))) for rid, ids in self._ids.items()]
        self._ids, self.due = {}, math.inf
        return out

    def _drop(self, rid: bytes) -> None:
        self._ids.pop(rid, None)
        if not self._ids:
            self.due = math.inf
