"""ACKs wait a little and go together (zq.core.holdback, issue 18): a worker in a
round-trip loop no longer spends a turn on an ACK after every task. The pure hold on
explicit times, then the master's loop with a stub socket (as test_master_send)."""

from __future__ import annotations

import math
import time
from types import SimpleNamespace

import pytest

from tests.unit.test_master_send import StubRouter
from zq.config import MasterConfig
from zq.core import messages as m
from zq.core.holdback import ACK_HOLD, HOLD_IDS, AckHold
from zq.master import Master


def test_acks_of_one_worker_gather_until_the_oldest_has_waited() -> None:
    hold = AckHold()
    assert not hold and hold.due == math.inf
    assert hold.hold(b"w1", m.Ack(["a"]), 10.0) == []
    assert hold.hold(b"w2", m.Ack(["x"]), 10.005) == []
    assert hold.hold(b"w1", m.Ack(["b", "c"]), 10.01) == []
    assert hold and hold.due == 10.0 + ACK_HOLD  # the oldest sets when all go
    assert hold.take_due(10.0 + ACK_HOLD - 0.001) == []
    due = hold.take_due(10.0 + ACK_HOLD)
    assert [(rid, ack.ids) for rid, ack in due] == [(b"w1", ["a", "b", "c"]), (b"w2", ["x"])]
    assert not hold and hold.due == math.inf and hold.take_due(1e9) == []


def test_a_worker_with_many_results_gets_its_acks_at_once_each_as_large_as_it_came() -> None:
    hold = AckHold()
    assert hold.hold(b"w1", m.Ack([f"t{i}" for i in range(HOLD_IDS - 1)]), 0.0) == []
    big = m.Ack([f"u{i}" for i in range(5000)])  # one turn's ACK, as the outbox built it
    acks = hold.hold(b"w1", big, 0.001)
    assert [len(a.ids) for a in acks] == [HOLD_IDS - 1, 5000] and acks[1] is big
    assert not hold and hold.due == math.inf  # nothing left waiting


def test_a_held_ack_goes_before_a_task_or_cancel_naming_its_task() -> None:
    # The worker keeps results by task id alone: attempt 1's ACK arriving after attempt
    # 2's TASK would make it forget attempt 2's result (found in review).
    hold = AckHold()
    hold.hold(b"w1", m.Ack(["a", "b"]), 0.0)
    assert hold.before(b"w1", ["c"]) is None and hold.before(b"w2", ["a"]) is None
    ack = hold.before(b"w1", ["c", "b"])
    assert ack is not None and ack.ids == ["a", "b"] and not hold


class FrozenClock:
    """The master's time.monotonic, standing still until the test moves it: on the real
    clock a pause of a few ms between two calls (a loaded machine) released a held ACK
    early or made a deadline 0.4 ms away already past. zq.master reads only
    time.monotonic and time.time (the latter only as the default of `wall`, bound at
    import); with the memory store and a stub socket no loop of the master waits on it."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    frozen = FrozenClock()
    monkeypatch.setattr("zq.master.time", SimpleNamespace(monotonic=frozen.monotonic,
                                                          time=time.time))
    return frozen


def test_the_master_holds_acks_wakes_for_them_and_sends_them_together(
        clock: FrozenClock) -> None:
    master = Master(MasterConfig(store="memory"))
    router = master.sock = StubRouter()  # type: ignore[assignment]
    try:
        master._send([(b"w1", m.Ack(["a"])), (b"c1", m.Reply(1, True, None))])
        master._send([(b"w1", m.Ack(["b"]))])
        assert b"w1" not in router.sent and len(router.sent[b"c1"]) == 1  # others go
        assert master._poll_timeout() <= ACK_HOLD  # the loop wakes to send them
        clock.now += ACK_HOLD  # the oldest has waited its ACK_HOLD
        master._send([])
        assert [(type(x), x.ids) for x in router.sent[b"w1"]] == [(m.Ack, ["a", "b"])]
        assert not master._acks
    finally:
        master.store.close()
        master.ctx.term()


def test_the_master_sends_a_held_ack_before_the_next_attempts_task(clock: FrozenClock) -> None:
    master = Master(MasterConfig(store="memory"))
    router = master.sock = StubRouter()  # type: ignore[assignment]
    try:
        master._send([(b"w1", m.Ack(["x", "y"]))])  # attempt 1 of x is done: held
        task = m.Task([("z", 1, "job", b"\x90", None, None)])
        master._send([(b"w1", task)])  # another task: the ACK keeps waiting
        assert [type(x) for x in router.sent[b"w1"]] == [m.Task] and master._acks
        retry = m.Task([("x", 2, "job", b"\x90", None, None)])  # attempt 2 of x
        master._send([(b"w1", retry)])
        sent = router.sent[b"w1"]
        assert [type(x) for x in sent] == [m.Task, m.Ack, m.Task] and sent[1].ids == ["x", "y"]
        assert not master._acks
        master._send([(b"w1", m.Ack(["z"]))])
        master._send([(b"w1", m.Cancel(["z"]))])  # a CANCEL naming it: the same
        assert [type(x) for x in router.sent[b"w1"][3:]] == [m.Ack, m.Cancel]
    finally:
        master.store.close()
        master.ctx.term()


class RecordingPoller:
    def __init__(self) -> None:
        self.timeouts: list[int] = []

    def poll(self, timeout: int) -> list:
        self.timeouts.append(timeout)
        return []


def test_a_deadline_under_a_millisecond_away_is_waited_for_not_polled_past(
        clock: FrozenClock) -> None:
    # poll takes whole milliseconds: rounded down, an ACK due in 0.4 ms made the loop
    # poll(0), return at once and turn again and again until it was due.
    master = Master(MasterConfig(store="memory"))
    master.sock = StubRouter()  # type: ignore[assignment]
    try:
        poller = RecordingPoller()
        master._turn(poller)  # type: ignore[arg-type]  # the first upkeep is due at once
        master._acks.hold(b"w1", m.Ack(["a"]), clock.now - ACK_HOLD + 0.0004)
        master._turn(poller)  # type: ignore[arg-type]
        assert poller.timeouts[1] == 1
    finally:
        master.store.close()
        master.ctx.term()
