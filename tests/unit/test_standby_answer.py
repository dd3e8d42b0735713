"""STANDBY (protocol 1.4, issue 16) in the worker's and the client's session cores: a
standby master's answer closes the connection and reopens it later (the shell picks
another master), with the backoff of a lost link, which a STANDBY does not reset."""

from __future__ import annotations

from tests.unit.test_client_core import Sink, entry, session
from tests.unit.test_worker_core import Session
from zq.core import messages as m
from zq.core import worker_events as ev
from zq.core.client_events import (
    CloseConnection,
    LinkOpened,
    MessageReceived,
    OpenConnection,
    Submitted,
)


def test_a_worker_told_standby_closes_and_reconnects_with_backoff() -> None:
    s = Session(reconnect_min=0.1, reconnect_max=10.0)
    s.start()
    assert isinstance(s.pop_sent()[0], m.Hello)
    s.pop_other()
    s.recv(m.Standby("tcp://other:5555"))
    closed = s.pop_other()
    assert len(closed) == 1 and isinstance(closed[0], ev.CloseConnection)
    assert "standby" in closed[0].reason
    first = s.until_reconnect()
    s.tick(first)
    assert s.pop_other() == [ev.OpenConnection()]
    s.recv(m.Standby(""))  # the next one is a standby too: a longer wait
    s.pop_other()
    assert s.until_reconnect() > first


def test_a_client_told_standby_drops_the_link_and_sends_everything_again_after() -> None:
    s = session()
    s.handle(Submitted([entry("a")], [Sink()]))
    out = s.handle(MessageReceived(m.Standby("tcp://other:5555"), 1.0))
    assert out == [CloseConnection(None)]
    first = s.reopen_at
    assert s.tick(first) == [OpenConnection()]
    resent = s.handle(LinkOpened(first))
    assert [e[0] for e in resent[0].message.entries] == ["a"]  # submitted again
    assert s.handle(MessageReceived(m.Standby(""), first + 0.01)) == [CloseConnection(None)]
    assert s.reopen_at - (first + 0.01) > first - 1.0  # the backoff grew, not reset
