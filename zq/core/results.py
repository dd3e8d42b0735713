"""What the master does with what workers report of running tasks: results (a success,
a failure that retries or ends the task, a cancel that took), partial chunks, progress
and starts (STARTED, 1.4: a task that waited in its worker's queue starts).

Every report is checked against the lease: it counts only from the worker that runs
that attempt (or ran it: a late result, the first wins). The common case, a success of
the current attempt from the worker holding the lease, takes an inline fast path in
on_worker_results; every other case goes through _worker_result. These are functions of
the MasterCore they change, which calls them (zq.core.master_core).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zq.core import backoff, expiry, timers, workers, workflows
from zq.core import messages as m
from zq.core.messages import Cmd, Outcome, State
from zq.core.tasks import TaskRecord, cancelled_error
from zq.core.workers import WorkerInfo

if TYPE_CHECKING:
    from zq.core.master_core import MasterCore

FINAL = m.FINAL_STATES
# A succeeded task never runs again, so the master lets go of its arguments (which
# would otherwise stay in memory until result_ttl); a durable store keeps them, since
# an update never rewrites the payload. Failed and dead tasks keep theirs for `retry`.
FREED = b""


def on_worker_results(core: MasterCore, w: WorkerInfo, entries: list[m.ResultEntry]) -> None:
    """Finished attempts. The common case, a success of the current attempt from the
    worker holding the lease, with one watcher and nothing waiting, is done inline;
    every other case goes through _worker_result."""
    tasks, lease, leased, watcher, rid = core.tasks, core.lease, w.leased, core.watcher, w.rid
    core.offers.mark(rid)  # its leases, idle mark or overdue tasks change below
    # A flag, not the first non-empty container: handling one entry may empty it
    # (and nothing handled here adds to any of them, so False stays true).
    special = bool(core.more_watchers or core.waiting or core.cancelling)
    running = State.RUNNING
    pushes: dict[bytes, list[Any]] = {}
    done = 0
    ok: list[TaskRecord] = []  # successes whose transition is still to be made
    for entry in entries:
        tid, attempt, outcome, payload = entry
        t = tasks.get(tid)
        if (outcome or t is None or t.state is not running or attempt != t.attempt
                or lease.get(tid) != rid or special and _is_special(core, tid)):
            if ok:  # the slow path sees every earlier entry done
                _succeeded(core, ok)
                ok = []
            _worker_result(core, w, entry)
            continue
        del lease[tid]
        leased.discard(tid)
        t.result = payload
        t.payload = FREED
        ok.append(t)
        done += 1
        to = watcher.pop(tid, None)
        if to is not None:
            lst = pushes.get(to)
            if lst is None:
                pushes[to] = [(tid, 3, payload)]
            else:
                lst.append((tid, 3, payload))
    if ok:
        _succeeded(core, ok)
    if done:
        if not leased:
            w.idle_since = core.now
        for to, results in pushes.items():
            core._push_many(to, Cmd.RESULT, results)
    core._push_many(rid, Cmd.ACK, [e[0] for e in entries])


def _succeeded(core: MasterCore, ok: list[TaskRecord]) -> None:
    """The fast path's successes: their transitions in one go, their results kept."""
    unstarted = [t for t in ok if t.started is None]
    if unstarted:  # ended before the worker said they started: they started now
        mark_started(core, unstarted)
    core._move_all(ok, State.RUNNING, State.SUCCEEDED)
    if core.tap is not None:
        core.tap.finished.append((State.SUCCEEDED, ok))
    core._count_done(len(ok))
    finished = core.finished
    for t in ok:
        if t.result_ttl is None:
            finished.append(t.id)
        else:
            expiry.keep_result(core, t)
    if core.kept:  # some tasks take others' results: these may be among them
        for t in ok:
            if t.inputs:
                workflows.release_inputs(core, t)


def _is_special(core: MasterCore, tid: str) -> bool:
    return tid in core.more_watchers or tid in core.waiting or tid in core.cancelling


def _worker_result(core: MasterCore, w: WorkerInfo, entry: m.ResultEntry) -> None:
    tid, attempt, outcome, payload = entry
    if w.overdue:
        w.overdue.discard(tid)  # reported at last: its slot is free again
    t = core.tasks.get(tid)
    if t is None or t.state in FINAL:
        return  # a duplicate: acknowledged and ignored
    if not _entitled(core, w, t, attempt):
        core.ignored_results += 1  # acknowledged, ignored, counted
        return
    owner = core.lease.get(tid)
    # A failure of an older attempt is late, unless w holds the task by adoption (its
    # attempt is unknown); a newer attempt than the master counted is current (with
    # the memory store, a restart forgets the count).
    if outcome != Outcome.OK and (t.state is not State.RUNNING or (
            attempt < t.attempt and not (owner == w.rid and tid in w.adopted))):
        return
    if owner is not None:
        ow = core.workers.get(owner) if owner != w.rid else w
        if ow is not None:
            ow.leased.discard(tid)
            core.offers.mark(owner)  # not the sender (marked already) when another
            if not ow.leased:
                ow.idle_since = core.now
            # Unless this is the holder's own attempt, the holder runs the task
            # again: stop that run, the first result wins.
            if ow.session != w.session or (attempt < t.attempt and tid not in ow.adopted):
                core._push(owner, Cmd.CANCEL, tid)
            ow.adopted.discard(tid)
        del core.lease[tid]
    if outcome != Outcome.CANCELLED and t.state is State.RUNNING and t.started is None:
        mark_started(core, [t])  # it ran (an outcome 3 may be a task dropped unstarted)
    if outcome == Outcome.OK:
        if t.state is not State.RUNNING:
            _force_running(core, t)
        core._finish(t, State.SUCCEEDED, payload)
    elif outcome == Outcome.CANCELLED:
        if tid in core.cancelling:
            core._finish(t, State.CANCELLED, cancelled_error("cancelled while running"))
        else:
            workers.lost(core, tid, w)
    else:
        if t.state is State.RUNNING:  # a late OK of this attempt still wins
            core.past.setdefault(tid, {})[t.attempt] = w.session
        _failed(core, t, outcome == Outcome.FATAL, payload)
        if t.state in FINAL:
            core.past.pop(tid, None)


