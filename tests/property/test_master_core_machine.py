"""A hypothesis state machine over the master core, with fake workers and clients.

The machine plays one submitting client, one client that cancels, up to three live workers
(which join, report, hand back, leave, go silent and reconnect) and a master that may restart
from its store. After every step it checks the guarantees of DESIGN §3; at the end every
worker finishes what it holds and time runs until every accepted task is final.
Derandomized, so CI runs the same examples every time; to hunt for new bugs, run it with
derandomize=False and more examples.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from zq.core import messages as m
from zq.core import serde
from zq.core.master_core import MasterCore
from zq.core.messages import FINAL_STATES, Outcome, State
from zq.core.tasks import TaskRecord

QUEUES = ("default", "b")  # a task without options goes to "default"
C, C2 = b"client", b"canceller"  # C submits everything; C2 only cancels
WINDOW = 3.0  # heartbeat interval x liveness, the MasterCore's defaults
MAX_WORKERS = 3  # live at once; few workers make collisions between them likely

# One submission: (queue or None, priority, retries, delay or None, what), drawn as plain
# numbers because they are cheap to draw and shrink; `what` picks a resend of an accepted id
# (0), a dependency on one (1) or a plain new task. Picks index lists modulo their length.
ENTRY = st.tuples(st.sampled_from((None, *QUEUES)), st.integers(0, 2), st.integers(0, 2),
                  st.sampled_from((None, 0.0, 0.5, 2.0, 5.0)), st.integers(0, 7))
PICK = st.integers(0, 255)
QUEUE_SETS = st.sets(st.sampled_from(QUEUES), min_size=1)
CREDIT = st.integers(1, 5)
SUBSET = st.integers(0, 2**8 - 1)  # a bit mask over a sorted list


@dataclass
class FakeWorker:
    name: str
    rid: bytes
    queues: tuple[str, ...]
    credit: int
    alive: bool = True  # registered and heartbeating; False once silent, gone or disconnected
    held: dict[str, int] = field(default_factory=dict)  # task id -> attempt it was sent
    via_task: set[str] = field(default_factory=set)  # held ids this connection got by TASK


def _pick(items: Any, i: int) -> Any:
    items = sorted(items) if isinstance(items, (set, dict)) else items
    return items[i % len(items)]


def _subset(items: Any, mask: int) -> list[Any]:
    return [x for i, x in enumerate(sorted(items)) if mask >> (i % 8) & 1]


def _payload(outcome: Outcome) -> bytes:
    if outcome is Outcome.OK:
        return b"result"
    if outcome is Outcome.CANCELLED:
        return b""
    return serde.encode_error("ValueError", "it broke")


class MasterCoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now, self.wall = 0.0, 1_000_000.0
        self.store: dict[str, TaskRecord] = {}  # what the master committed, as copies
        self.memory: dict[str, float] = {}  # MasterCore limits on finished tasks
        self.s = self._new_master()
        self.n_ids = self.n_rids = 0
        self.accepted: list[str] = []  # every id C was sent ACCEPTED for, in order
        self.accepted_set: set[str] = set()
        self.received: dict[tuple[bytes, str], int] = {}  # (client, id) -> final RESULTs
        self.allowed: dict[tuple[bytes, str], int] = {}  # more than 1 when asked again
        self.workers: list[FakeWorker] = []
        self.adopted: dict[bytes, set[str]] = {}  # rid -> ids its HELLO said it still runs
        self.stopped: set[str] = set()  # running when a client cancelled: never TASK again
        self.healthy = True  # False from the start of a step until its checks passed
        self.eager = False  # True: every turn ends with dispatch(), as the master loop does

    @initialize(eager=st.booleans(), forgetful=st.booleans(),
                workers=st.lists(st.tuples(QUEUE_SETS, CREDIT), min_size=1, max_size=2))
    def start(self, eager: bool, forgetful: bool, workers: list[tuple[set[str], int]]) -> None:
        """Half the runs dispatch only in the dispatch rule, so work can sit queued; half
        keep at most 3 results in memory, for 30 s, so finished tasks are forgotten."""
        self.eager = eager
        if forgetful:
            self.memory = {"max_finished": 3, "result_ttl": 30.0}
            self.s = self._new_master()
        for queues, credit in workers:
            self.worker_joins(queues, credit)

    # --- plumbing ----------------------------------------------------------------------

    def _new_master(self) -> MasterCore:
        s = MasterCore(master_id="prop", durable=True, rand=lambda: 0.5, **self.memory)
        s.advance(self.now, self.wall)
        return s

    def _rid(self) -> bytes:
        self.n_rids += 1
        return f"r{self.n_rids}".encode()

    def _live(self) -> list[FakeWorker]:
        return [w for w in self.workers if w.alive]

    def _hello(self, w: FakeWorker, running: list[str]) -> None:
        w.held = {tid: w.held[tid] for tid in running}
        w.via_task = set()
        w.alive = True
        self.adopted[w.rid] = set(running)
        self.s.on_hello(w.rid, m.Hello(w.name, "host", 1, list(w.queues), w.credit, "thread",
                                       w.credit, list(running)))
        self._flush()

    def _advance(self, dt: float) -> None:
        """Time passes; live workers keep sending heartbeats; the master's housekeeping runs."""
        self.now += dt
        self.wall += dt
        self.s.advance(self.now, self.wall)
        for w in self._live():
            assert self.s.touch_worker(w.rid) is not None, f"{w.name} is live but unknown"
        self.s.housekeeping()
        self._flush()

    def _flush(self) -> None:
        """Commit what the master saves, then deliver what it sends to the fakes."""
        s = self.s
        s.validate()
        if self.eager:
            s.dispatch()
            s.validate()
        out = s.flush()
        for t in out.saves:
            self.store[t.id] = copy.copy(t)
        for t in out.updates:  # only tasks saved in an earlier turn are updated
            assert t.id in self.store, f"update of {t.id}, which was never saved"
            self.store[t.id] = copy.copy(t)
        for tid in out.deletes:
            self.store.pop(tid, None)
        by_rid = {w.rid: w for w in self._live()}
        for rid, msg in out.messages:
            self._deliver(rid, msg, by_rid.get(rid))

    def _deliver(self, rid: bytes, msg: Any, w: FakeWorker | None) -> None:
        s = self.s
        if isinstance(msg, m.Accepted):
            assert rid == C and not msg.same_as
            for tid in msg.ids:
                if tid not in self.accepted_set:
                    self.accepted_set.add(tid)
                    self.accepted.append(tid)
        elif isinstance(msg, m.Result):
            for tid, state, _ in msg.entries:
                t = s.tasks.get(tid)  # None: forgotten (max_finished) right after
                assert State(state) in FINAL_STATES and (t is None or t.state == state)
                key = (rid, tid)
                self.received[key] = self.received.get(key, 0) + 1
                assert self.received[key] <= self.allowed.get(key, 1), \
                    f"{rid!r} was told twice that {tid} finished"
        elif isinstance(msg, m.Task):
            sw = s.workers.get(rid)
            assert sw is not None, "TASK for an unregistered worker"
            # the master never leases more than the credit, beyond what HELLO said it runs
            assert len(sw.leased - self.adopted.get(rid, set())) <= sw.credit
            for tid, *_ in msg.entries:
                assert tid not in self.stopped, f"{tid} runs again after it was cancelled"
            if w is not None:
                for tid, attempt, *_ in msg.entries:
                    assert s.tasks[tid].attempt == attempt
                    w.held[tid] = attempt
                    w.via_task.add(tid)
                assert len(w.via_task) <= w.credit, f"{w.name} got more than its credit"
        elif isinstance(msg, m.Cancel):
            if w is not None:
                w.via_task -= set(msg.ids)  # the master no longer counts these on w
        elif isinstance(msg, m.Disconnect):
            if w is not None:
                w.alive = False  # it will HELLO again
        elif isinstance(msg, m.RejectedEntries):  # a cancel of, or after= on, a forgotten task
            for tid, reason in msg.entries:
                assert "unknown task id" in reason and tid not in s.tasks, reason
        elif isinstance(msg, (m.Busy, m.Error)):
            raise AssertionError(f"unexpected {msg!r} to {rid!r}")

    def _begin(self) -> None:
        self.healthy = False

    def _finished(self, tid: str) -> bool:
        """Final, or forgotten since: the master forgets only final tasks."""
        t = self.s.tasks.get(tid)
        return t is None or t.state in FINAL_STATES

    # --- clients -----------------------------------------------------------------------

    @rule(batch=st.lists(ENTRY, min_size=1, max_size=3), pick=PICK)
    def submit(self, batch: list[tuple], pick: int) -> None:
        self._begin()
        entries = []
        for queue, priority, retries, delay, what in batch:
            if self.accepted and what == 0:
                tid = _pick(self.accepted, pick)  # a resend after a reconnect
                if tid not in self.s.tasks:  # forgotten: a new task with the same id now
                    self.stopped.discard(tid)
                    for key in [k for k in self.received if k[1] == tid]:
                        del self.received[key]
                        self.allowed.pop(key, None)
                elif self.s.tasks[tid].state in FINAL_STATES:  # answered with it once more
                    self.allowed[(C, tid)] = self.allowed.get((C, tid), 1) + 1
                entries.append((tid, "job", b"args", {}))
                continue
            self.n_ids += 1
            opts: dict[str, Any] = {"priority": priority, "retries": retries}
            if queue is not None:
                opts["queue"] = queue
            if delay is not None:
                opts["delay"] = delay
            if self.accepted and what == 1:
                opts["after"] = [_pick(self.accepted, pick)]
            entries.append((f"t{self.n_ids}", "job", b"args", opts))
        self.s.on_submit(C, entries)
        self._flush()

    @precondition(lambda self: self.accepted)
    @rule(pick=PICK, who=st.sampled_from([C, C2]), running=st.booleans())
    def cancel(self, pick: int, who: bytes, running: bool) -> None:
        """Cancel any accepted task, or (to race it with its worker) a running one."""
        self._begin()
        pool = sorted(self.s.lease) if running and self.s.lease else self.accepted
        tid = _pick(pool, pick)
        t = self.s.tasks.get(tid)
        if t is not None and t.state is State.RUNNING:
            self.stopped.add(tid)
        self.s.on_cancel(who, [tid])
        self._flush()

    # --- workers -----------------------------------------------------------------------

    @precondition(lambda self: len(self._live()) < MAX_WORKERS)
    @rule(queues=QUEUE_SETS, credit=CREDIT)
    def worker_joins(self, queues: set[str], credit: int) -> None:
        self._begin()
        w = FakeWorker(f"w{len(self.workers)}", self._rid(), tuple(sorted(queues)), credit)
        self.workers.append(w)
        self._hello(w, [])

    @precondition(lambda self: any(w.held for w in self._live()))
    @rule(pick=PICK, mask=SUBSET,
          outcomes=st.lists(st.sampled_from(Outcome), min_size=1, max_size=4))
    def worker_reports(self, pick: int, mask: int, outcomes: list[Outcome]) -> None:
        """RESULT for some of the tasks it holds, with any outcome."""
        self._begin()
        w = _pick([w for w in self._live() if w.held], pick)
        entries = []
        for tid, outcome in zip(_subset(w.held, mask) or sorted(w.held), outcomes):
            entries.append((tid, w.held.pop(tid), int(outcome), _payload(outcome)))
            w.via_task.discard(tid)
        sw = self.s.touch_worker(w.rid)
        assert sw is not None
        self.s.on_worker_results(sw, entries)
        self._flush()

    @precondition(lambda self: self._live())
    @rule(pick=PICK, mask=SUBSET, credit=st.integers(0, 5))
    def worker_credit(self, pick: int, mask: int, credit: int) -> None:
        """CREDIT: a new total, handing back some prefetched tasks it has not started."""
        self._begin()
        w = _pick(self._live(), pick)
        returned = _subset(w.via_task, mask)
        for tid in returned:
            del w.held[tid]
            w.via_task.discard(tid)
        w.credit = credit
        sw = self.s.touch_worker(w.rid)
        assert sw is not None
        self.s.on_credit(sw, m.Credit(credit, returned))
        self._flush()

    @precondition(lambda self: self._live())
    @rule(pick=PICK, mask=SUBSET)
    def worker_leaves(self, pick: int, mask: int) -> None:
        """BYE, handing back some tasks; the rest it was running count as lost."""
        self._begin()
        w = _pick(self._live(), pick)
        returned = _subset(w.via_task, mask)
        sw = self.s.touch_worker(w.rid)
        assert sw is not None
        self.s.on_bye(sw, m.Bye(returned))
        w.alive, w.held, w.via_task = False, {}, set()
        self._flush()

    @precondition(lambda self: self._live())
    @rule(pick=PICK)
    def worker_dies(self, pick: int) -> None:
        """It goes silent (still holding its tasks) until the master gives up on it."""
        self._begin()
        _pick(self._live(), pick).alive = False
        self._advance(WINDOW + 0.01)

    @precondition(lambda self: len(self._live()) < MAX_WORKERS
                  and any(w.held or not w.alive for w in self.workers))
    @rule(pick=PICK, mask=SUBSET, fresh_socket=st.booleans(),
          outcomes=st.lists(st.sampled_from(Outcome), max_size=3))
    def worker_reconnects(self, pick: int, mask: int, fresh_socket: bool,
                          outcomes: list[Outcome]) -> None:
        """HELLO again, saying which of the tasks it holds still run; then RESULT again for
        those that ended while it was away (it keeps results until ACKed); it forgot the rest."""
        self._begin()
        w = _pick([w for w in self.workers if w.held or not w.alive], pick)
        running = _subset(w.held, mask)
        ended = [(tid, w.held[tid], int(oc), _payload(oc))
                 for tid, oc in zip(sorted(set(w.held) - set(running)), outcomes)]
        if fresh_socket or not w.alive:
            w.rid = self._rid()
        self._hello(w, running)
        if ended:
            for tid, attempt, *_ in ended:
                if w.held.get(tid) == attempt:  # TASK just sent it this (id, attempt) again:
                    del w.held[tid]  # the worker answers with the result it has, no rerun
                    w.via_task.discard(tid)
            sw = self.s.touch_worker(w.rid)
            assert sw is not None
            self.s.on_worker_results(sw, ended)
            self._flush()

    # --- master --------------------------------------------------------------------------

    @rule()
    def dispatch(self) -> None:
        self._begin()
        self.s.dispatch()
        self._no_idle_credit()
        self._flush()

    def _no_idle_credit(self) -> None:
        """After a dispatch no worker has free credit while a queue it serves holds a task
        it could take (the dispatch index, zq.core.offers, forgot no worker)."""
        for w in self.s.workers.values():
            if w.free > 0:
                waiting = [q for q in w.ready_queues if q.best_priority() is not None]
                assert not waiting, f"{w.name} has {w.free} free credit beside queued tasks"

    @rule(dt=st.sampled_from([0.1, 0.5, 1.0, 2.0, 5.0]))
    def time_passes(self, dt: float) -> None:
        self._begin()
        self._advance(dt)

    @precondition(lambda self: self.accepted)
    @rule()
    def master_restarts(self) -> None:
        """kill -9 and restart on the same store; everyone reconnects and registers again."""
        self._begin()
        self.s = self._new_master()
        self.stopped = set()  # cancel requests are not persisted: they die with the master
        self.s.restore([copy.copy(t) for t in sorted(self.store.values(), key=lambda t: t.seq)])
        self.s.validate()
        for w in self._live():
            w.rid = self._rid()
            self._hello(w, sorted(w.held))
        waiting = [tid for tid in self.accepted if not self.received.get((C, tid))]
        self.s.on_watch(C, waiting)  # the client follows what it still waits for
        self._flush()

    # --- guarantees ----------------------------------------------------------------------

    @invariant()
    def guarantees(self) -> None:
        s = self.s
        s.validate()
        # no accepted task is lost: the master holds it until it is final
        for tid in self.accepted:
            assert tid in s.tasks or self.received.get((C, tid)), f"accepted {tid} was lost"
        # a running task is leased to exactly one registered worker, and only to it
        running = {tid for tid, t in s.tasks.items() if t.state is State.RUNNING}
        assert running == set(s.lease), f"running without a lease: {running ^ set(s.lease)}"
        holders: dict[str, int] = {}
        for sw in s.workers.values():
            for tid in sw.leased:
                holders[tid] = holders.get(tid, 0) + 1
        assert all(n == 1 for n in holders.values()), "a task is leased to two workers"
        # every accepted task is in exactly one state, and the counts agree
        assert sum(s.counts.values()) == len(s.tasks)
        self.healthy = True

    def teardown(self) -> None:
        if not self.healthy:
            return  # a step failed: let hypothesis report that, not a consequence of it
        for _ in range(100):  # bounded: each round ends attempts and moves time 2 s on
            if all(self._finished(tid) for tid in self.accepted):
                break
            if not all(any(q in w.queues for w in self._live()) for q in QUEUES):
                w = FakeWorker(f"w{len(self.workers)}", self._rid(), QUEUES, 5)
                self.workers.append(w)
                self._hello(w, [])
            for w in self._live():
                if w.credit == 0:  # it stopped taking work: let it take some again
                    w.credit = 2
                    self.s.on_credit(self.s.workers[w.rid], m.Credit(2, []))
                if w.held:
                    entries = [(tid, att, int(Outcome.OK), b"result")
                               for tid, att in sorted(w.held.items())]
                    w.held, w.via_task = {}, set()
                    sw = self.s.touch_worker(w.rid)
                    assert sw is not None
                    self.s.on_worker_results(sw, entries)
            self.s.dispatch()
            self._flush()
            self._advance(2.0)
            self.s.dispatch()
            self._flush()
            self.guarantees()
        unfinished = {tid: self.s.tasks[tid].state.label for tid in self.accepted
                      if not self._finished(tid)}
        assert not unfinished, f"tasks never finished: {unfinished}"
        for tid in self.accepted:
            assert self.received.get((C, tid), 0) >= 1, f"no result ever reached C for {tid}"


MasterCoreMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSchedulerMachine = MasterCoreMachine.TestCase
