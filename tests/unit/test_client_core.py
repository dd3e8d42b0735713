"""The client's session rules (zq.core.client_core), without sockets or threads."""

from __future__ import annotations

import ast
import inspect
from typing import Any

import pytest

from zq.core import client_core
from zq.core import messages as m
from zq.core.client_core import (
    ChunkOrder,
    ClientSession,
    Fanout,
    LinkAction,
    backoff,
    chunk_entries,
)
from zq.core.messages import State
from zq.errors import ConnectionLost, Rejected

OK = int(State.SUCCEEDED)


class Sink:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("on_"):
            raise AttributeError(name)
        return lambda *a: self.calls.append((name, *a))


def entry(tid: str, size: int = 1) -> m.SubmitEntry:
    return (tid, "app:f", b"x" * size, {})


def deliver(out: list) -> None:
    for name, sink, args in out:
        getattr(sink, name)(*args)


def session(now: float = 0.0, **kw: Any) -> ClientSession:
    s = ClientSession(batch_size=kw.pop("batch_size", 3), heartbeat_interval=1.0, liveness=3,
                      now=now, **kw)
    assert s.tick(now, 0.5)[0] is LinkAction.OPEN
    s.opened(now)
    return s


def kinds(msgs: list[m.Message]) -> list[str]:
    return [type(x).__name__ for x in msgs]


def test_the_core_does_no_io() -> None:
    tree = ast.parse(inspect.getsource(client_core))
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
             for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree)
              if isinstance(n, ast.ImportFrom) and n.module}
    assert not names & {"zmq", "time", "threading", "socket", "asyncio", "random"}


def test_chunk_order() -> None:
    o = ChunkOrder()
    assert o.push(1, 1, "b") == []
    assert o.push(1, 0, "a") == ["a", "b"]
    assert o.push(1, 0, "a") == []  # duplicate
    assert o.push(1, 3, "d") == []
    assert o.drain() == ["d"] and o.next_seq == 4
    assert o.push(1, 5, "f") == []
    assert o.push(2, 0, "A") == ["f", "A"]  # a retry: the old attempt's rest, then anew
    assert o.push(1, 6, "late") == []


def test_backoff_doubles_to_a_cap_with_jitter() -> None:
    assert backoff(1, 0.5, low=0.1, high=5) == pytest.approx(0.1)
    assert backoff(3, 0.5, low=0.1, high=5) == pytest.approx(0.4)
    assert backoff(30, 0.5, low=0.1, high=5) == pytest.approx(5)
    assert 0.075 <= backoff(1, 0.0, low=0.1, high=5) < backoff(1, 0.99, low=0.1, high=5) < 0.125


def test_chunk_entries_by_count_and_bytes() -> None:
    es = [entry(str(i)) for i in range(7)]
    assert [len(c) for c in chunk_entries(es, 3)] == [3, 3, 1]
    big = [entry(str(i), 40) for i in range(5)]
    assert [len(c) for c in chunk_entries(big, 10, max_bytes=100)] == [2, 2, 1]
    assert [len(c) for c in chunk_entries([entry("x", 500)], 10, max_bytes=100)] == [1]


def test_submit_accept_result() -> None:
    s, sink = session(), Sink()
    s.submit([entry(str(i)) for i in range(4)], [sink] * 4)
    out = s.take_outbox()
    assert kinds(out) == ["Submit", "Submit"] and len(out[0].entries) == 3
    assert s.received(m.Accepted(["0", "1", "nope"], {}), 1.0) == []
    assert s.acked == 2 and list(s.unacked) == ["2", "3"]
    deliver(s.received(m.Result([("0", OK, b"\x01"), ("1", int(State.RUNNING), b""),
                                 ("zz", OK, b"")]), 1.0))
    assert sink.calls == [("on_result", "0", OK, b"\x01")]
    assert "0" not in s.sinks and "1" in s.sinks  # a non-final state settles nothing


def test_rejected_and_watch_of_unknown() -> None:
    s, a, b = session(), Sink(), Sink()
    s.submit([entry("a")], [a])
    s.watch(["w"], [b])
    s.take_outbox()
    deliver(s.received(m.Rejected([("a", "no"), ("w", "unknown")]), 1.0))
    assert s.acked == 1 and not s.unacked and not s.sinks
    assert isinstance(a.calls[0][2], Rejected) and isinstance(b.calls[0][2], Rejected)


def test_watch_of_an_unacknowledged_id_sends_nothing() -> None:
    s, a, b = session(), Sink(), Sink()
    s.submit([entry("a")], [a])
    s.take_outbox()
    s.watch(["a"], [b])
    assert s.take_outbox() == []
    assert type(s.sinks["a"]) is Fanout
    deliver(s.received(m.Result([("a", OK, b"")]), 1.0))
    assert len(a.calls) == len(b.calls) == 1


