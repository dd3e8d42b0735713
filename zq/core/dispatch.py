"""Offering and leasing: which queued tasks go to which worker (dispatch, DESIGN §3),
the lease itself, the master's enforcement of time limits, and the limits on leasing:
how many tasks one tick leases, the grace the master gives a task's time limit, and the
rate limits per task name (a token bucket each). The functions take the MasterCore they
change, which calls them (zq.core.master_core)."""

from __future__ import annotations

import heapq
import math
from typing import TYPE_CHECKING, Any

from zq.core import balance, timers
from zq.core.balance import parse_rate
from zq.core.messages import Cmd, State
from zq.core.tasks import TaskRecord
from zq.core.workers import WorkerInfo, idle_slots, lost
from zq.core.workflows import with_inputs

if TYPE_CHECKING:
    from zq.core.master_core import MasterCore

# Tasks leased per tick at most (~15 ms): a worker may hold 2,000 tasks and more, and a
# thousand workers joining at once would otherwise be leased millions in one turn.
MAX_LEASES = 5000
# The master enforces time limits too: a task leased longer than its timeout plus this
# grace (at least 2 liveness windows) is taken back, counted as a lost attempt, and the
# worker is sent CANCEL. The worker's own limit stays the first line.
TIME_LIMIT_GRACE = 5.0
# A due time reached within a microsecond counts as reached: clocks are floats, and a
# time summed from steps (0.05 ten times) falls a hair short of the product (0.5).
EPSILON = 1e-6


class RateLimits:
    """rate_limit="100/s" per task name: a token bucket holding one second's worth (at
    least one token), refilled on the monotonic clock."""

    __slots__ = ("_buckets",)

    def __init__(self) -> None:
        self._buckets: dict[str, list[float]] = {}  # name -> [per second, tokens, at]

    def __bool__(self) -> bool:
        return bool(self._buckets)

    def __contains__(self, name: object) -> bool:
        return name in self._buckets

    def per_second(self, name: str) -> float | None:
        b = self._buckets.get(name)
        return None if b is None else b[0]

    def set(self, name: str, spec: str, now: float, *, may_change: bool) -> bool:
        """Set name's rate from a spec ('100/s', '20/m', '5/h'); True if it changed.
        ValueError for a bad spec, or a change to a set rate when not may_change."""
        per_second = parse_rate(spec)
        cur = self._buckets.get(name)
        if cur is not None and cur[0] == per_second:
            return False
        if cur is not None and not may_change:
            raise ValueError(f"the rate limit of {name} is already set ({cur[0]:g}/s); "
                             "changing it needs the admin role")
        if cur is None:
            self._buckets[name] = [per_second, 1.0, now]
        else:
            cur[0] = per_second
        return True

    def load(self, stored: Any, now: float) -> list[str]:
        """The rate limits a store kept (task name -> tasks per second); one that is not
        a finite positive number is skipped. Returns a log line per skipped one."""
        if stored is None:
            return []
        if type(stored) is not dict:
            return [f"the stored rate limits are not a table ({type(stored).__name__}): "
                    "none loaded"]
        notes = []
        for name, per_second in stored.items():
            if (type(name) is str and type(per_second) in (int, float)
                    and 0 < per_second < math.inf):
                self._buckets[name] = [float(per_second), 1.0, now]
            else:
                notes.append(f"stored rate limit {str(name)[:80]!r}: {per_second!r} is not "
                             "a number of tasks per second: skipped")
        return notes

    def dump(self) -> dict[str, float]:
        """What the store keeps: task name -> tasks per second."""
        return {n: b[0] for n, b in self._buckets.items()}

    def take(self, name: str, now: float) -> float | None:
        """Take a token for one task of name: None if there was one, else the seconds
        until one is due."""
        bucket = self._buckets[name]
        per_second, tokens, at = bucket
        tokens = min(max(1.0, per_second), tokens + (now - at) * per_second)
        bucket[2] = now
        if tokens >= 1.0 - EPSILON:
            bucket[1] = max(0.0, tokens - 1.0)
            return None
        bucket[1] = tokens
        return (1.0 - tokens) / per_second


# --- offer and lease ----------------------------------------------------------------

