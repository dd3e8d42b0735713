"""What the master knows of each connected worker (WorkerInfo: its session, credit,
leases and liveness marks, and the measures the dispatcher orders workers by), and the
master's rules for workers: registration (HELLO, the task catalogue it announces),
adoption of the tasks a re-registering worker still runs, credit, BYE, and liveness
(a worker lost hands its tasks back to the queue). The rules are functions of the
MasterCore they change, which calls them (zq.core.master_core)."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from zq.core import messages as m
from zq.core import serde, submission
from zq.core.balance import ReadyQueue
from zq.core.catalogue import META_KEY as CATALOGUE_KEY
from zq.core.messages import Cmd, State
from zq.core.shipped import ReadyKey, ready_key, serves
from zq.core.tasks import TaskRecord, cancelled_error

if TYPE_CHECKING:
    from zq.core.master_core import MasterCore

FINAL = m.FINAL_STATES
LOST_ALLOWANCE = 2  # extra attempts a task gets against dying workers, beyond `retries`

# The credit the master honours: a worker's declared concurrency (at most
# MAX_CONCURRENCY) plus at most PREFETCH_CEILING prefetched tasks (the adaptive prefetch
# of zq's worker never asks for more): a worker declaring a huge credit cannot hoard
# the queue.
MAX_CONCURRENCY = 10_000
PREFETCH_CEILING = 2_000

# The session of a 1.0 worker, which sends no token, is its name (as in 1.0): the prefix
# holds a ':', which a token never does, so it matches no worker that sent one.
LEGACY_SESSION = "1.0:"
SESSION_SHOWN = 8  # characters of a session token that `status` shows: enough to tell
# workers apart, too few to claim another worker's tasks with


class WorkerInfo:
    """What the master knows of one connected worker. A worker is known by its session
    token (``session``), which its process keeps across reconnects; its name is a label
    that several workers may share."""

    __slots__ = ("rid", "name", "host", "pid", "queues", "concurrency", "pool", "credit",
                 "leased", "last_seen", "last_sent", "idle_since", "ready_queues", "adopted",
                 "session", "max_credit", "overdue", "allow_code", "starts")

    def __init__(self, rid: bytes, hello: m.Hello, now: float) -> None:
        self.rid = rid
        self.session = hello.session or LEGACY_SESSION + hello.name
        self.name, self.host, self.pid = hello.name, hello.host, hello.pid
        self.queues = tuple(hello.queues) or ("default",)
        self.concurrency, self.pool = hello.concurrency, hello.pool
        # 1.4: it sends STARTED, so a task leased to it behind its busy slots waits
        # there, not started, until STARTED (or its RESULT) says it runs.
        self.starts = hello.started
        self.max_credit = min(hello.concurrency, MAX_CONCURRENCY) + PREFETCH_CEILING
        self.credit = min(hello.credit, self.max_credit)
        self.leased: set[str] = set()
        # Taken back past their time limit and not reported since: while any is, the
        # worker is offered nothing more (a worker that never answers hoards no more).
        self.overdue: set[str] = set()
        self.adopted: set[str] = set()  # leased by HELLO.running: attempt unknown
        self.last_seen = self.last_sent = self.idle_since = now
        self.ready_queues: list[ReadyQueue] = []
        self.allow_code = hello.allow_code  # takes shipped tasks (only a keyed master admits it)

    @property
    def free(self) -> int:
        """Tasks the master may still send: none while a task taken back past its time
        limit is not answered (the worker then answers CANCEL at once, if it reads)."""
        return 0 if self.overdue else self.credit - len(self.leased)

    @property
    def short_session(self) -> str:
        """What `status` and the log show of the token ("" for a 1.0 worker)."""
        return "" if self.session.startswith(LEGACY_SESSION) else self.session[:SESSION_SHOWN]

    def as_dict(self, now: float) -> dict[str, Any]:
        return {"name": self.name, "session": self.short_session, "host": self.host,
                "pid": self.pid, "pool": self.pool,
                "concurrency": self.concurrency, "credit": self.credit,
                "queues": list(self.queues), "running": len(self.leased),
                "overdue": len(self.overdue), "allow_code": self.allow_code,
                "last_seen": round(now - self.last_seen, 3)}


class Liveness:
    """The registered workers in two orders: by when the master last heard from each
    (last_seen), and by when it last sent to each (last_sent). The loop's clock is
    monotonic, so a mark never goes back: moving the worker to the end of its order at
    each mark keeps both orders sorted by their mark, and the liveness pass reads only
    the workers that are due, from the front, instead of every worker every pass (1,000
    workers, four passes a second). Marks go through heard() and told(), never straight
    to the WorkerInfo fields."""

    __slots__ = ("_heard", "_told")

    def __init__(self) -> None:
        self._heard: OrderedDict[bytes, WorkerInfo] = OrderedDict()
        self._told: OrderedDict[bytes, WorkerInfo] = OrderedDict()

    def add(self, w: WorkerInfo) -> None:
        """A worker registered (its marks: now, newest of all)."""
        for order in (self._heard, self._told):
            order.pop(w.rid, None)
            order[w.rid] = w

    def remove(self, w: WorkerInfo) -> None:
        """w left; a newer registration on the same rid stays."""
        for order in (self._heard, self._told):
            if order.get(w.rid) is w:
                del order[w.rid]

    def heard(self, w: WorkerInfo, now: float) -> None:
        w.last_seen = now
        self._heard.move_to_end(w.rid)

    def told(self, rids: Any, now: float) -> None:
        """The master sent something to each of these peers (any rid: clients are not
        in the order and are skipped)."""
        order = self._told
        for rid in rids:
            w = order.get(rid)
            if w is not None:
                w.last_sent = now
                order.move_to_end(rid)

    def silent(self, now: float, window: float) -> list[WorkerInfo]:
        """The workers not heard from for more than window seconds, oldest first."""
        return _due(self._heard, now, window, "last_seen", strict=True)

    def quiet(self, now: float, interval: float) -> list[WorkerInfo]:
        """The workers sent nothing for interval seconds or more, oldest first."""
        return _due(self._told, now, interval, "last_sent", strict=False)

    def check(self, workers: dict[bytes, WorkerInfo]) -> None:
        """For MasterCore.validate: both orders hold exactly the registered workers,
        each sorted by its mark."""
        for order, mark in ((self._heard, "last_seen"), (self._told, "last_sent")):
            assert order.keys() == workers.keys(), f"liveness {mark} order: wrong workers"
            assert all(w is workers[rid] for rid, w in order.items()), f"stale {mark} entry"
            marks = [getattr(w, mark) for w in order.values()]
            assert marks == sorted(marks), f"liveness order not sorted by {mark}"


def _due(order: OrderedDict[bytes, WorkerInfo], now: float, after: float, mark: str,
         strict: bool) -> list[WorkerInfo]:
    due = []
    for w in order.values():
        age = now - getattr(w, mark)
        if age < after or (strict and age == after):
            break
        due.append(w)
    return due


def idle_slots(w: WorkerInfo) -> int:
    return 0 if w.overdue else w.concurrency - len(w.leased)


# --- registration and the task catalogue ----------------------------------------

def on_hello(core: MasterCore, rid: bytes, hello: m.Hello) -> None:
    old = core.workers.pop(rid, None)
    w = WorkerInfo(rid, hello, core.now)
    core.workers[rid] = w
    core.worker_liveness.add(w)
    core.offers.added(rid)
    if w.allow_code or (old is not None and old.allow_code):
        reroute_code(core)  # workers of its queues without allow_code stop taking code
    else:  # shipped tasks' ready queues are rare: only then who serves code matters
        shipped = any(type(key) is tuple for key in core.queues)
        w.ready_queues = ready_queues_of(core, w, code_served(core) if shipped else set())
    _take_session(core, w, old)
    if core.events.subs:
        core.events.worker_event("joined", w, core.wall)
    core._notices.append(("info", (
        f"worker {w.name} ({w.host}, pid {w.pid}) {'re-' if old else ''}registered: "
        f"{w.pool} pool of {w.concurrency}, credit {w.credit}, queues "
        f"{','.join(w.queues)}" + (f", still running {len(hello.running)}"
                                   if hello.running else "")
        + (f", session {w.short_session}" if w.short_session else "")
        + (", runs shipped code (--allow-code)" if w.allow_code else ""))))
    if old is not None:  # the same connection registers again: keep what it still runs
        for tid in list(old.leased):
            if tid not in hello.running:
                lost(core, tid, old)
    core._push(rid, Cmd.WELCOME, m.Welcome(core.interval, core.liveness, core.max_message,
                                           core.master_id, started=w.starts))
    for tid in hello.running:
        _adopt(core, tid, w)
    if hello.catalogue:
        _announce(core, w, hello.catalogue)


CODE_NEEDS_KEYS = (
    "this master runs without keys, so it refuses workers started with --allow-code: such "
    "a worker runs code that clients send, and without keys any peer that reaches the "
    "master could send it: start the master with --keys (zq keys init), or the worker "
    "without --allow-code")


def refuse_code(core: MasterCore, rid: bytes, hello: m.Hello) -> None:
    """A HELLO with allow_code reached a master without keys: a final DISCONNECT (the
    worker stops and says why), never a registration."""
    old = core.workers.get(rid)
    if old is not None:
        drop_worker(core, old)
    core._notices.append(("warning", (
        f"refused worker {hello.name} ({hello.host}, pid {hello.pid}): it runs shipped code "
        "(--allow-code), which this master admits only with --keys")))
    core._push(rid, Cmd.DISCONNECT, m.Disconnect(CODE_NEEDS_KEYS, final=True))


def code_served(core: MasterCore) -> set[str]:
    """The queues some registered worker with allow_code serves (core.shipped)."""
    return {q for w in core.workers.values() if w.allow_code for q in w.queues}


def ready_queues_of(core: MasterCore, w: WorkerInfo, served: set[str]) -> list[ReadyQueue]:
    return [q for key, q in core.queues.items() if serves(w.queues, w.allow_code, key, served)]


def reroute_code(core: MasterCore) -> None:
    """A worker with allow_code came or went: which workers take shipped tasks changes
    (core.shipped.serves), so every worker's ready queues are listed again. Rare: only
    such workers' HELLOs and departures."""
    served = code_served(core)
    for w in core.workers.values():
        w.ready_queues = ready_queues_of(core, w, served)
    core.offers.mark_all(core.workers)


