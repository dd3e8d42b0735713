"""How long the master remembers final tasks: each until its result expires, strictly by
its own ttl (docs/TASKS.md), and never more than max_finished of them in memory.

Those on the master's --result-ttl wait in `finished` in the order they finished, which
is the order they expire in; those with their own result_ttl in the `expiring` heap by
expiry time. These are functions of the MasterCore they change (zq.core.master_core).
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

from zq.core import workflows
from zq.core.messages import FINAL_STATES as FINAL
from zq.core.tasks import TaskRecord

if TYPE_CHECKING:
    from zq.core.master_core import MasterCore


def keep_result(core: MasterCore, t: TaskRecord) -> None:
    """Remember final task t until its result expires."""
    if t.result_ttl is None:
        core.finished.append(t.id)
    else:
        heapq.heappush(core.expiring, (t.updated + t.result_ttl, t.seq, t.id))


def expire_finished(core: MasterCore) -> None:
    """Forget results past their ttl; keep at most max_finished of them in memory."""
    heap, wall = core.expiring, core.wall
    while heap:
        at, _, tid = heap[0]
        if at > wall and len(heap) <= core.max_finished:
            break
        heapq.heappop(heap)
        t = core.tasks.get(tid)
        if (t is None or t.state not in FINAL or t.result_ttl is None
                or t.updated + t.result_ttl != at):
            continue  # forgotten, or retried by hand since (a newer entry stands)
        if core.kept and workflows.park(core, tid):
            continue  # a waiting task takes it: back when released
        forget(core, t)
        if at <= wall and core.durable:
            core._deleted.append(tid)
    fin = core.finished
    while fin:
        t = core.tasks.get(fin[0])
        if t is None or t.state not in FINAL:
            fin.popleft()  # retried by hand since, or already forgotten
            continue
        ttl = core.result_ttl if t.result_ttl is None else t.result_ttl
        expired = t.updated + ttl <= wall
        if not expired and len(fin) + len(heap) <= core.max_finished:
            break
        fin.popleft()
        if core.kept and workflows.park(core, t.id):
            continue  # a waiting task takes it: back when released
        forget(core, t)
        if expired and core.durable:
            core._deleted.append(t.id)


def forget(core: MasterCore, t: TaskRecord) -> None:
    del core.tasks[t.id]
    if core.past:
        core.past.pop(t.id, None)
    core.counts[t.state] -= 1
    if t.key is not None and core.keys.get(t.key) == t.id:
        del core.keys[t.key]
