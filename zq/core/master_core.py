"""The master's core: every rule of the queue, with no I/O and no clock of its own.

The loop calls ``advance(now, wall)`` at the start of a turn, ``handle(event)`` for each
message (the events and commands are in zq.core.master_events), then ``tick(now)``,
which returns the turn's commands: one Persist, then the Sends, then the Logs. It
persists and commits first, then sends: so an ACCEPTED or ACK always follows the commit
that made it true. ``now`` is monotonic seconds (liveness, retry backoff, rate limits);
``wall`` is unix time, for the dates users set (eta, cron, result ttl). Every state
change goes through ``_move`` (``_move_all`` on the hot paths), following zq.core.states.

What stays here is the task lifecycle: the MasterCore's state, the loop's interface
(handle, tick, next_deadline), _move/_move_all, a task's end (_finish, its watchers and
dependents) and cancellation. The rest are functions of the MasterCore in one module
per concern, which it calls: submission and its fast path in zq.core.submission;
registration, adoption and liveness of workers in zq.core.workers; offer and lease in
zq.core.dispatch; what workers report of running tasks in zq.core.results; the query
side (on_query, its budget, retry, purge) in zq.core.queries; timers, schedules and the
housekeeping pass in zq.core.timers; how long final tasks are kept in zq.core.expiry;
the load after a restart in zq.core.recovery; what the master does about a peer rather
than a task (malformed input, refused entries, a peer that stopped reading) in
zq.core.peers; the invariants (validate) in zq.core.invariants; message building in
zq.core.outbox. MasterCore keeps one-line bindings only for the names the loop and the
tests call.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

from zq.core import (
    detail,
    dispatch,
    expiry,
    invariants,
    limits,
    peers,
    queries,
    recovery,
    results,
    serde,
    states,
    submission,
    timers,
    workers,
    workflows,
)
from zq.core import master_events as ev
from zq.core import messages as m
from zq.core.access import Caller, may_touch
from zq.core.balance import ReadyQueue
from zq.core.catalogue import Catalogue
from zq.core.detail import Recent
from zq.core.dispatch import MAX_LEASES, RateLimits
from zq.core.events import STATE_EVENTS, EventHub
from zq.core.messages import Cmd, Role, State
from zq.core.metrics_tap import MetricsTap
from zq.core.offers import OfferIndex
from zq.core.outbox import Flush, Outbox
from zq.core.periodic import Periodic
from zq.core.results import FREED
from zq.core.shipped import ReadyKey, ready_key, serves
from zq.core.tasks import TaskRecord, cancelled_error
from zq.core.workers import Liveness, WorkerInfo

FINAL = m.FINAL_STATES
DEAD_NOTES_PER_TURN = 5  # ERROR lines for tasks gone DEAD in one turn; the rest counted



class MasterCore:
    def __init__(self, *, master_id: str, heartbeat_interval: float = 1.0, liveness: int = 3,
                 result_ttl: float = limits.RESULT_TTL, max_queued: int = limits.MAX_QUEUED,
                 max_message: int = limits.MAX_MESSAGE, max_finished: int = 200_000,
                 durable: bool = False, rand: Callable[[], float] = lambda: 0.5) -> None:
        self.master_id = master_id
        self.interval, self.liveness = heartbeat_interval, liveness
        self.result_ttl, self.max_queued, self.max_message = result_ttl, max_queued, max_message
        self.max_finished, self.durable, self.rand = max_finished, durable, rand
        self.now = self.wall = 0.0

        self.tasks: dict[str, TaskRecord] = {}
        # ready queues by queue name; a shipped task's by ("code", queue) (core.shipped)
        self.queues: dict[ReadyKey, ReadyQueue] = {}
        self.depth: dict[str, int] = {}  # QUEUED tasks per queue
        self.counts: dict[State, int] = {s: 0 for s in State}
        self.workers: dict[bytes, WorkerInfo] = {}
        self.worker_liveness = Liveness()  # the workers by last heard from and sent to
        self.offers = OfferIndex()  # the workers dispatch may offer to, in its orders
        self.sessions: dict[str, bytes] = {}  # session token -> rid of its latest HELLO
        self.lease: dict[str, bytes] = {}  # task id -> rid of the worker holding it
        self.watcher: dict[str, bytes] = {}  # task id -> the client to push results to
        self.more_watchers: dict[str, set[bytes]] = {}
        self.keys: dict[str, str] = {}  # dedup key -> task id
        self.waiting: dict[str, list[str]] = {}  # task id -> tasks that run after it
        # Workflows (zq.core.workflows): input task id -> tasks not final yet that take
        # its result; and those of them whose results the expiry reached meanwhile.
        self.kept: dict[str, int] = {}
        self.parked: set[str] = set()
        # Pending task id -> its entries in `waiting` not released yet: a task waiting
        # for 10,000 others (a chord) is checked once, not once per one that succeeds.
        self.unmet: dict[str, int] = {}
        self.cancelling: set[str] = set()  # running tasks told to stop; kept in meta
        self._cancelling_changed = False
        self.timers: list[tuple[float, int, str]] = []  # (wall time, seq, task id)
        # Waits the master measures itself (retry backoff, rate limits) run on the
        # monotonic clock: a step of the wall clock must not stretch or cut them.
        self.delays: list[tuple[float, int, str]] = []  # (monotonic time, seq, task id)
        # Final tasks until their results expire (docs/TASKS.md: strictly by their own
        # ttl): those on the master's --result-ttl in the order they finished, which is
        # the order they expire in; those with their own result_ttl by expiry time.
        self.finished: deque[str] = deque()  # final task ids, oldest first
        self.expiring: list[tuple[float, int, str]] = []  # (wall time, seq, task id)
        self.rates = RateLimits()  # per task name
        self.held: list[TaskRecord] = []  # restored tasks waiting for workers to re-register
        self.held_ids: set[str] = set()  # their ids: a HELLO may claim these
        self.hold_until = 0.0
        self.seq = 0
        self.next_housekeeping = 0.0
        self.done_log: deque[tuple[float, int]] = deque()  # (second, tasks finished in it)
        self.dropped = 0  # malformed messages seen
        self.ignored_results = 0  # results from a worker the task was not leased to
        self.dropped_sessions = 0  # peers dropped because they stopped reading
        self.queries_refused = 0  # over a peer's query budget
        # With keys: task id -> the client key that submitted it (in memory only: after
        # a restart only an admin may cancel or watch the tasks restored).
        self._caller: Caller | None = None  # of the SUBMIT being handled
        self._scanned = 0  # tasks the query being answered looked at
        self._rows = 0  # rows answered past one per list entry (retry_many's ids, get's detail)
        self.query_budget: dict[bytes, list[float]] = {}  # rid -> [bytes left, at now]
        self.timed_out = 0  # leases taken back past their time limit
        # Leases that ended without a final result: task id -> {attempt: session}, so a
        # late result of that attempt from that worker still counts (the first wins).
        self.past: dict[str, dict[int, str]] = {}
        # Restored tasks whose lease is gone (a lease names a connection, which the
        # restart ended): until the recovery hold ends a result for one counts from any
        # worker.
        self.restored_unleased: set[str] = set()
        # (monotonic due time, seq, task id, attempt, rid): leases with a time limit
        self.deadlines: list[tuple[float, int, str, int, bytes]] = []
        self.bad_entries = 0  # entries of batches refused alone
        # False while the store cannot commit: a SUBMIT gets BUSY, nothing is leased.
        self.store_writable = True
        self.longest_turn = 0.0  # seconds: the master's loop measures it (status shows it)
        # {spec, sync, durable}: the store as status shows it (the loop sets spec and sync)
        self.store_info: dict[str, Any] = {"spec": "", "sync": "", "durable": durable}
        self._more_to_lease = False  # the last tick stopped leasing at MAX_LEASES

        self.periodic = Periodic()
        self.recent = Recent()  # latest chunks and past attempts, for `get` (zq.core.detail)
        # task id -> (head, size) of argument payloads read back for the next `get`
        self.loaded_args: dict[str, tuple[bytes, int]] = {}
        self.catalogue = Catalogue()  # task names the workers announced, and their options
        # Names submitted while no worker had announced them: when one is, its tasks that
        # have not started yet get its declared options (workers._fill_waiting).
        self.unannounced: set[str] = set()
        self._meta: dict[str, Any] = {}
        self.outbox = Outbox()
        self._push = self.outbox.push  # bound once: called per task on the hot path
        self.events = EventHub()  # subscriptions (1.3); every emit is behind `if .subs`
        self._push_many = self.outbox.push_many
        self._dirty: dict[str, TaskRecord] = {}
        self._inserted: set[str] = set()  # ids in _dirty first saved this turn
        self._deleted: list[str] = []
        self._notices: list[tuple[str, str]] = []
        self._dead_noted = 0  # tasks gone DEAD this turn (ERROR lines past a few: counted)
        self._answered: set[tuple[bytes, str]] = set()  # finals sent this turn by WATCH
        # With metrics on (the loop sets one): this turn's submitted, leased, finished and
        # retried tasks, one append per batch. None: metrics off, nothing gathered.
        self.tap: MetricsTap | None = None

    # --- the loop's interface: events in, commands out ---------------------------------

    def advance(self, now: float, wall: float) -> None:
        """Set both clocks for the turn about to be handled (before its events)."""
        self.now, self.wall = now, wall

    def handle(self, event: ev.Event) -> list[ev.Command]:
        """Apply one event. What it makes the master persist and send comes out of the
        next tick(), once per turn: one turn's answers to a peer then go in one message
        (ACKs, RESULTs batched) after one commit. So only Stopping returns commands
        (the last Persist); the list is there for the shape the three cores share."""
        out = _EVENT_HANDLERS[type(event)](self, event)
        return [] if out is None else out

    def tick(self, now: float) -> list[ev.Command]:
        """End of a turn: upkeep when due (liveness, heartbeats, timers, expiry), leases
        (at most MAX_LEASES), then the turn's output: one Persist (possibly empty),
        then each Send, then each Log. The loop persists and commits before it sends."""
        self.now = now
        if now >= self.next_housekeeping or timers.due(self):
            timers.housekeeping(self)
        self._more_to_lease = dispatch.dispatch(self, MAX_LEASES)
        return self._commands(self.flush())

    def _commands(self, out: Flush) -> list[ev.Command]:
        cmds: list[ev.Command] = [ev.Persist(out.saves, out.updates, out.deletes, out.meta)]
        cmds.extend([ev.Send(rid, msg) for rid, msg in out.messages])
        cmds.extend([ev.Log(level, text) for level, text in out.notices])
        return cmds

    # --- the events --------------------------------------------------------------------

    def _on_message(self, e: ev.MessageReceived) -> None:
        """One message: a worker's (but HELLO) marks it alive, or is refused with
        DISCONNECT if it never registered; a client's names its caller. Then the entries
        of a batch the codec refused alone are answered."""
        msg, rid = e.message, e.rid
        handler = _MESSAGE_HANDLERS.get((e.role, type(msg)))
        if e.role is Role.WORKER and type(msg) is not m.Hello:
            w = workers.touch_worker(self, rid)
            if w is None or handler is None:
                return
            handler(self, w, msg)
        elif e.role is Role.CLIENT and handler is not None:
            handler(self, Caller(rid, e.key, e.admin), msg)
        elif type(msg) is m.Hello and msg.allow_code and e.key is None:
            workers.refuse_code(self, rid, msg)  # shipped code needs admitted peers only
        elif handler is not None:
            handler(self, rid, msg)
        bad = getattr(msg, "bad", None)
        if bad:
            peers.on_bad_entries(self, rid, msg.cmd, bad)

    def _on_garbage(self, e: ev.GarbageReceived) -> None:
        if e.answer:
            peers.on_bad_message(self, e.rid, e.reason)
        else:
            self.dropped += 1

    def _on_dropped(self, e: ev.MessageDropped) -> None:
        self.dropped += 1

    def _on_store(self, e: ev.StoreChanged) -> None:
        self.store_writable = e.writable

    def _on_loaded(self, e: ev.RecordsLoaded) -> None:
        for t in e.records:
            recovery.adopt_loaded(self, t)
        # what the `get` about to be answered shows (its head only: bounded)
        self.loaded_args = {tid: detail.head(p, detail.ARGS_HEAD)
                            for tid, p in e.args.items() if p}
        if self.loaded_args and e.rid:  # reading them cost the loop their whole size
            queries.charge(self, e.rid, sum(n for _, n in self.loaded_args.values()))

    def _on_stopping(self, e: ev.Stopping) -> list[ev.Command]:
        """What is left to persist (and to log); nothing more is leased or sent."""
        self._more_to_lease = False
        return [c for c in self._commands(self.flush()) if type(c) is not ev.Send]

    def _on_failed(self, e: ev.HandlingFailed) -> None:
        peers.on_failed_message(self, e.rid, e.reason, e.request_id)

    def _on_refused(self, e: ev.EntriesRefused) -> None:
        peers.on_bad_entries(self, e.rid, e.cmd, e.bad)

    def _on_stopped_reading(self, e: ev.PeerStoppedReading) -> None:
        peers.drop_peer(self, e.rid)

    def _on_revoked(self, e: ev.KeyRevoked) -> None:
        workers.on_worker_revoked(self, e.rid, e.reason)

    def _save(self, t: TaskRecord) -> None:
        if self.durable:
            self._dirty[t.id] = t

    def flush(self) -> Flush:
        new = self._inserted
        if len(new) == len(self._dirty):
            saves, updates = list(self._dirty.values()), []
        else:
            saves = [t for tid, t in self._dirty.items() if tid in new]
            updates = [t for tid, t in self._dirty.items() if tid not in new]
        if self._cancelling_changed:  # stored before the CANCEL goes out: a restart
            self._meta["cancelling"] = list(self.cancelling)  # cannot rerun the task
            self._cancelling_changed = False
        if self._dead_noted > DEAD_NOTES_PER_TURN:
            self._notices.append(("error", f"and {self._dead_noted - DEAD_NOTES_PER_TURN} "
                                           "more task(s) dead this turn, not logged one by one"))
        self._dead_noted = 0
        out = Flush(saves=saves, updates=updates, deletes=self._deleted, meta=self._meta,
                    notices=self._notices)
        self._dirty, self._inserted, self._deleted, self._meta = {}, set(), [], {}
        self._notices = []
        self._answered = set()
        if self.events.subs:
            for rid, batch in self.events.flush():
                self._push(rid, Cmd.EVENTS, batch)
        self.worker_liveness.told(self.outbox.peers(), self.now)
        out.messages = self.outbox.take()
        return out

    def next_deadline(self) -> float:
        """Monotonic time by which tick() should run again (now: at once, more tasks
        wait to be leased than one tick leases)."""
        if self._more_to_lease:
            return self.now
        deadline = self.next_housekeeping
        if self.delays:
            deadline = min(deadline, self.delays[0][0])
        for wall_due in (self.timers[0][0] if self.timers else None, self.periodic.next_due()):
            if wall_due is not None:
                deadline = min(deadline, self.now + max(0.0, wall_due - self.wall))
        return deadline

    # --- task state changes ------------------------------------------------------------

    def _move(self, t: TaskRecord, new: State, front: bool = False) -> None:
        """The one way a task changes state. The edge must be in states.EDGES, which
        also says whether the change is stored; the counts, the queue depth, the ready
        queue (front: first among its priority) and t.updated follow."""
        old = t.state
        edge = states.edge(old, new)
        c = self.counts
        c[old] -= 1
        c[new] += 1
        if old is State.QUEUED:
            self.depth[t.queue] -= 1
        t.state = new
        t.updated = self.wall
        if new is State.QUEUED:
            self.depth[t.queue] = self.depth.get(t.queue, 0) + 1
            q = self._ready_queue(ready_key(t.queue, t.name))
            if front:
                q.push_front(t)
            else:
                q.push(t)
        if edge.saved and self.durable:
            self._dirty[t.id] = t
        if self.events.subs and new in STATE_EVENTS:
            self.events.task_event(STATE_EVENTS[new], t, self.wall)

    def _move_all(self, ts: list[TaskRecord], old: State, new: State,
                  started: bool = True) -> None:
        """_move for many tasks, all in `old`, to a state other than QUEUED: the hot
        paths (leases, successes), with one edge check and one count update. From
        QUEUED it is a lease: the attempt's start and queue wait are recorded, unless
        not `started` (it waits in the queue of a worker that says when it starts:
        results.mark_started then)."""
        edge = states.edge(old, new)
        n = len(ts)
        self.counts[old] -= n
        self.counts[new] += n
        wall = self.wall
        if old is State.QUEUED:  # a lease: the attempt starts, after its queue wait
            depth = self.depth
            for t in ts:
                t.state = new
                t.waited = wall - t.updated
                t.started = t.updated = wall
                depth[t.queue] -= 1
            if not started:
                for t in ts:
                    t.started = None
        else:
            for t in ts:
                t.state = new
                t.updated = wall
        if edge.saved and self.durable:
            self._dirty.update([(t.id, t) for t in ts])
        if self.events.subs and new in STATE_EVENTS and started:  # else: at its start
            self.events.task_events(STATE_EVENTS[new], ts, wall)

    def _ready_queue(self, key: ReadyKey) -> ReadyQueue:
        q = self.queues.get(key)
        if q is None:
            q = self.queues[key] = ReadyQueue()
            served = workers.code_served(self) if type(key) is tuple else frozenset()
            for w in self.workers.values():
                if serves(w.queues, w.allow_code, key, served):
                    w.ready_queues.append(q)
                    self.offers.mark(w.rid)
        return q

    def _finish(self, t: TaskRecord, new: State, payload: m.Payload) -> None:
        """t reached a final state: record, tell its watchers, release what waits on it."""
        if self.past:
            self.past.pop(t.id, None)
        if self.restored_unleased:
            self.restored_unleased.discard(t.id)
        if self.unmet:
            self.unmet.pop(t.id, None)
        self._move(t, new)
        t.result = payload
        if new is State.SUCCEEDED:
            t.payload = FREED
        elif new is State.DEAD:
            self._note_dead(t, payload)
        if self.tap is not None:
            self.tap.finished.append((new, [t]))
        if t.id in self.cancelling:
            self.cancelling.discard(t.id)
            self._cancelling_changed = self.durable
        expiry.keep_result(self, t)
        if t.inputs:
            workflows.release_inputs(self, t)
        self._count_done()
        entry = (t.id, int(new), payload)
        rid = self.watcher.pop(t.id, None)
        if rid is not None:
            self._push(rid, Cmd.RESULT, entry)
        for other in self.more_watchers.pop(t.id, ()):
            if other != rid:
                self._push(other, Cmd.RESULT, entry)
        dependents = self.waiting.pop(t.id, None)
        if dependents:
            self._release_dependents(t, dependents)

    def _note_dead(self, t: TaskRecord, payload: m.Payload) -> None:
        """An ERROR line for a task that will never run again: its last attempt failed or
        its worker was lost. The first DEAD_NOTES_PER_TURN of a turn; flush counts the rest."""
        self._dead_noted += 1
        if self._dead_noted <= DEAD_NOTES_PER_TURN:
            err = serde.decode_error(payload)
            self._notices.append(("error", f"task {t.id} {t.name} dead after attempt "
                                           f"{t.attempt}: {err['type']}: {err['message']}"))

    def _count_done(self, n: int = 1) -> None:
        sec = int(self.now)
        log = self.done_log
        if log and log[-1][0] == sec:
            log[-1] = (sec, log[-1][1] + n)
        else:
            log.append((sec, n))
            while log and log[0][0] < sec - 10:
                log.popleft()

    def _release_dependents(self, dep: TaskRecord, dependents: list[str]) -> None:
        unmet = self.unmet
        for tid in dependents:
            t = self.tasks.get(tid)
            if t is None or t.state is not State.PENDING:
                continue
            if dep.state is not State.SUCCEEDED:
                workflows.ended_without_result(self, t, dep)
                continue
            n = unmet.get(tid)
            if n is not None:
                if n > 1:
                    unmet[tid] = n - 1
                    continue
                del unmet[tid]
            if self._deps_done(t):
                self._start_when_due(t)

    def _deps_done(self, t: TaskRecord) -> bool:
        for d in t.after or ():
            dt = self.tasks.get(d)
            # A dependency no longer held was final and, since what runs after a failed
            # task is cancelled at once, succeeded; it was forgotten (ttl, purge) since.
            if dt is not None and dt.state is not State.SUCCEEDED:
                return False
        return True

    def _start_when_due(self, t: TaskRecord) -> None:
        """A PENDING task whose dependencies are done: queue it, or wait for its eta."""
        if t.eta is not None and t.eta > self.wall:
            timers.add_timer(self, t.eta, t)
        else:
            self._move(t, State.QUEUED)

    def _watch(self, tid: str, rid: bytes) -> None:
        cur = self.watcher.get(tid)
        if cur is None:
            self.watcher[tid] = rid
        elif cur != rid:
            self.more_watchers.setdefault(tid, set()).add(rid)

    def _send_final(self, t: TaskRecord, rid: bytes) -> None:
        self._push(rid, Cmd.RESULT, (t.id, int(t.state), t.result or b""))

    # --- clients ---------------------------------------------------------------------

    def on_watch(self, rid: bytes, ids: list[str], caller: Caller | None = None) -> None:
        # Any admitted client may read any task's result (roles: a client key "reads
        # status, tasks and results"); only changing a task is its owner's or an
        # admin's. Owners are not kept across a master restart, and a reconnecting
        # client WATCHes what it still waits for: a check here would fail its futures.
        for tid in ids:
            t = self.tasks.get(tid)
            if t is None:
                self._push(rid, Cmd.REJECTED, (tid, f"unknown task id {tid}"))
            elif t.state in FINAL:
                if (rid, tid) not in self._answered:  # once per peer and turn, however
                    self._answered.add((rid, tid))     # many WATCHes repeat it
                    self._send_final(t, rid)
            else:
                self._watch(tid, rid)
                if t.progress is not None:
                    self._push(rid, Cmd.PROGRESS, (tid, t.attempt, *t.progress))

    def on_cancel(self, rid: bytes, ids: list[str], caller: Caller | None = None) -> None:
        for tid in ids:
            t = self.tasks.get(tid)
            if t is None:
                self._push(rid, Cmd.REJECTED, (tid, f"unknown task id {tid}"))
                continue
            if caller is not None and not may_touch(caller, t.owner):
                self._push(rid, Cmd.REJECTED, (tid, _not_yours(tid, "cancelling")))
                continue
            if t.state not in FINAL:
                self._watch(tid, rid)
            self.cancel(t)

    def cancel(self, t: TaskRecord) -> None:
        if t.state in (State.PENDING, State.QUEUED, State.RETRYING):
            self._finish(t, State.CANCELLED, cancelled_error("cancelled before it ran"))
        elif t.state is State.RUNNING and t.id not in self.cancelling:
            self.cancelling.add(t.id)
            self._cancelling_changed = self.durable
            owner = self.lease.get(t.id)
            if owner is not None:
                self._push(owner, Cmd.CANCEL, t.id)

    # --- the names the loop and the tests call, from the modules that hold them ----------
    # Each is a function of the MasterCore (its first argument): bound here as a method.
    on_hello = workers.on_hello
    load_catalogue = workers.load_catalogue
    touch_worker = workers.touch_worker
    on_credit = workers.on_credit
    on_bye = workers.on_bye
    dispatch = dispatch.dispatch
    on_worker_results = results.on_worker_results
    on_partial = results.on_partial
    on_progress = results.on_progress
    on_started = results.on_started
    on_query = queries.on_query
    housekeeping = timers.housekeeping
    add_schedule = timers.add_schedule
    remove_schedule = timers.remove_schedule
    list_schedules = timers.list_schedules
    restore = recovery.restore
    restore_cancelling = recovery.restore_cancelling
    on_client_heartbeat = peers.on_client_heartbeat
    on_bad_message = peers.on_bad_message
    on_bad_entries = peers.on_bad_entries
    drop_peer = peers.drop_peer
    on_failed_message = peers.on_failed_message
    on_submit = submission.on_submit
    load_rates = submission.load_rates
    validate = invariants.validate


# What each message does, by the role it came in and its type. A worker's handler gets
# its WorkerInfo (touch_worker), a client's its Caller, a HELLO the peer's rid.
_MESSAGE_HANDLERS: dict[tuple[Role, type], Callable[..., None]] = {
    (Role.WORKER, m.Hello): workers.on_hello,
    (Role.WORKER, m.Heartbeat): lambda core, w, msg: None,  # touch_worker was the point
    (Role.WORKER, m.Credit): workers.on_credit,
    (Role.WORKER, m.Result): lambda core, w, msg: results.on_worker_results(core, w,
                                                                           msg.entries),
    (Role.WORKER, m.Partial): lambda core, w, msg: results.on_partial(core, w, msg.entries),
    (Role.WORKER, m.Progress): lambda core, w, msg: results.on_progress(core, w, msg.entries),
    (Role.WORKER, m.Started): lambda core, w, msg: results.on_started(core, w, msg.entries),
    (Role.WORKER, m.Bye): workers.on_bye,
    (Role.CLIENT, m.Submit): lambda core, c, msg: submission.on_submit(core, c.rid,
                                                                       msg.entries, c),
    (Role.CLIENT, m.Watch): lambda core, c, msg: core.on_watch(c.rid, msg.ids, c),
    (Role.CLIENT, m.Cancel): lambda core, c, msg: core.on_cancel(c.rid, msg.ids, c),
    (Role.CLIENT, m.Query): lambda core, c, msg: queries.on_query(core, c, msg.request_id,
                                                                  msg.kind, msg.args),
    (Role.CLIENT, m.Heartbeat): lambda core, c, msg: peers.on_client_heartbeat(core, c.rid),
}

_EVENT_HANDLERS: dict[type, Callable[[Any, Any], list[ev.Command] | None]] = {
    ev.MessageReceived: MasterCore._on_message,
    ev.GarbageReceived: MasterCore._on_garbage,
    ev.MessageDropped: MasterCore._on_dropped,
    ev.HandlingFailed: MasterCore._on_failed,
    ev.EntriesRefused: MasterCore._on_refused,
    ev.PeerStoppedReading: MasterCore._on_stopped_reading,
    ev.KeyRevoked: MasterCore._on_revoked,
    ev.StoreChanged: MasterCore._on_store,
    ev.RecordsLoaded: MasterCore._on_loaded,
    ev.Stopping: MasterCore._on_stopping,
}


def _not_yours(tid: str, doing: str) -> str:
    return (f"task {tid} was not submitted with this client's key: {doing} it needs the "
            "admin role")