def dispatch(core: MasterCore, limit: int = 1 << 62) -> bool:
    """Lease queued tasks to workers with free credit (DESIGN §3), in two passes:
    first what can start at once, on the workers with the most idle slots (oldest
    idle first on ties); then prefetch, at most a fair share of what is left per
    worker, so no worker holds tasks another could start sooner. At most `limit`
    tasks are offered (a bound on one loop turn); True when the limit stopped it."""
    if not core.counts[State.QUEUED] or not core.workers or not core.store_writable:
        return False
    left, offers, workers, counts = limit, core.offers, core.workers, core.counts
    # The orders come from the index (zq.core.offers): a tick reads only the workers it
    # offers to, not every connected one.
    offers.refresh(workers)
    for w in offers.by_idle_slots(workers):
        left -= _offer(core, w, min(w.free, idle_slots(w), left))
        if not counts[State.QUEUED]:
            return False
        if left <= 0:
            return True
    # Water-filling: least free credit first, so what one cannot take flows on. The
    # share counts every worker with free credit, also those serving other queues: what
    # their shares left behind goes, in a last pass, to any worker that can take it.
    for fair in (True, False):
        offers.refresh(workers)
        n = offers.free_count
        for i, w in enumerate(offers.by_free_credit(workers)):
            share = -(-counts[State.QUEUED] // (n - i)) if fair else left  # ceil
            left -= _offer(core, w, min(w.free, share, left))
            if not counts[State.QUEUED]:
                return False
            if left <= 0:
                return True
    return False


def _offer(core: MasterCore, w: WorkerInfo, n: int) -> int:
    """Lease up to n of the best tasks w serves; how many were taken from the queues."""
    if n <= 0:
        return 0
    picked: list[TaskRecord] = []
    balance.take_best(w.ready_queues, n, picked)
    if picked:
        _lease_to(core, w, picked)
    return len(picked)


def _lease_to(core: MasterCore, w: WorkerInfo, picked: list[TaskRecord]) -> None:
    rates, queued = core.rates, State.QUEUED
    take = [t for t in picked if t.state is queued]
    if len(set(take)) != len(take):  # a task with two ready-queue entries, both taken
        take = list(dict.fromkeys(take))
    if rates:  # a task without a token waits (PENDING) for one
        take = [t for t in take if t.name not in rates or _take_token(core, t)]
    # The lease is stored (in the commit before the TASK goes out), so the attempt
    # number of a rerun after a master crash is never lower than one already run.
    # A worker that sends STARTED (1.4) starts at once only what fills its idle slots
    # (the first tasks of the batch); the rest wait in its queue until it says so.
    starting = take
    if w.starts and take:
        starting = take[:max(0, w.concurrency - len(w.leased))]
        if len(starting) < len(take):
            core._move_all(take[len(starting):], queued, State.RUNNING, started=False)
    if starting:
        core._move_all(starting, queued, State.RUNNING)
        if core.tap is not None:
            core.tap.started.append(starting)
    lease, leased, rid, name, kept = core.lease, w.leased, w.rid, w.name, core.kept
    entries = []
    for t in take:
        t.attempt += 1
        t.worker = name
        lease[t.id] = rid
        leased.add(t.id)
        if t.timeout is not None:
            add_deadline(core, t, t.timeout, rid)
        payload = t.payload if not kept or t.inputs is None else with_inputs(core, t)
        entries.append((t.id, t.attempt, t.name, payload, t.timeout, t.retry_on))
    if entries:
        core._push_many(rid, Cmd.TASK, entries)
        if core.restored_unleased:
            core.restored_unleased.difference_update(e[0] for e in entries)


def add_deadline(core: MasterCore, t: TaskRecord, timeout: float, rid: bytes) -> None:
    grace = max(TIME_LIMIT_GRACE, 2 * core.interval * core.liveness)
    core.seq += 1
    heapq.heappush(core.deadlines, (core.now + timeout + grace, core.seq, t.id,
                                    t.attempt, rid))


def enforce_time_limits(core: MasterCore) -> None:
    """Leases past their task's timeout plus the grace: the worker did not report
    (it ignores its own limit, or it hoards): take the task back, tell the worker
    to stop it, and count a lost attempt."""
    heap, now = core.deadlines, core.now
    while heap and heap[0][0] <= now:
        _, _, tid, attempt, rid = heapq.heappop(heap)
        t = core.tasks.get(tid)
        w = core.workers.get(rid)
        if (t is None or w is None or t.state is not State.RUNNING
                or t.attempt != attempt or core.lease.get(tid) != rid):
            continue  # it ended, or moved on, in time
        core.timed_out += 1
        if not w.overdue:  # once per worker until it answers, not once per task
            core._notices.append(("warning", (
                f"worker {w.name} ({w.host}, pid {w.pid}) did not report task {tid} "
                f"within its time limit of {t.timeout:g} s plus a grace: taken back, "
                "with any other it holds past its limit; nothing more is sent to it "
                "until it answers the CANCEL")))
        w.overdue.add(tid)
        core.offers.mark(rid)  # offered nothing until it answers
        core._push(rid, Cmd.CANCEL, tid)
        lost(core, tid, w, timed_out=True)


def _take_token(core: MasterCore, t: TaskRecord) -> bool:
    """Token bucket per task name; a task without a token waits (PENDING) for one."""
    wait = core.rates.take(t.name, core.now)
    if wait is None:
        return True
    core._move(t, State.PENDING)
    timers.add_delay(core, wait, t)
    return False
