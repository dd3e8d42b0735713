"""A worker going round several masters (issue 16) moves to the one that takes over
within about a liveness window of the takeover:
- a connection that hears nothing is given up after the last master's liveness window,
  not the defaults' 3 s (a worker a standby sent to a master that had just died waited
  3 s there: more than the failover itself);
- with several masters the reconnect backoff stays within that window (jittered), so
  rounds of STANDBY answers while the standby takes over do not push the next try
  seconds past the takeover; with one master the backoff grows to reconnect_max as
  before."""

from __future__ import annotations

import pytest

from tests.unit.test_worker_core import Session, registered
from zq.config import WorkerConfig
from zq.core import messages as m
from zq.core import worker_core as wc
from zq.core import worker_events as ev


def lose_and_reconnect(s: Session) -> None:
    """The master's connection drops; the worker reconnects after its backoff."""
    s.event(ev.LinkDropped(s.now))
    s.tick(s.until_reconnect())
    assert isinstance(s.pop_other()[-1], ev.OpenConnection)
    assert isinstance(s.pop_sent()[0], m.Hello)


def test_a_new_connection_is_given_up_after_the_last_masters_window() -> None:
    s = Session()
    s.start()
    s.register(interval=0.25, liveness=4)  # a 1 s window
    s.pop_other()
    lose_and_reconnect(s)  # to a master that died: nothing will answer
    assert s.core.next_deadline() == pytest.approx(s.now + 1.0)
    s.tick(0.99)
    assert s.core.link is wc.Link.CONNECTING
    s.tick(0.01)
    (close,) = s.pop_other()
    assert isinstance(close, ev.CloseConnection)
    assert close.reason.startswith("no message from the master for 1.0 s")
    assert s.core.link is wc.Link.BACKING_OFF


def test_the_next_masters_welcome_sets_its_own_window() -> None:
    s = Session()
    s.start()
    s.register(interval=0.25, liveness=4)
    lose_and_reconnect(s)
    s.register(interval=2.0, liveness=5)
    assert (s.core.interval, s.core.liveness) == (2.0, 5)
    assert s.core.next_deadline() <= s.now + 2.0  # a heartbeat due, the window 10 s


def backoffs(s: Session, n: int) -> list[float]:
    """The reconnect waits of n masters lost in a row without a WELCOME between
    (each try answered STANDBY, as a standby does until it takes over)."""
    waits = []
    for _ in range(n):
        s.recv(m.Standby("tcp://elsewhere:5555"))
        waits.append(s.until_reconnect())
        s.tick(s.until_reconnect())
        s.pop_other()
        s.pop_sent()
    return waits


def test_with_several_masters_the_backoff_stays_within_a_window() -> None:
    s = registered(reconnect_max=30.0, masters=2)  # rand 0: the full delay, no jitter
    s.register(interval=0.25, liveness=4)
    waits = backoffs(s, 10)
    assert waits[:4] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert waits[4:] == pytest.approx([1.0] * 6)


def test_with_one_master_the_backoff_grows_to_reconnect_max() -> None:
    s = registered(reconnect_max=30.0)
    s.register(interval=0.25, liveness=4)
    assert backoffs(s, 10)[-1] == pytest.approx(30.0)


def test_the_jitter_spreads_the_capped_backoff() -> None:
    """A thousand workers bounced between masters do not retry in lockstep: the jitter
    shaves up to half of the capped wait off."""
    draws = iter([0.0, 0.999] * 20)
    s = registered(reconnect_max=30.0, masters=3, rand=lambda: next(draws))
    s.register(interval=0.25, liveness=4)
    waits = backoffs(s, 12)[-2:]
    assert waits[0] == pytest.approx(1.0) and waits[1] == pytest.approx(0.5, abs=0.01)


def test_from_config_counts_the_masters() -> None:
    def core(connect: str) -> wc.WorkerCore:
        return wc.WorkerCore.from_config(WorkerConfig(connect=connect, apps=("x",)),
                                         host="h", pid=1, session="s" * 32,
                                         rand=lambda: 0.0)
    assert core("tcp://a:1").masters == 1
    assert core("tcp://a:1,tcp://b:1").masters == 2
