"""The client's session rules (zq.core.client_core), without sockets or threads: events in,
the whole list of commands out, and the core's invariants checked after every step."""

from __future__ import annotations

import ast
import inspect
from typing import Any

import pytest

from zq.core import client_core
from zq.core import client_events as ce
from zq.core import messages as m
from zq.core.backoff import CLIENT_JITTER, compute_backoff
from zq.core.client_core import ClientCore, chunk_entries
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


class Checked(ClientCore):
    """The core with validate() after every step (as Dask's state machine tests do)."""

    def handle(self, event: Any) -> list[ce.Command]:
        out = super().handle(event)
        self.validate()
        return out

    def tick(self, now: float) -> list[ce.Command]:
        out = super().tick(now)
        self.validate()
        return out


def entry(tid: str, size: int = 1) -> m.SubmitEntry:
    return (tid, "app:f", b"x" * size, {})


def received(s: ClientCore, msg: m.Message, now: float = 1.0) -> list[ce.Command]:
    return s.handle(ce.MessageReceived(msg, now))


def deliver(out: list[ce.Command]) -> None:
    """What the shell does with the settling commands (enough for these tests)."""
    for c in out:
        if type(c) is ce.SettleResults:
            for sink, e in c.items:
                sink.on_result(*e)
        elif type(c) is ce.FailTasks:
            for sink, tid, exc in c.items:
                sink.on_failed(tid, exc)


def session(now: float = 0.0, **kw: Any) -> ClientCore:
    s = Checked(batch_size=kw.pop("batch_size", 3), heartbeat_interval=1.0, liveness=3,
                now=now, rand=kw.pop("rand", lambda: 0.5), **kw)
    assert s.tick(now) == [ce.OpenConnection()]
    assert s.handle(ce.LinkOpened(now)) == []
    return s


def kinds(out: list[ce.Command]) -> list[str]:
    """The messages sent, by name."""
    return [type(c.message).__name__ for c in out if type(c) is ce.Send]


def link(out: list[ce.Command]) -> list[ce.Command]:
    return [c for c in out if type(c) in (ce.OpenConnection, ce.CloseConnection)]


@pytest.mark.parametrize("module", [client_core, ce])
def test_the_core_does_no_io(module: Any) -> None:
    tree = ast.parse(inspect.getsource(module))
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
             for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree)
              if isinstance(n, ast.ImportFrom) and n.module}
    assert not names & {"zmq", "time", "threading", "socket", "asyncio", "random"}


def test_chunk_order() -> None:
    o = ce.ChunkOrder()
    assert o.push(1, 1, "b") == []
    assert o.push(1, 0, "a") == ["a", "b"]
    assert o.push(1, 0, "a") == []  # duplicate
    assert o.push(1, 3, "d") == []
    assert o.drain() == ["d"] and o.next_seq == 4
    assert o.push(1, 5, "f") == []
    assert o.push(2, 0, "A") == ["f", "A"]  # a retry: the old attempt's rest, then anew
    assert o.push(1, 6, "late") == []


def reconnect_wait(retries: int, rand: float) -> float:
    """Seconds the core waits before reopening after its `retries`-th lost link."""
    s = session(rand=lambda: rand)
    s.retries = retries - 1
    assert s.handle(ce.LinkDropped(0.0)) == [ce.CloseConnection(None)]
    return s.reopen_at


def test_reconnect_waits_double_to_a_cap_with_jitter() -> None:
    assert reconnect_wait(1, 0.5) == pytest.approx(0.1)
    assert reconnect_wait(3, 0.5) == pytest.approx(0.4)
    assert reconnect_wait(30, 0.5) == pytest.approx(5)
    assert 0.075 <= reconnect_wait(1, 0.0) < reconnect_wait(1, 0.99) < 0.125