def _announce(core: MasterCore, w: WorkerInfo,
              entries: dict[str, dict[str, Any]]) -> None:
    """Learn the task names w runs and the options they declare (stored, so a
    restart keeps them); tasks submitted before a name was first announced and not
    started yet get its options now."""
    new, problems, changed = core.catalogue.announce(entries, core.wall)
    for why in problems[:5]:
        core._notices.append(("warning", f"worker {w.name} ({w.host}, pid {w.pid}) "
                                         f"declares options zq cannot use: {why}"))
    if changed:
        core._meta[CATALOGUE_KEY] = core.catalogue.dump()
    late = core.unannounced.intersection(new)
    if late:
        _fill_waiting(core, late)


def load_catalogue(core: MasterCore, dumped: Any) -> None:
    """The catalogue kept in the store (before restore(): it decides which restored
    tasks still wait for their name to be announced)."""
    for why in core.catalogue.load(dumped)[:5]:
        core._notices.append(("warning", f"stored task catalogue: skipped {why}"))


def _fill_waiting(core: MasterCore, names: set[str]) -> None:
    """Give the tasks of these newly announced names that have not started yet their
    declared options, where the record holds the default (the record cannot tell
    an option given at its default from one not given). One pass over the tasks,
    once per name ever: names are announced for the first time at deploys."""
    core.unannounced -= names
    declared = core.catalogue.declared
    held = {t.id for t in core.held}
    moved: dict[ReadyKey, set[str]] = {}  # ready queue it was in -> ids that leave it
    requeue: list[TaskRecord] = []
    for t in core.tasks.values():
        d = declared.get(t.name) if t.name in names else None
        if not d or t.attempt or t.state not in (State.QUEUED, State.PENDING):
            continue
        where = (t.queue, t.priority)
        _fill_record(t, d)
        if "rate_limit" in d:
            submission.set_rate(core, t.name, d["rate_limit"])
        core._save(t)
        if t.state is State.QUEUED and (t.queue, t.priority) != where:
            _count_queue_change(core, where[0], t.queue)
            if t.id not in held:
                moved.setdefault(ready_key(where[0], t.name), set()).add(t.id)
                requeue.append(t)
    for queue, ids in moved.items():
        core.queues[queue].discard(ids)
    for t in requeue:
        core._ready_queue(ready_key(t.queue, t.name)).push(t)


