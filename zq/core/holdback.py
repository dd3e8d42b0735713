"""The master's ACKs wait a little and go together (issue 18).

An ACK only lets a worker forget results that are durable already, so a late one loses
nothing: the worker keeps its results ACK_HOLD seconds longer (it sends them again after
a reconnect, and the master ignores duplicates), and a stopping worker waits that much
longer for its last ACK. What it saves: a worker in a round-trip loop handled an ACK in
a turn of its own after every task, and the master sent it one message more per task;
now one ACK names the results of ACK_HOLD seconds (HOLD_IDS at most, then it goes at
once). Measured in bench/README ("The round trip, step by step").

ACCEPTED is not held: a client with a small `max_unacked` would wait for it, and a held
one could only go before the RESULT it would have ridden with, on the round trip's path.
Pure: the loop (zq.master) sends what `hold` and `take_due` return.
"""

from __future__ import annotations

import math

from zq.core import messages as m

ACK_HOLD = 0.02  # seconds
HOLD_IDS = 1000


class AckHold:
    """Task ids to ACK, per worker, until the oldest has waited ACK_HOLD seconds."""

    __slots__ = ("_ids", "due")

    def __init__(self) -> None:
        self._ids: dict[bytes, list[str]] = {}
        self.due = math.inf  # monotonic time the held ACKs must go

    def __bool__(self) -> bool:
        return bool(self._ids)

    def hold(self, rid: bytes, ack: m.Ack, now: float) -> m.Ack | None:
        """Keep ack's ids; returns the ACK to send now instead (HOLD_IDS reached)."""
        ids = self._ids.get(rid)
        if ids is None:
            if not self._ids:
                self.due = now + ACK_HOLD
            ids = self._ids[rid] = []
        ids.extend(ack.ids)
        if len(ids) < HOLD_IDS:
            return None
        del self._ids[rid]
        if not self._ids:
            self.due = math.inf
        return m.Ack(ids)

    def take_due(self, now: float) -> list[tuple[bytes, m.Ack]]:
        """Every held ACK, once the oldest has waited ACK_HOLD; else nothing."""
        if now < self.due:
            return []
        return self.take_all()

    def take_all(self) -> list[tuple[bytes, m.Ack]]:
        out = [(rid, m.Ack(ids)) for rid, ids in self._ids.items()]
        self._ids, self.due = {}, math.inf
        return out
