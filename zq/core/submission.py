"""Submission: new tasks from a client (on_submit), from a schedule firing
(timers.housekeeping calls submit_one) and the rate limits a SUBMIT sets (set_rate,
load_rates after a restart).

Plain entries (no options, a new id, room in the queue, a name no worker declared
options for, not shipped code) take the fast path: born QUEUED in the default queue,
counted and acknowledged once per batch (_queue_plain), with no transition through
_move. Everything else goes through submit_one: a resend or a dedup key answers with the
task that exists, a full queue with BUSY, bad options with REJECTED, and a new task is
born PENDING and placed (_place_new): behind what it runs after or takes as input
(zq.core.workflows), its eta, or queued.

These are functions of the MasterCore they change, which calls them and binds on_submit
and load_rates for the loop and the tests (zq.core.master_core). Apart from it for the
length of master_core.py; the task table and its counts stay the core's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zq.core import messages as m
from zq.core import workflows
from zq.core.access import Caller
from zq.core.messages import FINAL_STATES as FINAL
from zq.core.messages import Cmd, State
from zq.core.shipped import PREFIX as SHIPPED
from zq.core.tasks import TaskRecord

if TYPE_CHECKING:
    from zq.core.master_core import MasterCore

MAX_UNANNOUNCED = 10_000  # names submitted before any worker announced them, remembered


def on_submit(core: MasterCore, rid: bytes, entries: list[m.SubmitEntry],
              caller: Caller | None = None) -> None:
    """New tasks from a client. Plain ones (no options, new id, room in the queue)
    take a fast path; everything else goes through submit_one. With keys (caller
    has one) each new task records the key that submitted it. While the store
    cannot commit, none is accepted: BUSY, to be sent again."""
    if not core.store_writable:
        core._push_many(rid, Cmd.BUSY, [entry[0] for entry in entries])
        return
    core._caller = caller
    try:
        _on_submit(core, rid, entries)
    finally:
        core._caller = None


def _on_submit(core: MasterCore, rid: bytes, entries: list[m.SubmitEntry]) -> None:
    tasks, watcher, wall, plain = core.tasks, core.watcher, core.wall, TaskRecord.plain
    room = core.max_queued - core.counts[State.QUEUED] - core.counts[State.PENDING]
    fast = room >= len(entries)
    queued: list[TaskRecord] = []
    declared, known = core.catalogue.declared, core.catalogue.options
    for entry in entries:
        tid = entry[0]
        if entry[3] or not fast or tid in tasks or entry[1] in declared or \
                entry[1].startswith(SHIPPED):  # a shipped task's ready queue: slow path
            _queue_plain(core, rid, queued)  # keeps submission order
            queued = []
            submit_one(core, rid, entry)
            continue
        if entry[1] not in known:
            note_unannounced(core, entry[1])
        core.seq += 1
        tasks[tid] = t = plain(tid, entry[1], entry[2], wall, core.seq)
        watcher[tid] = rid
        queued.append(t)
    _queue_plain(core, rid, queued)


def _queue_plain(core: MasterCore, rid: bytes, queued: list[TaskRecord]) -> None:
    """New tasks born QUEUED (the fast path of submit): counted here, as the slow
    path's are in submit_one; a birth is not a transition."""
    if not queued:
        return
    core.counts[State.QUEUED] += len(queued)
    if core.tap is not None:
        core.tap.submitted.append(queued)
    core.depth["default"] = core.depth.get("default", 0) + len(queued)
    core._ready_queue("default").extend(queued)
    if core.durable:
        core._dirty.update((t.id, t) for t in queued)
        core._inserted.update(t.id for t in queued)
    caller = core._caller
    if caller is not None and caller.key is not None:
        for t in queued:
            t.owner = caller.key
    core._push_many(rid, Cmd.ACCEPTED, [t.id for t in queued])
    if core.events.subs:
        core.events.task_events("submitted", queued, core.wall)