def _count_queue_change(core: MasterCore, old: str, new: str) -> None:
    """A QUEUED task moved from queue `old` to `new` (its declared options came)."""
    core.depth[old] -= 1
    core.depth[new] = core.depth.get(new, 0) + 1


# --- adoption: a worker that registers again keeps what it still runs ------------

def _take_session(core: MasterCore, w: WorkerInfo, old: WorkerInfo | None) -> None:
    """w's session is now served on w.rid. The same session on another connection is
    the same worker process on a socket it closed: nothing more is sent there, and
    what it still leases is adopted by w (if w still runs it) or lost when that
    entry expires (by then w has sent again any result of it)."""
    if old is not None and core.sessions.get(old.session) == w.rid:
        del core.sessions[old.session]
    before = core.sessions.get(w.session)
    if before is not None and before != w.rid:
        prev = core.workers.get(before)
        if prev is not None:
            prev.credit = 0
            core.offers.mark(before)
    core.sessions[w.session] = w.rid


def _adopt(core: MasterCore, tid: str, w: WorkerInfo) -> None:
    """A re-registering worker still runs tid: keep it leased there, don't run it twice."""
    t = core.tasks.get(tid)
    if t is None or t.state in FINAL:
        core._push(w.rid, Cmd.CANCEL, tid)
        return
    owner = core.lease.get(tid)
    if owner is not None:
        ow = core.workers.get(owner)
        if ow is not None and ow.session != w.session:
            return  # another live worker runs it too; the first result wins
        if ow is not None:
            ow.leased.discard(tid)
            core.offers.mark(owner)
    if t.state in (State.QUEUED, State.PENDING, State.RETRYING):
        if not _may_claim(core, t, w):
            # Not given to this session: a HELLO cannot make the master lease it a
            # task (it could then settle it with any result). Stop that run.
            core._push(w.rid, Cmd.CANCEL, tid)
            return
        core._move(t, State.RUNNING)
        t.attempt = max(t.attempt, 1)
        w.adopted.add(tid)
    if t.state is State.RUNNING:
        t.worker = w.name
        core.lease[tid] = w.rid
        w.leased.add(tid)
        core._save(t)