def test_a_client_that_reconnected_a_thousand_times_still_gets_a_wait() -> None:
    """The client's own backoff raised OverflowError (2.0 ** 1100) once its master had
    been away for ~1,100 reconnects (about 90 minutes at the 5 s cap): its loop died.
    (Moved from tests/unit/test_backoff.py with client_core.backoff, which is gone.)"""
    assert reconnect_wait(1_100, 0.5) == pytest.approx(5.0)
    assert reconnect_wait(10 ** 9, 0.0) == pytest.approx(3.75)


def test_reconnect_waits_are_the_one_backoff() -> None:
    for retries in range(1, 40):
        for r in (0.0, 0.3, 0.999):
            assert reconnect_wait(retries, r) == pytest.approx(compute_backoff(
                retries, base=0.1, cap=5.0, rand=r, jitter=CLIENT_JITTER))


def test_chunk_entries_by_count_and_bytes() -> None:
    es = [entry(str(i)) for i in range(7)]
    assert [len(c) for c in chunk_entries(es, 3)] == [3, 3, 1]
    big = [entry(str(i), 40) for i in range(5)]
    assert [len(c) for c in chunk_entries(big, 10, max_bytes=100)] == [2, 2, 1]
    assert [len(c) for c in chunk_entries([entry("x", 500)], 10, max_bytes=100)] == [1]


def test_submit_accept_result() -> None:
    s, sink = session(), Sink()
    out = s.handle(ce.Submitted([entry(str(i)) for i in range(4)], [sink] * 4))
    assert kinds(out) == ["Submit", "Submit"] and len(out[0].message.entries) == 3
    assert received(s, m.Accepted(["0", "1", "nope"], {})) == [ce.FreeRoom(2)]
    assert s.acked == 2 and list(s.unacked) == ["2", "3"]
    out = received(s, m.Result([("0", OK, b"\x01"), ("1", int(State.RUNNING), b""),
                                ("zz", OK, b"")]))
    assert out == [ce.SettleResults([(sink, ("0", OK, b"\x01"))])]
    assert "0" not in s.sinks and "1" in s.sinks  # a non-final state settles nothing


def test_rejected_and_watch_of_unknown() -> None:
    s, a, b = session(), Sink(), Sink()
    s.handle(ce.Submitted([entry("a")], [a]))
    s.handle(ce.WatchRequested(["w"], [b]))
    out = received(s, m.RejectedEntries([("a", "no"), ("w", "unknown")]))
    assert out[0] == ce.FreeRoom(1) and len(out) == 2
    assert [(sink, tid) for sink, tid, _ in out[1].items] == [(a, "a"), (b, "w")]
    assert all(isinstance(exc, Rejected) for _, _, exc in out[1].items)
    assert s.acked == 1 and not s.unacked and not s.sinks


def test_watch_of_an_unacknowledged_id_sends_nothing() -> None:
    s, a, b = session(), Sink(), Sink()
    s.handle(ce.Submitted([entry("a")], [a]))
    assert s.handle(ce.WatchRequested(["a"], [b])) == []
    assert type(s.sinks["a"]) is ce.Fanout
    deliver(received(s, m.Result([("a", OK, b"")])))
    assert len(a.calls) == len(b.calls) == 1


def test_busy_holds_then_resends_and_drops_cancelled() -> None:
    s, sink = session(), Sink()
    s.handle(ce.Submitted([entry("a"), entry("b")], [sink, sink]))
    s.handle(ce.CancelRequested(["b"], sink))
    s.handle(ce.MessagesSent(1.0))
    assert received(s, m.Busy(["a", "b"], 0.5)) == [ce.FreeRoom(1)]
    assert list(s.unacked) == ["a"] and s.acked == 1 and "b" not in s.cancelling
    assert s.next_deadline() == 1.5
    assert s.tick(1.2) == []
    out = s.tick(1.5)
    assert kinds(out) == ["Submit"] and [e[0] for e in out[0].message.entries] == ["a"]