def submit_one(core: MasterCore, rid: bytes | None, entry: m.SubmitEntry) -> None:
    tid, name, payload, opts = entry
    t = core.tasks.get(tid)
    if t is not None:  # a resend after a reconnect: same task, nothing changes
        _accept_existing(core, rid, tid, t)
        return
    key = opts.get("key") if opts else None
    if key is not None:
        same = core.tasks.get(core.keys.get(key, ""))
        if same is not None:
            core._push(rid, Cmd.ACCEPTED, (tid, same.id))
            _accept_existing(core, rid, None, same)
            return
    if core.counts[State.QUEUED] + core.counts[State.PENDING] >= core.max_queued:
        core._push(rid, Cmd.BUSY, tid)
        return
    if name in core.catalogue:
        opts = core.catalogue.fill(name, opts)  # what the submission left unset
    else:
        note_unannounced(core, name)
    try:
        t = _new_task(core, tid, name, payload, opts)
    except ValueError as e:
        core._push(rid, Cmd.REJECTED, (tid, str(e)))
        return
    core.tasks[tid] = t
    caller = core._caller
    if caller is not None and caller.key is not None:
        t.owner = caller.key
    if rid is not None:
        core.watcher[tid] = rid
    core.counts[State.PENDING] += 1  # every task is born PENDING, then moves on
    if t.inputs:
        workflows.hold_inputs(core, t)
    if core.tap is not None:
        core.tap.submitted.append([t])
    if core.events.subs:  # a task in a graph names its parents (issue 17)
        core.events.task_event("submitted", t, core.wall, t.after or None)
    _place_new(core, t)
    core._save(t)
    if core.durable:
        core._inserted.add(tid)
    core._push(rid, Cmd.ACCEPTED, tid)


def note_unannounced(core: MasterCore, name: str) -> None:
    if len(core.unannounced) < MAX_UNANNOUNCED:
        core.unannounced.add(name)


def _accept_existing(core: MasterCore, rid: bytes | None, tid: str | None,
                     t: TaskRecord) -> None:
    if rid is None:
        return
    if tid is not None:
        core._push(rid, Cmd.ACCEPTED, tid)
    if t.state in FINAL:
        core._send_final(t, rid)
    else:
        core._watch(t.id, rid)


def _new_task(core: MasterCore, tid: str, name: str, payload: Any,
              opts: dict[str, Any]) -> TaskRecord:
    core.seq += 1
    wall = core.wall
    if not opts:  # the common case, kept cheap
        return TaskRecord(tid, name, payload, state=State.PENDING, created=wall,
                          updated=wall, seq=core.seq)
    eta = opts.get("eta")
    if "delay" in opts:
        eta = wall + float(opts["delay"])
    after = opts.get("after")
    inputs = opts.get("inputs")
    if inputs:
        after = workflows.check_inputs(core, inputs, after)
    elif after:
        missing = [d for d in after if d not in core.tasks]
        if missing:
            raise ValueError(f"after= names unknown task ids: {', '.join(missing[:5])}")
    if "rate_limit" in opts:
        set_rate(core, name, opts["rate_limit"])
    retries = int(opts.get("retries", 0))
    if retries < 0 or retries > 1000:
        raise ValueError("retries must be between 0 and 1000")
    t = TaskRecord(
        tid, name, payload, queue=opts.get("queue", "default"),
        priority=int(opts.get("priority", 0)), state=State.PENDING, retries=retries,
        timeout=opts.get("timeout"), eta=eta, key=opts.get("key"), after=after or None,
        retry_backoff=float(opts.get("retry_backoff", 1.0)),
        retry_backoff_max=float(opts.get("retry_backoff_max", 600.0)),
        retry_on=opts.get("retry_on"), result_ttl=opts.get("result_ttl"),
        created=wall, updated=wall, seq=core.seq, inputs=inputs or None)
    if t.key is not None:
        core.keys[t.key] = tid
    return t


def set_rate(core: MasterCore, name: str, spec: str) -> None:
    """A SUBMIT's rate_limit for its task name. Kept in the store. With keys, a rate
    already set changes only for an admin (ValueError: the entry is REJECTED)."""
    caller = core._caller
    if core.rates.set(name, spec, core.now, may_change=caller is None or caller.admin):
        core._meta["rates"] = core.rates.dump()


def load_rates(core: MasterCore, stored: Any) -> list[str]:
    """The rate limits a store kept; a log line for each one skipped."""
    return core.rates.load(stored, core.now)


def _place_new(core: MasterCore, t: TaskRecord) -> None:
    """A new PENDING task: wait for what it runs after, or for its eta, or queue it."""
    if t.after and not core._deps_done(t):
        for d in t.after:
            dt = core.tasks[d]
            if dt.state in FINAL and dt.state is not State.SUCCEEDED:
                workflows.ended_without_result(core, t, dt)
                return
        n = 0
        for d in t.after:
            if core.tasks[d].state is not State.SUCCEEDED:
                core.waiting.setdefault(d, []).append(t.id)
                n += 1
        core.unmet[t.id] = n
        return
    core._start_when_due(t)
