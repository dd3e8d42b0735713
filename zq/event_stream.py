"""Reading the master's event stream (protocol 1.3) on a socket of its own: subscribe
with a filter, renew (acknowledging what was read) every RENEW seconds, yield each
event and each counted gap. Used by `zq events`, `zq top` and `zq dashboard`.

Given several masters (`--connect a,b`: one active, the others standbys), the
subscription goes round the list, following a standby's STANDBY hint, until one master
answers it; the stream then stays with that master (a failover later ends it: run the
command again)."""

from __future__ import annotations

import time
from typing import Any, Iterator, Sequence

import zmq

from zq import transport
from zq.core import codec
from zq.core import messages as m
from zq.core.messages import Role
from zq.errors import ConnectionLost, ProtocolError, Rejected
from zq.masters import MasterList
from zq.security import PeerKeys

RENEW = 2.0  # seconds between renewals (the master forgets a subscription after 10 s)


class _Standby(Exception):
    def __init__(self, active: str) -> None:
        super().__init__(active)
        self.active = active


class EventStream:
    """One subscription. `events(deadline)` yields dicts: the events, and
    {"kind": "gap", "dropped": N} where the master left N out (this reader fell behind)."""

    def __init__(self, connect: str | Sequence[str], keys: PeerKeys | None = None, *,
                 queue: str | None = None, task: str | None = None,
                 kinds: list[str] | None = None, answer_within: float = 3.0) -> None:
        self.filter: dict[str, Any] = {k: v for k, v in (
            ("queue", queue), ("task", task), ("kinds", kinds)) if v}
        self.answer_within = answer_within
        self.ctx = zmq.Context()
        self.keys = keys
        self.masters = MasterList(connect)
        self.endpoint = self.masters.next()  # the master subscribed to (or tried)
        self.sock = transport.peer_socket(self.ctx, self.endpoint, keys=keys)
        self.seen = 0  # events read (acknowledged at the next renewal)
        self.requests = 0
        self.next_renew = 0.0

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def subscribe(self) -> dict[str, Any]:
        """Subscribe and wait for the answer, going round the masters (each waited for
        answer_within seconds at most, the list twice at most) while they answer STANDBY
        or nothing; events that come first are kept for events(). Raises Rejected (a
        refused filter) or ConnectionLost, naming the last standby's hint if any."""
        hint = None
        for _ in range(2 * len(self.masters.endpoints)):
            try:
                return self._subscribe_here()
            except _Standby as e:
                hint = e.active
                self.masters.follow(e.active)
            except ConnectionLost:
                if len(self.masters.endpoints) == 1:
                    raise
            self.sock.close(0)
            self.endpoint = self.masters.next()
            self.sock = transport.peer_socket(self.ctx, self.endpoint, keys=self.keys)
        if hint is not None:
            raise ConnectionLost("no active zq master answered the subscription: "
                                 f"standbys only{f', naming {hint} as active' if hint else ''}")
        raise ConnectionLost("no zq master answered the subscription within "
                             f"{self.answer_within:g}s (is it running?)")

    def _subscribe_here(self) -> dict[str, Any]:
        self._ask()
        deadline = time.monotonic() + self.answer_within
        self._early: list[m.Events] = []
        while (left := deadline - time.monotonic()) > 0:
            if not self.sock.poll(int(left * 1000) + 1):
                break
            msg = self._recv()
            if isinstance(msg, m.Reply) and msg.request_id == self.requests:
                if not msg.ok:
                    raise Rejected(str(msg.body))
                return dict(msg.body)
            if isinstance(msg, m.Events):
                self._early.append(msg)
            elif isinstance(msg, m.Error):
                raise Rejected(msg.reason)
            elif isinstance(msg, m.Standby):
                raise _Standby(msg.active)
        raise ConnectionLost("no zq master answered the subscription within "
                             f"{self.answer_within:g}s (is it running?)")

    def events(self, until: float | None = None) -> Iterator[dict[str, Any]]:
        """Events as they come, until the monotonic time `until` (None: for ever)."""
        pending, self._early = getattr(self, "_early", []), []
        for batch in pending:
            yield from self._unpack(batch)
        while until is None or time.monotonic() < until:
            now = time.monotonic()
            if now >= self.next_renew:
                self._ask()
            wait = self.next_renew - now if until is None else min(self.next_renew, until) - now
            if not self.sock.poll(max(1, int(wait * 1000))):
                continue
            msg = self._recv()
            if isinstance(msg, m.Events):
                yield from self._unpack(msg)
            elif isinstance(msg, m.Reply) and not msg.ok:
                raise Rejected(str(msg.body))

    def drain(self) -> list[dict[str, Any]]:
        """What has come in so far, without waiting (renewing when due)."""
        out: list[dict[str, Any]] = []
        for batch in getattr(self, "_early", []):
            out.extend(self._unpack(batch))
        self._early = []
        if time.monotonic() >= self.next_renew:
            self._ask()
        while self.sock.poll(0):
            msg = self._recv()
            if isinstance(msg, m.Events):
                out.extend(self._unpack(msg))
        return out

    def _unpack(self, batch: m.Events) -> Iterator[dict[str, Any]]:
        if batch.dropped:
            yield {"kind": "gap", "dropped": batch.dropped}
        self.seen = batch.first + len(batch.events)
        yield from batch.events

    def _ask(self) -> None:
        self.requests += 1
        transport.send(self.sock, Role.CLIENT, m.Query(
            self.requests, "events", {**self.filter, "seen": self.seen}))
        self.next_renew = time.monotonic() + RENEW

    def _recv(self) -> m.Message | None:
        try:
            _, msg = codec.decode(self.sock.recv_multipart())
        except ProtocolError:
            return None  # not for us to act on; the stream goes on
        return msg
