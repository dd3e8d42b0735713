"""zq.core.workers.Liveness against a naive model (issue 16, 1,000 workers): the
liveness pass reads the workers due from the front of two orders instead of scanning
every worker, and must name exactly the workers a scan would: silent (nothing heard for
more than the window) and quiet (nothing sent for the interval or more), oldest first.
A second machine runs MasterCore's whole liveness pass (drops and HEARTBEATs) against
the same scan, through registrations, messages, sends and the clock."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from zq.core import messages as m
from zq.core import workers
from zq.core.master_core import MasterCore
from zq.core.messages import Cmd
from zq.core.workers import Liveness, WorkerInfo

RIDS = [bytes([i]) for i in range(6)]
STEPS = st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.5, 3.0])


def hello(name: str) -> m.Hello:
    return m.Hello(name, "host", 1, ["default"], 1, "fake", 10, [])


class LivenessMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.live = Liveness()
        self.now = 0.0
        self.model: dict[bytes, WorkerInfo] = {}  # registered, by rid

    @rule(rid=st.sampled_from(RIDS))
    def register(self, rid: bytes) -> None:
        old = self.model.get(rid)
        if old is not None:
            self.live.remove(old)
        w = WorkerInfo(rid, hello(rid.hex()), self.now)
        self.model[rid] = w
        self.live.add(w)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        rid = data.draw(st.sampled_from(sorted(self.model)))
        self.live.remove(self.model.pop(rid))

    @rule(rid=st.sampled_from(RIDS))
    def remove_a_stale_one(self, rid: bytes) -> None:
        """An old WorkerInfo of a rid registered again: removing it keeps the new one."""
        self.live.remove(WorkerInfo(rid, hello("stale"), self.now))

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def heard(self, data: st.DataObject) -> None:
        rid = data.draw(st.sampled_from(sorted(self.model)))
        self.live.heard(self.model[rid], self.now)

    @rule(rids=st.lists(st.sampled_from(RIDS + [b"client"]), max_size=4))
    def told(self, rids: list[bytes]) -> None:
        self.live.told(rids, self.now)
        for rid in rids:  # the model: whoever is registered was sent to now
            if rid in self.model:
                assert self.model[rid].last_sent == self.now

    @rule(step=STEPS)
    def advance(self, step: float) -> None:
        self.now += step

    @invariant()
    def due_as_a_scan_finds(self) -> None:
        for window in (0.5, 1.0, 3.0):
            silent = [w for w in self.model.values() if self.now - w.last_seen > window]
            quiet = [w for w in self.model.values() if self.now - w.last_sent >= window]
            got_silent = self.live.silent(self.now, window)
            got_quiet = self.live.quiet(self.now, window)
            assert set(map(id, got_silent)) == set(map(id, silent))
            assert set(map(id, got_quiet)) == set(map(id, quiet))
            assert [w.last_seen for w in got_silent] == sorted(w.last_seen for w in silent)
            assert [w.last_sent for w in got_quiet] == sorted(w.last_sent for w in quiet)
        self.live.check(self.model)


TestLiveness = LivenessMachine.TestCase
TestLiveness.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


class MasterLivenessMachine(RuleBasedStateMachine):
    """MasterCore's housekeeping: a worker silent past interval x liveness is dropped,
    one sent nothing for an interval gets a HEARTBEAT, each exactly as a scan of every
    worker decides (the pass before this change)."""

    def __init__(self) -> None:
        super().__init__()
        self.core = MasterCore(master_id="m", heartbeat_interval=1.0, liveness=3)
        self.now = 0.0
        self.core.advance(self.now, 1000.0)

    @rule(rid=st.sampled_from(RIDS))
    def hello(self, rid: bytes) -> None:
        self.core.on_hello(rid, hello(rid.hex()))

    @rule(rid=st.sampled_from(RIDS))
    def heartbeat(self, rid: bytes) -> None:
        self.core.touch_worker(rid)  # a message from rid (DISCONNECT if unregistered)

    @rule()
    def turn_ends(self) -> None:
        """The turn's sends go out: each peer sent to counts as told now."""
        self.core.tick(self.now)

    @rule(step=STEPS)
    def advance(self, step: float) -> None:
        self.now += step
        self.core.advance(self.now, 1000.0 + self.now)

    @rule()
    def housekeeping(self) -> None:
        core, now = self.core, self.now
        window = core.interval * core.liveness
        dropped = {rid for rid, w in core.workers.items() if now - w.last_seen > window}
        beat = {rid for rid, w in core.workers.items()
                if rid not in dropped and now - w.last_sent >= core.interval}
        core.outbox.take()  # what earlier steps left: only this pass's sends are read
        workers.check_liveness(core)
        assert dropped.isdisjoint(core.workers)
        sent = {rid for rid, msg in core.outbox.take() if msg.cmd is Cmd.HEARTBEAT}
        assert sent == beat

    @invariant()
    def valid(self) -> None:
        self.core.validate()


TestMasterLiveness = MasterLivenessMachine.TestCase
TestMasterLiveness.settings = settings(max_examples=100, stateful_step_count=40,
                                       deadline=None)