def _may_claim(core: MasterCore, t: TaskRecord, w: WorkerInfo) -> bool:
    """Whether w's HELLO may take back a task that is not running now: one restored
    after a master restart and held for its workers to re-register, or one whose
    attempt this same session held before the master gave it up (a worker cut off
    past the liveness window, still running it). Any other task was never given
    to w."""
    if t.id in core.held_ids and core.now < core.hold_until:
        return True
    past = core.past.get(t.id)
    return past is not None and w.session in past.values()


# --- credit, goodbye, revocation and liveness ------------------------------------

def touch_worker(core: MasterCore, rid: bytes) -> WorkerInfo | None:
    """The registered worker behind rid, marked alive; None (and DISCONNECT) if none."""
    w = core.workers.get(rid)
    if w is None:
        core._push(rid, Cmd.DISCONNECT, "unknown worker: send HELLO to register")
        return None
    core.worker_liveness.heard(w, core.now)
    return w


def on_credit(core: MasterCore, w: WorkerInfo, msg: m.Credit) -> None:
    w.credit = min(msg.credit, w.max_credit)
    core.offers.mark(w.rid)
    _hand_back(core, w, msg.returned)


def on_bye(core: MasterCore, w: WorkerInfo, msg: m.Bye) -> None:
    core._notices.append(("info", f"worker {w.name} ({w.host}, pid {w.pid}) said "
                                  f"goodbye, handing back {len(msg.returned)} task(s)"))
    _hand_back(core, w, msg.returned)
    drop_worker(core, w, "left")


def _hand_back(core: MasterCore, w: WorkerInfo, ids: list[str]) -> None:
    if ids:
        core.offers.mark(w.rid)
    for tid in ids:
        if tid not in w.leased:
            if w.overdue:
                w.overdue.discard(tid)
            continue
        w.leased.discard(tid)
        w.adopted.discard(tid)
        core.lease.pop(tid, None)
        t = core.tasks.get(tid)
        if t is None or t.state is not State.RUNNING:
            continue
        if t.id in core.cancelling:
            core._finish(t, State.CANCELLED, cancelled_error("cancelled before it ran"))
            continue
        t.attempt -= 1  # it never started
        core._move(t, State.QUEUED, front=True)


def on_worker_revoked(core: MasterCore, rid: bytes, reason: str) -> bool:
    """The master no longer admits this worker's key (SIGHUP): DISCONNECT it and count
    the tasks leased to it as lost. False if rid is no registered worker."""
    w = core.workers.get(rid)
    if w is None:
        return False
    core._notices.append(("warning", f"worker {w.name} ({w.host}, pid {w.pid}) dropped: "
                                     f"{reason}"))  # drop_worker names the tasks it held
    core._push(rid, Cmd.DISCONNECT, reason)
    drop_worker(core, w)
    return True


def drop_worker(core: MasterCore, w: WorkerInfo, event: str = "lost") -> None:
    if core.workers.get(w.rid) is w:
        del core.workers[w.rid]
    core.worker_liveness.remove(w)
    core.offers.mark(w.rid)
    if w.allow_code:
        reroute_code(core)
    if core.events.subs:
        core.events.worker_event(event, w, core.wall)
    if core.sessions.get(w.session) == w.rid:
        del core.sessions[w.session]
    held = list(w.leased)
    for tid in held:
        lost(core, tid, w)
    if held:
        _note_lost_tasks(core, w, held)


