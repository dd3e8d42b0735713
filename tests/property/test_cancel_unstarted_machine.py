"""A hypothesis state machine over cancel-unless-started (protocol 1.5, zq.core.cancels):
submissions, leases to a worker that reports starts (STARTED) and to one that does not,
starts, results of every outcome (late ones too, for tasks already cancelled), retries,
and cancel_unstarted queries naming any ids. Each answer is checked against a model
written from docs/PROTOCOL.md §5 (Cancel unless started), and after every step: the
core's invariants hold, a task answered cancelled stays cancelled whatever its worker
reports later, a task answered running was started (or leased to a worker that does not
report starts), and no worker holds more than its credit."""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from zq.core import messages as m
from zq.core.access import Caller
from zq.core.master_core import MasterCore
from zq.core.messages import Outcome, State

STARTS, PLAIN = b"w-starts", b"w-plain"  # reports its starts (1.4) / does not (1.3)
CLIENT = b"client"
UNSTARTED = (State.PENDING, State.QUEUED, State.RETRYING)


class CancelUnstarted(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.core = MasterCore(master_id="m", rand=lambda: 0.5)
        self.now, self.wall = 0.0, 1_000_000.0
        self.core.advance(self.now, self.wall)
        for rid, starts, session in ((STARTS, True, "a" * 32), (PLAIN, False, "b" * 32)):
            self.core.on_hello(rid, m.Hello(rid.decode(), "h", 1, ["default"], 1, "thread", 3,
                                            [], session, {}, started=starts))
        self.n = 0
        self.answered_cancelled: set[str] = set()
        self.core.flush()

    def _ids(self) -> list[str]:
        return [f"t{i}" for i in range(self.n)]

    def _leased(self, rid: bytes) -> list[str]:
        return sorted(tid for tid, r in self.core.lease.items() if r == rid)

    @rule(count=st.integers(1, 3), retries=st.integers(0, 1), delayed=st.booleans())
    def submit(self, count: int, retries: int, delayed: bool) -> None:
        opts: dict[str, Any] = {"retries": retries}
        if delayed:
            opts["delay"] = 5.0
        entries = [(f"t{self.n + i}", "app:f", b"\x92\x90\x80", dict(opts))
                   for i in range(count)]
        self.n += count
        self.core.on_submit(CLIENT, entries)

    @rule()
    def dispatch(self) -> None:
        self.core.dispatch()

    @rule(data=st.data())
    def worker_starts_one(self, data: st.DataObject) -> None:
        held = [tid for tid in self._leased(STARTS) if self.core.tasks[tid].started is None]
        if held:
            tid = data.draw(st.sampled_from(held))
            w = self.core.touch_worker(STARTS)
            assert w is not None
            self.core.on_started(w, [(tid, self.core.tasks[tid].attempt)])

    @rule(data=st.data(), rid=st.sampled_from([STARTS, PLAIN]),
          outcome=st.sampled_from(list(Outcome)))
    def worker_reports(self, data: st.DataObject, rid: bytes, outcome: Outcome) -> None:
        """A result for a task the worker holds, or (late) for one it was told to drop."""
        ids = self._leased(rid) + sorted(self.answered_cancelled)
        if not ids:
            return
        tid = data.draw(st.sampled_from(ids))
        w = self.core.touch_worker(rid)
        assert w is not None
        payload = b"\x01" if outcome is Outcome.OK else b"" if outcome is Outcome.CANCELLED \
            else b"\x80"
        self.core.on_worker_results(w, [(tid, self.core.tasks[tid].attempt, int(outcome),
                                         payload)])

    @rule(dt=st.sampled_from([0.5, 2.0, 6.0]))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        self.wall += dt
        self.core.advance(self.now, self.wall)
        for rid in (STARTS, PLAIN):  # both stay alive (heartbeats)
            self.core.touch_worker(rid)
        self.core.housekeeping()

    @precondition(lambda self: self.n > 0)
    @rule(data=st.data())
    def cancel_unstarted(self, data: st.DataObject) -> None:
        ids = data.draw(st.lists(st.sampled_from(self._ids() + ["nope"]), min_size=1,
                                 max_size=6))
        expected = {tid: self._expect(tid) for tid in ids}
        self.core.on_query(Caller(CLIENT), 1, "cancel_unstarted", {"ids": ids})
        replies = [msg for _, msg in self.core.flush().messages if isinstance(msg, m.Reply)]
        assert len(replies) == 1 and replies[0].ok
        body = replies[0].body
        got = {tid: "cancelled" for tid in body["cancelled"]} | body["kept"]
        assert got == expected, (got, expected)
        assert body["refused"] == []
        self.answered_cancelled.update(body["cancelled"])

    def _expect(self, tid: str) -> str:
        """The model: docs/PROTOCOL.md §5, Cancel unless started."""
        t = self.core.tasks.get(tid)
        if t is None:
            return "unknown"
        if t.state in UNSTARTED or t.state is State.CANCELLED:
            return "cancelled"
        if t.state is State.RUNNING:
            if t.started is None and self.core.lease.get(tid) == STARTS:
                return "cancelled"
            return "running"
        return t.state.label

    @invariant()
    def consistent(self) -> None:
        self.core.validate()
        for tid in self.answered_cancelled:
            t = self.core.tasks[tid]
            assert t.state is State.CANCELLED, f"{tid} answered cancelled, now {t.state}"
        for w in self.core.workers.values():
            assert len(w.leased) <= w.credit
        self.core.flush()


CancelUnstarted.TestCase.settings = settings(max_examples=150, stateful_step_count=40,
                                             deadline=None)
TestCancelUnstarted = CancelUnstarted.TestCase
