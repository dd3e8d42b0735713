"""The master's dated work: timers (a task's eta, and waits after which it is looked at
again), delays on the monotonic clock (retry backoff, a rate limit's pause), periodic
schedules (zq.core.periodic keeps them; here they submit their tasks), and the
housekeeping pass that runs them all with liveness, time limits and expiry.

Timers run on the wall clock, since users set those dates (eta, cron); delays on the
monotonic clock, which a step of the wall clock neither stretches nor cuts. These are
functions of the MasterCore they change, which calls them (zq.core.master_core).
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Any

from zq.core import dispatch, expiry, queries, recovery, serde, submission, workers
from zq.core.messages import State
from zq.core.periodic import Schedule
from zq.core.tasks import TaskRecord
from zq.errors import ConfigError

if TYPE_CHECKING:
    from zq.core.master_core import MasterCore

HOUSEKEEPING = 0.25  # seconds between liveness/timer/eviction passes at most


def due(core: MasterCore) -> bool:
    """A dated task (eta, retry, rate limit) is due: tick() now, not at housekeeping."""
    return bool(core.timers and core.timers[0][0] <= core.wall
                or core.delays and core.delays[0][0] <= core.now + dispatch.EPSILON)


def add_timer(core: MasterCore, when: float, t: TaskRecord) -> None:
    """Look at t again at wall time `when` (its eta)."""
    core.seq += 1
    heapq.heappush(core.timers, (when, core.seq, t.id))


def add_delay(core: MasterCore, seconds: float, t: TaskRecord) -> None:
    """Look at t again after `seconds` (a backoff, a rate limit's pause)."""
    core.seq += 1
    heapq.heappush(core.delays, (core.now + seconds, core.seq, t.id))


def housekeeping(core: MasterCore) -> None:
    """Liveness, heartbeats, due timers, the end of a recovery hold, expiry."""
    now = core.now
    core.next_housekeeping = now + min(HOUSEKEEPING, core.interval / 4)
    workers.check_liveness(core)
    fire_timers(core)
    fire_schedules(core)
    if core.deadlines:
        dispatch.enforce_time_limits(core)
    if now >= core.hold_until and (core.held or core.restored_unleased):
        recovery.end_hold(core)
    expiry.expire_finished(core)
    if core.events.subs:
        core.events.expire(now)
    if core.query_budget:
        queries.forget_full_budgets(core)


def fire_timers(core: MasterCore) -> None:
    for heap, clock in ((core.timers, core.wall), (core.delays, core.now + dispatch.EPSILON)):
        while heap and heap[0][0] <= clock:
            _, _, tid = heapq.heappop(heap)
            _timer_fired(core, tid)


def _timer_fired(core: MasterCore, tid: str) -> None:
    t = core.tasks.get(tid)
    if t is None:
        return
    wall = core.wall
    if t.state is State.RETRYING or (t.state is State.PENDING and core._deps_done(t)
                                      and (t.eta is None or t.eta <= wall + 1e-6)):
        core._move(t, State.QUEUED)
    # else a PENDING task with an older timer: a newer one is armed for its eta


def fire_schedules(core: MasterCore) -> None:
    """Submit one task for each due schedule. Its id names the tick, and the tick is
    saved with it in the same commit, so no tick runs twice, restart or not."""
    fired = core.periodic.due(core.wall)
    for s, tick in fired:
        _submit_run(core, s, s.task_id(tick))
    if fired:
        core._meta["schedules"] = core.periodic.dump()


def _submit_run(core: MasterCore, s: Schedule, tid: str) -> None:
    opts: dict[str, Any] = {}  # unset ones: what the task declares (catalogue)
    if s.queue is not None:
        opts["queue"] = s.queue
    if s.priority is not None:
        opts["priority"] = s.priority
    payload = serde.encode_call(s.args, s.kwargs)
    submission.submit_one(core, None, (tid, s.task, payload, opts))


def add_schedule(core: MasterCore, spec: dict[str, Any]) -> dict[str, Any]:
    """Add or replace a periodic task; queries.Refused says what is wrong with spec.
    Validated before anything is stored; a peer never sets the master's own fields
    (anchor, last_tick)."""
    try:
        s = Schedule.from_spec(spec)
        core.periodic.add(s, core.wall)
    except ConfigError as e:
        raise queries.Refused(str(e)) from e
    core._meta["schedules"] = core.periodic.dump()
    return core.periodic.view(s.name)


def remove_schedule(core: MasterCore, name: str) -> bool:
    if not core.periodic.remove(name):
        raise queries.NotFound(f"no schedule named {name!r}")
    core._meta["schedules"] = core.periodic.dump()
    return True


def pause_schedule(core: MasterCore, name: str) -> dict[str, Any]:
    """No tick of the schedule fires until it is resumed; stored with it."""
    _change(core, name, lambda: core.periodic.pause(name))
    return core.periodic.view(name)


def resume_schedule(core: MasterCore, name: str) -> dict[str, Any]:
    """Ticks fire again from the first one after now (none missed while paused)."""
    _change(core, name, lambda: core.periodic.resume(name, core.wall))
    return core.periodic.view(name)


def _change(core: MasterCore, name: str, change: Any) -> None:
    try:
        change()
    except KeyError:
        raise queries.NotFound(f"no schedule named {name!r}") from None
    except ValueError as e:
        raise queries.Refused(str(e)) from e
    core._meta["schedules"] = core.periodic.dump()


def run_schedule(core: MasterCore, name: str) -> dict[str, Any]:
    """Submit one run of the schedule's task now, paused or not, as a tick would (its
    arguments, queue and priority), with the id NAME@now-TIME; its ticks are unchanged."""
    try:
        s = core.periodic.get(name)
    except KeyError:
        raise queries.NotFound(f"no schedule named {name!r}") from None
    except ValueError as e:
        raise queries.Refused(str(e)) from e
    tid = base = f"{s.name}@now-" + f"{core.wall:.6f}".rstrip("0").rstrip(".")
    n = 1
    while tid in core.tasks:  # asked twice in one turn: a run each
        n += 1
        tid = f"{base}-{n}"
    _submit_run(core, s, tid)
    t = core.tasks.get(tid)
    if t is None:  # BUSY (the master holds its most tasks) or refused
        raise queries.Refused(f"schedule {name!r}: the master did not take the run now "
                              "(it holds the most tasks it may; try again later)")
    return {"id": tid, "schedule": core.periodic.view(name)}


def list_schedules(core: MasterCore) -> list[dict[str, Any]]:
    return [core.periodic.view(n) for n in core.periodic.names()]