def test_heartbeat_and_liveness() -> None:
    s = session()
    assert kinds(s.tick(1.0)) == ["Heartbeat"]
    assert link(s.tick(10.0)) == []  # nothing outstanding: silence is fine
    s.handle(ce.Submitted([entry("a")], [Sink()]))
    assert link(s.tick(12.0)) == []  # the window starts when work does
    assert s.tick(13.1) == [ce.CloseConnection(3.0)]
    assert not s.connected and s.reopen_at == pytest.approx(13.2)
    assert s.handle(ce.Submitted([entry("b")], [Sink()])) == []  # nothing sent while disconnected
    assert s.tick(13.15) == []
    assert s.tick(13.2) == [ce.OpenConnection()]


def test_reopen_resends_watches_and_cancels() -> None:
    s, sink = session(), Sink()
    s.handle(ce.Submitted([entry("acked"), entry("open"), entry("gone")], [sink] * 3))
    received(s, m.Accepted(["acked", "gone"], {}), 0.5)
    s.handle(ce.CancelRequested(["gone"], sink))
    assert s.handle(ce.LinkDropped(1.0)) == [ce.CloseConnection(None)]
    out = s.handle(ce.LinkOpened(2.0))
    assert kinds(out) == ["Submit", "Watch", "Cancel"]
    assert [e[0] for e in out[0].message.entries] == ["open"]
    assert sorted(out[1].message.ids) == ["acked", "gone"] and out[2].message.ids == ["gone"]
    assert received(s, m.Accepted(["open"], {}), 2.1) == [ce.FreeRoom(1),
                                                           ce.Send(m.Watch(["open"]))]


def test_queries_resend_only_when_safe() -> None:
    s, r = session(), [Sink() for _ in range(4)]
    s.handle(ce.QueryAsked(1, "status", {}, r[0], 10.0))
    s.handle(ce.QueryAsked(2, "retry", {"id": "x"}, r[1], 10.0))
    s.handle(ce.LinkDropped(1.0))
    # made while disconnected: never sent yet
    assert s.handle(ce.QueryAsked(3, "purge", {}, r[2], 10.0)) == []
    out = s.handle(ce.LinkOpened(2.0))
    assert sorted(c.message.request_id for c in out if type(c) is ce.Send) == [1, 3]
    lost = [c for c in out if type(c) is ce.FailQueries]
    assert len(lost) == 1 and [sink for sink, _ in lost[0].items] == [r[1]]
    assert isinstance(lost[0].items[0][1], ConnectionLost)
    assert received(s, m.Reply(1, True, {"ok": 1}), 2.1) == [ce.AnswerQuery(r[0], True, {"ok": 1})]
    s.handle(ce.QueryAsked(4, "get", {}, r[3], 3.0))
    assert s.next_deadline() <= 3.0
    # the shell words a missed deadline: it knows the address
    assert ce.FailQueries([(r[3], None)]) in s.tick(3.0) and 4 not in s.queries


def test_same_as_follows_the_existing_task() -> None:
    s, a, b = session(), Sink(), Sink()
    s.handle(ce.Submitted([entry("a"), entry("b")], [a, b]))
    out = received(s, m.Accepted(["a", "b"], {"a": "x", "b": "x"}))
    assert out == [ce.FreeRoom(2), ce.Send(m.Watch(["x", "x"])),
                   ce.FollowTasks([(a, "a", "x"), (b, "b", "x")])]
    deliver(received(s, m.Result([("x", OK, b"")])))
    assert a.calls[-1][0] == b.calls[-1][0] == "on_result"


def test_cancel_all_and_abandon() -> None:
    s, a, q = session(), Sink(), Sink()
    s.handle(ce.Submitted([entry("a")], [a]))
    s.handle(ce.QueryAsked(1, "status", {}, q, 9.0))
    out = s.handle(ce.CancelAllRequested())
    assert out == [ce.SettleCancelled([(a, "a")]), ce.Send(m.Cancel(["a"]))]
    assert s.cancelling == {"a"}
    exc = ConnectionLost("closed")
    assert s.handle(ce.ClientClosed(exc)) == [ce.FailQueries([(q, exc)])]
    assert not s.outstanding and s.next_deadline() == float("inf")
