"""A hypothesis state machine over the client core (zq.core.client_core): the user's
requests, every kind of message a master may send (about known ids, unknown ids and
ids of other clients), dropped links, failed opens and the clock, in any order. After
every step: the core's own validate(), no sink settled twice (nor given a chunk or
progress once settled), nothing sent while disconnected, the room handed back equals
the submissions acknowledged; at the end, closing the client gives every task and
query still waited for exactly one outcome."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from zq.core import client_events as ce
from zq.core import messages as m
from zq.core.client_core import ClientCore
from zq.core.messages import State
from zq.errors import ConnectionLost

STATES = [int(s) for s in State]
FINAL = {int(State.SUCCEEDED), int(State.FAILED), int(State.CANCELLED), int(State.DEAD)}
OTHER_IDS = ["other-1", "other-2", ""]  # ids this client never submitted


class Recorder:
    """A sink (task or query) that counts final outcomes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.finals: list[str] = []

    def on_result(self, tid: str, state: int, payload: Any) -> None:
        self.finals.append("result")

    def on_failed(self, tid: str, exc: BaseException) -> None:
        self.finals.append("failed")

    def on_cancelled(self, tid: str) -> None:
        self.finals.append("cancelled")

    def on_partial(self, *a: Any) -> None:
        assert not self.finals, f"a chunk for {self.name}, already {self.finals}"

    def on_progress(self, *a: Any) -> None:
        assert not self.finals, f"progress for {self.name}, already {self.finals}"

    def on_followed(self, tid: str, new_id: str) -> None:
        pass

    def on_reply(self, ok: bool, body: Any) -> None:
        self.finals.append("reply")

    def on_lost(self, exc: BaseException) -> None:
        self.finals.append("lost")

    def on_expired(self) -> None:
        self.finals.append("expired")


class ClientCoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.core = ClientCore(batch_size=4, heartbeat_interval=1.0, liveness=3, now=0.0,
                               rand=lambda: 0.5)
        self.ids: list[str] = []  # every id submitted or watched
        self.sinks: list[Recorder] = []  # every task sink, with the user-cancelled ones
        self.cancelled: set[int] = set()  # id() of sinks the user cancelled
        self.queries: list[Recorder] = []
        self.next_id = 0
        self.next_request = 0
        self.freed = 0
        self.closed = False
        self.pending_open = False
        self.out: list[ce.Command] = []
        self.run(self.core.tick(self.now))

    # --- a mini shell: what io_loop does with each command ---

    def run(self, cmds: list[ce.Command]) -> None:
        self.out = cmds
        for c in cmds:
            t = type(c)
            if t is ce.Send:
                assert self.core.connected, f"{c} sent while disconnected"
            elif t is ce.OpenConnection:
                self.run_open()
            elif t is ce.FreeRoom:
                assert c.count > 0
                self.freed += c.count
            elif t is ce.SettleResults:
                for sink, e in c.items:
                    assert e[1] in FINAL
                    sink.on_result(*e)
            elif t is ce.FailTasks:
                for sink, tid, exc in c.items:
                    sink.on_failed(tid, exc)
            elif t is ce.SettleCancelled:
                for sink, tid in c.items:
                    sink.on_cancelled(tid)
            elif t is ce.FollowTasks:
                for sink, tid, new in c.items:
                    sink.on_followed(tid, new)
            elif t is ce.AnswerQuery:
                c.sink.on_reply(c.ok, c.body)
            elif t is ce.FailQueries:
                for sink, exc in c.items:
                    sink.on_expired() if exc is None else sink.on_lost(exc)
            elif t is ce.SettlePartials:
                for sink, e in c.items:
                    sink.on_partial(*e)
            elif t is ce.SettleProgress:
                for sink, tid, done, total in c.items:
                    sink.on_progress(tid, done, total)
            else:
                assert t in (ce.CloseConnection, ce.LogMasterError), t

    def run_open(self) -> None:
        self.pending_open = True

    def step(self, event: Any) -> None:
        self.pending_open = False
        self.run(self.core.handle(event))

    # --- the user's side ---

    @precondition(lambda self: not self.closed)
    @rule(n=st.integers(1, 6))
    def submit(self, n: int) -> None:
        entries, sinks = [], []
        for _ in range(n):
            self.next_id += 1
            tid = f"t{self.next_id}"
            entries.append((tid, "app:f", b"x", {}))
            sinks.append(Recorder(tid))
        self.ids += [e[0] for e in entries]
        self.sinks += sinks
        self.step(ce.Submitted(entries, sinks))

    @precondition(lambda self: not self.closed)
    @rule(data=st.data())
    def watch(self, data: st.DataObject) -> None:
        tid = data.draw(st.sampled_from(self.ids + OTHER_IDS[:2]))
        sink = Recorder(tid)
        self.sinks.append(sink)
        self.ids.append(tid)
        self.step(ce.WatchRequested([tid], [sink]))

    @precondition(lambda self: not self.closed and self.sinks)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        sink = data.draw(st.sampled_from(self.sinks))
        if sink.finals:
            return  # Future.cancel() of a settled future posts nothing
        sink.finals.append("cancelled")  # the shell settles it first
        self.cancelled.add(id(sink))
        self.step(ce.CancelRequested([sink.name], sink))

    @precondition(lambda self: not self.closed)
    @rule()
    def cancel_all(self) -> None:
        self.step(ce.CancelAllRequested())

    @precondition(lambda self: not self.closed)
    @rule(kind=st.sampled_from(["status", "retry"]), wait=st.floats(0.0, 20.0))
    def query(self, kind: str, wait: float) -> None:
        self.next_request += 1
        sink = Recorder(kind)
        self.queries.append(sink)
        self.step(ce.QueryAsked(self.next_request, kind, {}, sink, self.now + wait))

    # --- the master's side ---

    def some_ids(self, data: st.DataObject) -> list[str]:
        return data.draw(st.lists(st.sampled_from(self.ids + OTHER_IDS), max_size=6))

    @precondition(lambda self: not self.closed)
    @rule(data=st.data())
    def accepted(self, data: st.DataObject) -> None:
        ids = self.some_ids(data)
        same_as = {}
        if ids and data.draw(st.booleans()):
            same_as = {ids[0]: data.draw(st.sampled_from(self.ids + OTHER_IDS))}
        self.step(ce.MessageReceived(m.Accepted(ids, same_as), self.now))

    @precondition(lambda self: not self.closed)
    @rule(data=st.data())
    def rejected(self, data: st.DataObject) -> None:
        entries = [(tid, "no") for tid in self.some_ids(data)]
        self.step(ce.MessageReceived(m.RejectedEntries(entries), self.now))

    @precondition(lambda self: not self.closed)
    @rule(data=st.data(), retry_after=st.floats(-1.0, 100.0))
    def busy(self, data: st.DataObject, retry_after: float) -> None:
        self.step(ce.MessageReceived(m.Busy(self.some_ids(data), retry_after), self.now))

    @precondition(lambda self: not self.closed)
    @rule(data=st.data(), state=st.sampled_from(STATES))
    def result(self, data: st.DataObject, state: int) -> None:
        entries = [(tid, state, b"") for tid in self.some_ids(data)]
        self.step(ce.MessageReceived(m.Result(entries), self.now))

    @precondition(lambda self: not self.closed)
    @rule(data=st.data())
    def partial_and_progress(self, data: st.DataObject) -> None:
        ids = self.some_ids(data)
        self.step(ce.MessageReceived(m.Partial([(tid, 1, 0, b"") for tid in ids]), self.now))
        self.step(ce.MessageReceived(m.Progress([(tid, 1, 1.0, 2.0) for tid in ids]), self.now))

    @precondition(lambda self: not self.closed)
    @rule(request=st.integers(0, 8), ok=st.booleans())
    def reply(self, request: int, ok: bool) -> None:
        self.step(ce.MessageReceived(m.Reply(request, ok, {}), self.now))

    @precondition(lambda self: not self.closed)
    @rule()
    def error(self) -> None:
        self.step(ce.MessageReceived(m.Error("bad"), self.now))

    # --- the link and the clock ---

    @rule(dt=st.floats(0.0, 8.0), fail=st.booleans())
    def time_passes(self, dt: float, fail: bool) -> None:
        self.now += dt
        self.pending_open = False
        self.run(self.core.tick(self.now))
        if self.pending_open:
            self.step(ce.OpenFailed(self.now) if fail else ce.LinkOpened(self.now))

    @precondition(lambda self: not self.closed)
    @rule()
    def sent(self) -> None:
        self.step(ce.MessagesSent(self.now))

    @precondition(lambda self: not self.closed)
    @rule()
    def dropped(self) -> None:
        self.step(ce.LinkDropped(self.now))

    @precondition(lambda self: not self.closed)
    @rule()
    def close(self) -> None:
        self.closed = True
        self.step(ce.ClientClosed(ConnectionLost("closed")))
        for sink in self.sinks:
            assert len(sink.finals) == 1, (sink.name, sink.finals)
        for q in self.queries:
            assert len(q.finals) == 1, (q.name, q.finals)

    # --- after every step ---

    @invariant()
    def core_is_valid(self) -> None:
        self.core.validate()

    @invariant()
    def nothing_settled_twice(self) -> None:
        for sink in self.sinks + self.queries:
            assert len(sink.finals) <= 1, (sink.name, sink.finals)

    @invariant()
    def room_matches_acknowledged(self) -> None:
        assert self.freed == self.core.acked

    @invariant()
    def a_timer_while_work_is_open(self) -> None:
        if not self.closed and self.core.outstanding:
            assert self.core.next_deadline() < float("inf")


ClientCoreMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=40, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow])
TestClientCoreMachine = ClientCoreMachine.TestCase