def _entitled(core: MasterCore, w: WorkerInfo, t: TaskRecord, attempt: int) -> bool:
    """Whether w's result for this attempt of t counts: t is leased to w's session at
    that attempt (adopted: at any attempt, the count may lag after a restart), or
    such a lease ended without a result (a late result, the first wins), or t was
    restored and no lease of it is known yet. Anything else (a task never leased to
    w: queued, delayed, running elsewhere) is a forgery or a confusion."""
    tid = t.id
    owner = core.lease.get(tid)
    if owner is not None:
        ow = w if owner == w.rid else core.workers.get(owner)
        if ow is not None and ow.session == w.session and (
                attempt == t.attempt or tid in ow.adopted):
            return True
    past = core.past.get(tid)
    if past is not None and past.get(attempt) == w.session:
        return True
    return tid in core.restored_unleased


def _force_running(core: MasterCore, t: TaskRecord) -> None:
    """A late success for a task that was requeued meanwhile: it ran, so it is done."""
    core._move(t, State.RUNNING)


def _failed(core: MasterCore, t: TaskRecord, fatal: bool, payload: m.Payload) -> None:
    if not fatal and t.attempt <= t.retries and t.id in core.cancelling:
        core._finish(t, State.CANCELLED, cancelled_error("cancelled while running"))
    elif not fatal and t.attempt <= t.retries:
        core.recent.attempt_ended(t, "failed", core.wall, payload)
        core._move(t, State.RETRYING)
        if core.tap is not None:
            core.tap.retried.append(t)
        delay = backoff.compute_backoff(t.attempt, base=t.retry_backoff,
                                        cap=t.retry_backoff_max, rand=core.rand())
        timers.add_delay(core, delay, t)
        t.result = payload
    else:
        core._finish(t, State.DEAD if t.retries and not fatal else State.FAILED, payload)


def on_started(core: MasterCore, w: WorkerInfo, entries: list[m.StartedEntry]) -> None:
    """STARTED (1.4): these attempts began running on w. An entry for a task w does not
    run (unknown, final, leased elsewhere, another attempt) is dropped, as a chunk would
    be; one already started changes nothing."""
    tasks = core.tasks
    ts = [tasks[tid] for tid, attempt in entries
          if _runs(core, w, tid, attempt) and tasks[tid].started is None]
    if ts:
        mark_started(core, list(dict.fromkeys(ts)))


def mark_started(core: MasterCore, ts: list[TaskRecord]) -> None:
    """Leased tasks that waited in their worker's queue start now: their queue wait
    grows by the time since the lease (``updated``), the "started" event fires and the
    metrics see the wait. Not stored now: the final state's save carries it, and a
    worker announces its running tasks again after a master restart."""
    wall = core.wall
    for t in ts:
        if t.waited is not None:
            t.waited += wall - t.updated
        t.started = wall
    if core.tap is not None:
        core.tap.started.append(ts)
    if core.events.subs:
        core.events.task_events("started", ts, wall)


def on_partial(core: MasterCore, w: WorkerInfo, entries: list[m.PartialEntry]) -> None:
    """Chunks of running tasks, from the worker running that attempt only (chunks
    sent after the RESULT, or by anyone else, are dropped)."""
    for e in entries:
        if _runs(core, w, e[0], e[1]):
            core.recent.chunk(core.tasks[e[0]], e[1], e[2], e[3])  # `get` shows them
            _to_watchers(core, e[0], Cmd.PARTIAL, e)


def on_progress(core: MasterCore, w: WorkerInfo, entries: list[m.ProgressEntry]) -> None:
    for e in entries:
        if _runs(core, w, e[0], e[1]):
            t = core.tasks[e[0]]
            t.set_options(progress=(e[2], e[3]))
            _to_watchers(core, e[0], Cmd.PROGRESS, e)
            if core.events.subs:
                core.events.task_event("progress", t, core.wall, t.progress)


def _runs(core: MasterCore, w: WorkerInfo, tid: str, attempt: int) -> bool:
    """Whether w runs this attempt of tid now (adopted: whatever attempt it says)."""
    t = core.tasks.get(tid)
    return (t is not None and t.state is State.RUNNING and core.lease.get(tid) == w.rid
            and (attempt == t.attempt or tid in w.adopted))


def _to_watchers(core: MasterCore, tid: str, cmd: Cmd, entry: Any) -> None:
    rid = core.watcher.get(tid)
    if rid is not None:
        core._push(rid, cmd, entry)
    for other in core.more_watchers.get(tid, ()):
        core._push(other, cmd, entry)
