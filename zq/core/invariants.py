"""The MasterCore's invariants (validate): the state counts and queue depths match the
task table, every lease is on a running task and on the one worker holding it, and
no watcher, dependent or cancel is left on a task that ended. For tests, which run it
after every step; never called on the hot path. A function of the MasterCore it checks,
bound on it as MasterCore.validate (zq.core.master_core).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zq.core import workflows
from zq.core.messages import FINAL_STATES as FINAL
from zq.core.messages import State

if TYPE_CHECKING:
    from zq.core.master_core import MasterCore


def validate(core: MasterCore) -> None:
    """Check every invariant of the core; AssertionError names the broken one.
    For tests (run it after every step); never called on the hot path."""
    counted = {s: 0 for s in State}
    depth: dict[str, int] = {}
    for t in core.tasks.values():
        counted[t.state] += 1
        if t.state is State.QUEUED:
            depth[t.queue] = depth.get(t.queue, 0) + 1
    assert counted == core.counts, f"state counts drifted: {counted} != {core.counts}"
    for q, n in core.depth.items():
        assert n == depth.get(q, 0), f"depth of {q!r} is {n}, {depth.get(q, 0)} queued"
    core.worker_liveness.check(core.workers)
    core.offers.check(core.workers)
    for tid, rid in core.lease.items():
        rec = core.tasks.get(tid)
        assert rec is not None and rec.state is State.RUNNING, f"lease on non-running {tid}"
        w = core.workers.get(rid)
        assert w is not None and tid in w.leased, f"lease of {tid} not on its worker"
    seen: set[str] = set()
    for w in core.workers.values():
        assert not (w.leased & seen), f"a task is leased to two workers: {w.leased & seen}"
        seen |= w.leased
        for tid in w.leased:
            assert core.lease.get(tid) == w.rid, f"{tid} on {w.name} but leased elsewhere"
    for session, rid in core.sessions.items():
        w = core.workers.get(rid)
        assert w is not None and w.session == session, f"session {session} has no worker"
    for tid in core.watcher:
        rec = core.tasks.get(tid)
        assert rec is not None and rec.state not in FINAL, f"watcher left on final {tid}"
    for tid in core.more_watchers:
        rec = core.tasks.get(tid)
        assert rec is not None and rec.state not in FINAL, f"watchers left on final {tid}"
    for tid in core.waiting:
        rec = core.tasks.get(tid)
        assert rec is None or rec.state not in FINAL, f"dependents left waiting on {tid}"
    for tid in core.cancelling:
        rec = core.tasks.get(tid)
        assert rec is not None and rec.state is State.RUNNING, f"cancel left on {tid}"
    workflows.check(core)
