"""The master's recovery after a restart: the store's tasks loaded back (restore), the
cancels asked for before it (restore_cancelling), the hold that keeps restored tasks
from being leased until their workers had a liveness window to re-register and keep
them (end_hold), and final tasks read back on demand (adopt_loaded).

The one bulk load: states are taken as stored and counted here, not moved through
_move. These are functions of the MasterCore they change (zq.core.master_core).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zq.core import expiry, submission, timers, workflows
from zq.core.messages import FINAL_STATES as FINAL
from zq.core.messages import State
from zq.core.results import FREED
from zq.core.shipped import ready_key
from zq.core.tasks import TaskRecord, cancelled_error

if TYPE_CHECKING:
    from zq.core.master_core import MasterCore


def restore(core: MasterCore, records: Any) -> int:
    """Load the store's tasks after a restart. Tasks that were queued or running wait
    one liveness window before they are dispatched, so workers that still run them
    can re-register and keep them instead of running them twice.

    The one bulk load: states are taken as stored and counted here, not moved
    through _move (a running task is queued again: its lease named a connection
    the restart ended)."""
    n = 0
    core.hold_until = core.now + core.interval * core.liveness
    final: list[TaskRecord] = []
    pending: list[TaskRecord] = []
    # A million tasks share a few names and queues: each name is checked against the
    # catalogue, and each (queue, name) given its ready queue, once (issue 18: restart).
    # The per-task loop reads only locals: it runs once per stored task.
    names_checked: set[str] = set()
    kinds_readied: set[tuple[str, str]] = set()
    tasks, counts, seq, keys, depth = core.tasks, core.counts, core.seq, core.keys, core.depth
    unleased, held, held_ids = core.restored_unleased, core.held, core.held_ids
    queued, running, retrying, pending_state = (State.QUEUED, State.RUNNING, State.RETRYING,
                                                State.PENDING)
    succeeded = State.SUCCEEDED
    for t in records:
        n += 1
        if t.seq > seq:
            seq = t.seq
        tasks[t.id] = t
        if t.key is not None:
            keys[t.key] = t.id
        state = t.state
        if state in FINAL:
            counts[state] += 1
            final.append(t)
            if state is succeeded:
                t.payload = FREED
            continue
        if not t.attempt and t.name not in names_checked:
            names_checked.add(t.name)
            if t.name not in core.catalogue:
                submission.note_unannounced(core, t.name)
        if state is queued or state is running:
            unleased.add(t.id)
            t.state = state = queued
            depth[t.queue] = depth.get(t.queue, 0) + 1
            if (t.queue, t.name) not in kinds_readied:
                kinds_readied.add((t.queue, t.name))
                core._ready_queue(ready_key(t.queue, t.name))
            held.append(t)
            held_ids.add(t.id)
        elif state is retrying:
            unleased.add(t.id)
            timers.add_timer(core, core.wall, t)
        elif state is pending_state:
            pending.append(t)
        counts[state] += 1
    core.seq = seq
    for t in pending:  # second pass: dependencies may come in any order
        if t.after and not core._deps_done(t):
            n_deps = 0
            for d in t.after:
                if d in tasks and tasks[d].state not in FINAL:
                    core.waiting.setdefault(d, []).append(t.id)
                    n_deps += 1
            core.unmet[t.id] = n_deps
            timers.add_timer(core, core.wall, t)  # re-checked when due
        else:
            timers.add_timer(core, t.eta or core.wall, t)
    for t in sorted(final, key=_finished_at):  # the store gives submission order
        expiry.keep_result(core, t)
    workflows.restore(core)  # the results the tasks not final yet take: kept
    return n


def restore_cancelling(core: MasterCore, ids: Any) -> None:
    """Cancels asked for before a restart (the store's "cancelling" meta): those
    tasks end cancelled now rather than run again; a worker still running one is
    told to stop when it re-registers (workers._adopt)."""
    if not isinstance(ids, list):
        return
    for tid in ids:
        t = core.tasks.get(tid) if isinstance(tid, str) else None
        if t is not None and t.state not in FINAL:
            core._finish(t, State.CANCELLED, cancelled_error(
                "cancelled while running; the master restarted before it stopped"))
    if ids:
        core._cancelling_changed = core.durable  # none is left: store that too


def adopt_loaded(core: MasterCore, t: TaskRecord) -> None:
    """A final task read back from the store on demand (an old result being fetched)."""
    if t.id not in core.tasks and t.state in FINAL:
        if t.state is State.SUCCEEDED:
            t.payload = FREED
        core.tasks[t.id] = t
        core.counts[t.state] += 1
        expiry.keep_result(core, t)


def end_hold(core: MasterCore) -> None:
    """The recovery hold is over: the restored tasks no worker kept are offered, and a
    result for a restored task counts only from the worker it is leased to."""
    if core.held:
        for t in core.held:
            if t.state is State.QUEUED:  # counted in depth by restore()
                core._ready_queue(ready_key(t.queue, t.name)).push(t)
        core.held = []
        core.held_ids = set()
    if core.restored_unleased:
        core.restored_unleased.clear()


def _finished_at(t: TaskRecord) -> float:
    return t.updated
