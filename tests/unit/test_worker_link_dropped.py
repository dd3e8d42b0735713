"""A worker whose master's connection closes (the transport's monitor says so: a
master killed -9) goes to the next master at once, with backoff, as a client does,
not after a liveness window of silence; a drop seen while already backing off changes
nothing."""

from __future__ import annotations

from tests.unit.test_worker_core import registered
from zq.core import messages as m
from zq.core import worker_core as wc
from zq.core import worker_events as ev


def test_a_dropped_link_loses_the_master_at_once_and_reconnects_after_backoff() -> None:
    s = registered()
    s.tick(0.5)  # well inside the liveness window
    s.pop_sent()
    s.event(ev.LinkDropped(s.now))
    closes = s.pop_other()
    assert len(closes) == 1 and isinstance(closes[0], ev.CloseConnection) and closes[0].lost
    assert closes[0].reason.startswith("the master closed the connection")
    assert s.core.link is wc.Link.BACKING_OFF
    s.tick(s.until_reconnect())
    assert isinstance(s.pop_other()[0], ev.OpenConnection)
    assert isinstance(s.pop_sent()[0], m.Hello)


def test_a_drop_while_backing_off_changes_nothing() -> None:
    s = registered()
    s.event(ev.LinkDropped(s.now))
    s.pop_other()
    at = s.core.reconnect_at
    assert s.event(ev.LinkDropped(s.now)) == []
    assert s.core.reconnect_at == at and s.core.link is wc.Link.BACKING_OFF


