"""WorkerCore.validate() catches each broken invariant (so the checks that every worker
core test runs after each step can fail), and the core keeps the shape the master and
client cores share: handle(event) -> commands, tick(now), next_deadline(), validate()."""

from __future__ import annotations

import dataclasses
from typing import Callable

import pytest

from tests.unit.test_worker_core import Session, registered
from zq.core import messages as m
from zq.core import worker_core as wc
from zq.core import worker_events as ev


def draining() -> Session:
    s = registered()
    s.recv(m.Task([("t1", 1, "app:fn", b"", None, None)]))
    s.event(ev.StopRequested([], s.now))
    assert s.core.phase is wc.Phase.DRAINING
    return s


def flushing() -> Session:
    s = draining()
    s.report(results=[("t1", 1, 0, b"\xc0")])
    s.tick()
    assert s.core.phase is wc.Phase.FLUSHING
    return s


def lose_deadline(s: Session) -> None:
    s.core.drain_deadline = None


def lose_ack_deadline(s: Session) -> None:
    s.core.ack_deadline = None


def hold_while_flushing(s: Session) -> None:
    s.core.held["t9"] = 1


def forget_master(s: Session) -> None:
    s.core.master_id = None


def count_failure(s: Session) -> None:
    s.core.failures = 1


def misfile_result(s: Session) -> None:
    s.core.outbox["t1"] = ("t2", 1, 0, b"\xc0")


def back_off_without_a_time(s: Session) -> None:
    s.core.link = wc.Link.BACKING_OFF


BREAKS: list[tuple[Callable[[], Session], Callable[[Session], None], str]] = [
    (draining, lose_deadline, "drain deadline"),
    (flushing, lose_ack_deadline, "ACK deadline"),
    (flushing, hold_while_flushing, "holds no task"),
    (registered, forget_master, "knows its master"),
    (registered, count_failure, "no failures"),
    (registered, misfile_result, "keyed by each entry's task id"),
    (registered, back_off_without_a_time, "reconnect_at"),
]


@pytest.mark.parametrize("make, corrupt, says", BREAKS,
                         ids=[b[1].__name__ for b in BREAKS])
def test_validate_reports_each_broken_invariant(make: Callable[[], Session],
                                                corrupt: Callable[[Session], None],
                                                says: str) -> None:
    s = make()
    s.core.validate()  # sound before
    corrupt(s)
    with pytest.raises(RuntimeError, match=says):
        s.core.validate()


def test_the_worker_core_has_the_shape_of_the_other_cores() -> None:
    core = registered().core
    for name in ("handle", "tick", "next_deadline", "validate"):
        assert callable(getattr(core, name)), name
    assert not hasattr(core, "start")  # starting is an event, like everything else
    for kind in (ev.Started, ev.MessageReceived, ev.GarbageReceived, ev.PoolReported,
                 ev.StopRequested, ev.StopForced, ev.SendFailed, ev.Send, ev.OpenConnection,
                 ev.CloseConnection, ev.Execute, ev.CancelTasks, ev.KillTasks, ev.Exit):
        assert dataclasses.is_dataclass(kind) and kind.__dataclass_params__.frozen, kind


def test_started_opens_the_connection_and_says_hello() -> None:
    s = Session()
    cmds = s.core.handle(ev.Started(s.now))
    assert cmds == [ev.OpenConnection()]
    assert s.core.link is wc.Link.CONNECTING
    assert [type(c.message) for c in s.core.tick(s.now) if isinstance(c, ev.Send)] == [m.Hello]
    s.core.validate()
