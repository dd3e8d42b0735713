"""Cancel unless started (protocol 1.5, the QUERY kind `cancel_unstarted`): the rule
concurrent.futures applies to a pending future, for many task ids at once, answered per
id. A function of the MasterCore it changes (zq.core.queries runs it for the QUERY).

Whether a task has started is decided here, in the master's core, from the master's own
record, and nowhere else (``may_run``): a task leased to a worker that reports its starts
(STARTED, 1.4) and not reported started yet is waiting in that worker's queue, so it is
cancelled at once, its lease is dropped and the worker is sent CANCEL. The race, a
STARTED already on its way when the request is handled, is decided for the request: the
task ends cancelled, the answer says so, and the worker, on the CANCEL, stops the run it
had just begun (the first final state wins; its late result is acknowledged and ignored).
So the answer and the task's end always agree. Wherever the master cannot be sure a task
has not started (a worker that does not report starts, a task a worker adopted on
re-registering, a task restored after a master restart whose worker may still run it),
it counts as running and is left alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zq.core.access import Caller, may_touch
from zq.core.codec import MAX_ID, MAX_IDS
from zq.core.messages import FINAL_STATES, Cmd, State
from zq.core.tasks import TaskRecord, cancelled_error

if TYPE_CHECKING:
    from zq.core.master_core import MasterCore

MAX_CANCEL_IDS = MAX_IDS  # task ids in one cancel_unstarted query (as in one CANCEL)

# Why a task named in cancel_unstarted was not cancelled (its `kept` answer), besides the
# label of the final state it already reached (succeeded, failed, dead).
RUNNING = "running"  # started, or it may have: it runs on
UNKNOWN = "unknown"  # the master holds no such task (never accepted, or forgotten)
DENIED = "denied"  # another key's task: cancelling it needs the admin role


def cancel_unstarted(core: MasterCore, caller: Caller, ids: list[Any]) -> dict[str, Any]:
    """Cancel each named task that has not started. Each entry is checked alone: one
    that is not a task id is refused (`refused`: [index, reason]) and the others are
    applied; an id named twice is answered once. The answer: `cancelled` (the ids now
    cancelled, or cancelled already), `kept` (id -> why not: RUNNING, UNKNOWN, DENIED or
    the final state's label) and `refused`."""
    cancelled: list[str] = []
    kept: dict[str, str] = {}
    refused: list[list[Any]] = []
    seen: set[str] = set()
    for i, tid in enumerate(ids):
        if type(tid) is not str or not 0 < len(tid) <= MAX_ID:
            refused.append([i, f"entry #{i}: a task id must be a non-empty string of at "
                               f"most {MAX_ID} characters"])
            continue
        if tid in seen:
            continue
        seen.add(tid)
        why = _cancel_one(core, caller, tid)
        if why is None:
            cancelled.append(tid)
        else:
            kept[tid] = why
    return {"cancelled": cancelled, "kept": kept, "refused": refused}


def _cancel_one(core: MasterCore, caller: Caller, tid: str) -> str | None:
    """Cancel tid unless it may run; None if it is cancelled now, else why not."""
    t = core.tasks.get(tid)
    if t is None:
        return UNKNOWN
    if not may_touch(caller, t.owner):
        return DENIED
    if t.state is State.CANCELLED:
        return None
    if t.state in FINAL_STATES:
        return t.state.label
    if may_run(core, t):
        return RUNNING
    core._watch(tid, caller.rid)  # as CANCEL does: the asker hears the final RESULT
    if t.state is State.RUNNING:
        _take_back(core, t)
        core._finish(t, State.CANCELLED, cancelled_error("cancelled before it started"))
    else:
        core.cancel(t)  # pending, queued or retrying: cancelled at once
    return None


def may_run(core: MasterCore, t: TaskRecord) -> bool:
    """Whether t has started, or may have, as far as the master knows: the one place
    cancel_unstarted decides it. A running task is unstarted only while it waits in the
    queue of a worker that reports its starts (STARTED, 1.4), was given to it by lease
    (not adopted: the worker's word on an adopted task's start may have gone to a master
    before a restart), and no STARTED or RESULT has said it began. A task restored after
    a master restart that had been leased (attempt > 0) may still run on a worker that
    has not re-registered yet, until the recovery hold ends."""
    if t.state is State.RUNNING:
        if t.started is not None:
            return True
        rid = core.lease.get(t.id)
        w = core.workers.get(rid) if rid is not None else None
        return w is None or not w.starts or t.id in w.adopted
    return t.attempt > 0 and t.id in core.held_ids and core.now < core.hold_until


def _take_back(core: MasterCore, t: TaskRecord) -> None:
    """t waits unstarted in its worker's queue: end the lease and tell the worker to drop
    it (CANCEL; it answers outcome 3, which changes nothing once t is final). Its slot
    is free at once: the CANCEL goes out before any TASK of the same turn."""
    rid = core.lease.pop(t.id)
    w = core.workers[rid]
    w.leased.discard(t.id)
    if not w.leased:
        w.idle_since = core.now
    core.offers.mark(rid)  # a slot freed: dispatch's order of workers changes
    core._push(rid, Cmd.CANCEL, t.id)