def _note_lost_tasks(core: MasterCore, w: WorkerInfo, held: list[str]) -> None:
    """A WARNING naming the tasks w held when it went: which run again, which died
    (the first few ids of each, and how many)."""
    dead = [tid for tid in held if (t := core.tasks.get(tid)) is not None
            and t.state is State.DEAD]
    again = [tid for tid in held if (t := core.tasks.get(tid)) is not None
             and t.state in (State.QUEUED, State.RETRYING)]
    parts = [f"{what} {len(ids)}: {_first_ids(ids)}" for what, ids in
             (("run again", again), ("dead", dead)) if ids]
    core._notices.append(("warning", f"worker {w.name} ({w.host}, pid {w.pid}) gone "
                                     f"holding {len(held)} task(s); "
                                     + ("; ".join(parts) or "none left to run")))


def lost(core: MasterCore, tid: str, w: WorkerInfo, timed_out: bool = False) -> None:
    """w will never report tid (or, timed_out, not in time): run it again elsewhere,
    or give up on it. A late result of this attempt from w still counts."""
    w.leased.discard(tid)
    w.adopted.discard(tid)
    core.offers.mark(w.rid)
    held = core.lease.get(tid) == w.rid
    if held:
        del core.lease[tid]
    t = core.tasks.get(tid)
    if t is None or t.state is not State.RUNNING:
        return
    if held:
        core.past.setdefault(tid, {})[t.attempt] = w.session
    allowed = t.retries + 1 + LOST_ALLOWANCE
    if tid in core.cancelling:
        core._finish(t, State.CANCELLED, cancelled_error("cancelled; its worker left"))
    elif t.attempt < allowed:
        core.recent.attempt_ended(t, "timed out" if timed_out else "lost", core.wall)
        core._move(t, State.QUEUED, front=True)
    elif timed_out:
        core._finish(t, State.DEAD, serde.encode_error(
            "TaskTimeout", f"worker {w.name} did not report it within its time limit "
            f"of {t.timeout:g} s plus a grace, on attempt {t.attempt} of {allowed}"))
    else:
        core._finish(t, State.DEAD, serde.encode_error(
            "WorkerLost", f"worker {w.name} was lost while running it, "
            f"on attempt {t.attempt} of {allowed}"))


def check_liveness(core: MasterCore) -> None:
    """Drop the workers silent past the liveness window; send a HEARTBEAT to those the
    master sent nothing to for a heartbeat interval. Reads only the workers due
    (Liveness), not every worker."""
    now, interval, live = core.now, core.interval, core.worker_liveness
    for w in live.silent(now, interval * core.liveness):
        core._notices.append(("warning", (  # drop_worker names the tasks it held
            f"worker {w.name} ({w.host}, pid {w.pid}) silent for "
            f"{now - w.last_seen:.1f} s: dropped")))
        drop_worker(core, w)
    push = core._push
    for w in live.quiet(now, interval):
        push(w.rid, Cmd.HEARTBEAT, None)


def _fill_record(t: TaskRecord, declared: dict[str, Any]) -> None:
    """Declared options into a task's record wherever it holds the protocol default."""
    get = declared.get
    if t.queue == "default":
        t.queue = get("queue", t.queue)
    if t.priority == 0:
        t.priority = get("priority", 0)
    options: dict[str, Any] = {}  # one set_options: defaults given change nothing
    if t.retries == 0:
        options["retries"] = get("retries", 0)
    if t.timeout is None and "timeout" in declared:
        options["timeout"] = float(declared["timeout"])
    if t.retry_backoff == 1.0:
        options["retry_backoff"] = float(get("retry_backoff", 1.0))
    if t.retry_backoff_max == 600.0:
        options["retry_backoff_max"] = float(get("retry_backoff_max", 600.0))
    if t.retry_on is None and "retry_on" in declared:
        options["retry_on"] = list(declared["retry_on"])
    if t.result_ttl is None and "result_ttl" in declared:
        options["result_ttl"] = float(declared["result_ttl"])
    t.set_options(**options)


def _first_ids(ids: list[str], shown: int = 5) -> str:
    """A few task ids for a log line, and how many more."""
    more = len(ids) - shown
    return ", ".join(ids[:shown]) + (f" and {more} more" if more > 0 else "")