def test_busy_holds_then_resends_and_drops_cancelled() -> None:
    s, sink = session(), Sink()
    s.submit([entry("a"), entry("b")], [sink, sink])
    s.cancel(["b"], sink)
    s.take_outbox()
    s.sent(1.0)
    s.received(m.Busy(["a", "b"], 0.5), 1.0)
    assert list(s.unacked) == ["a"] and s.acked == 1 and "b" not in s.cancelling
    assert s.next_deadline() == 1.5
    s.tick(1.2, 0.5)
    assert s.take_outbox() == []
    s.tick(1.5, 0.5)
    assert [e[0] for e in s.take_outbox()[0].entries] == ["a"]


def test_heartbeat_and_liveness() -> None:
    s = session()
    assert s.tick(1.0, 0.5) == (None, [])
    assert kinds(s.take_outbox()) == ["Heartbeat"]
    assert s.tick(10.0, 0.5)[0] is None  # nothing outstanding: silence is fine
    s.submit([entry("a")], [Sink()])
    assert s.tick(12.0, 0.5)[0] is None  # the window starts when work does
    assert s.tick(13.1, 0.5)[0] is LinkAction.CLOSE
    assert not s.connected and s.reopen_at == pytest.approx(13.2)
    s.submit([entry("b")], [Sink()])
    assert s.take_outbox() == []  # nothing is queued while disconnected
    assert s.tick(13.15, 0.5)[0] is None
    assert s.tick(13.2, 0.5)[0] is LinkAction.OPEN


def test_reopen_resends_watches_and_cancels() -> None:
    s, sink = session(), Sink()
    s.submit([entry("acked"), entry("open"), entry("gone")], [sink] * 3)
    s.received(m.Accepted(["acked", "gone"], {}), 0.5)
    s.cancel(["gone"], sink)
    s.take_outbox()
    assert s.dropped(1.0, 0.5) is LinkAction.CLOSE
    s.opened(2.0)
    out = s.take_outbox()
    assert kinds(out) == ["Submit", "Watch", "Cancel"]
    assert [e[0] for e in out[0].entries] == ["open"]
    assert sorted(out[1].ids) == ["acked", "gone"] and out[2].ids == ["gone"]
    s.received(m.Accepted(["open"], {}), 2.1)
    assert kinds(out := s.take_outbox()) == ["Watch"] and out[0].ids == ["open"]


def test_queries_resend_only_when_safe() -> None:
    s, r = session(), [Sink() for _ in range(4)]
    s.query(1, "status", {}, r[0], 10.0)
    s.query(2, "retry", {"id": "x"}, r[1], 10.0)
    s.take_outbox()
    s.dropped(1.0, 0.5)
    s.query(3, "purge", {}, r[2], 10.0)  # made while disconnected: never sent yet
    deliver(s.opened(2.0))
    assert sorted(q.request_id for q in s.take_outbox()) == [1, 3]
    assert r[1].calls[0][0] == "on_lost" and isinstance(r[1].calls[0][1], ConnectionLost)
    deliver(s.received(m.Reply(1, True, {"ok": 1}), 2.1))
    assert r[0].calls == [("on_reply", True, {"ok": 1})]
    s.query(4, "get", {}, r[3], 3.0)
    assert s.next_deadline() <= 3.0
    deliver(s.tick(3.0, 0.5)[1])
    assert r[3].calls == [("on_expired",)] and 4 not in s.queries  # the shell words it


def test_same_as_follows_the_existing_task() -> None:
    s, a, b = session(), Sink(), Sink()
    s.submit([entry("a"), entry("b")], [a, b])
    s.take_outbox()
    deliver(s.received(m.Accepted(["a", "b"], {"a": "x", "b": "x"}), 1.0))
    assert a.calls == [("on_followed", "a", "x")] and b.calls == [("on_followed", "b", "x")]
    assert s.take_outbox()[0].ids == ["x", "x"]
    deliver(s.received(m.Result([("x", OK, b"")]), 1.0))
    assert a.calls[-1][0] == b.calls[-1][0] == "on_result"


def test_cancel_all_and_abandon() -> None:
    s, a, q = session(), Sink(), Sink()
    s.submit([entry("a")], [a])
    s.query(1, "status", {}, q, 9.0)
    s.take_outbox()
    deliver(s.cancel_all())
    assert a.calls == [("on_cancelled", "a")] and s.cancelling == {"a"}
    assert kinds(s.take_outbox()) == ["Cancel"]
    deliver(s.abandon(ConnectionLost("closed")))
    assert q.calls[0][0] == "on_lost" and not s.outstanding
