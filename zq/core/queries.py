"""The master's query side: the QUERY kinds a client may ask, in one table (each kind's
arguments with their types and ranges, checked before anything acts, and the privilege
it needs; docs/PROTOCOL.md §5 lists the same table), their handlers, and on_query,
which runs one QUERY against the MasterCore within its asker's budget of answer bytes.

check() turns a QUERY's raw args (a msgpack map from the wire) into the checked args of
its kind, or raises Refused with a message for the asker. The handlers run on the
master core and may refuse too (an unknown task id, a task that cannot be retried):
they raise Refused or NotFound for that. The changes a query makes to tasks (retry,
purge) are here, as functions of the core, beside the read-only answers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from zq.core import cancels, detail, expiry, serde, timers, workflows
from zq.core import messages as m
from zq.core.access import Caller, Need, allowed, refusal
from zq.core.codec import MAX_ID, MAX_NAME
from zq.core.events import KINDS as EVENT_KINDS
from zq.core.limits import MAX_NESTING
from zq.core.messages import FINAL_STATES, Cmd, State
from zq.core.periodic import MAX_EVERY, MIN_EVERY
from zq.core.tasks import TaskRecord

if TYPE_CHECKING:
    from zq.core.master_core import MasterCore

MAX_TASKS_LIMIT = 1000  # rows one `tasks` query returns at most
MAX_SCAN = 100_000  # tasks one `tasks` query looks at, newest first
SCAN_COST = 8  # per task a `tasks` query looks at
# Each peer's queries are budgeted in bytes of answers: a bucket of QUERY_BYTES, refilled
# at QUERY_BYTES per second; a query costs about its answer (QUERY_COST plus ROW_COST a
# row). A peer past its budget is answered ok=false at once, in a few bytes.
QUERY_BYTES = 4 * 1024 * 1024
QUERY_COST, ROW_COST = 1024, detail.ANSWER_ROW
MAX_RETRY_MANY = 10_000  # tasks one `retry_many` query retries at most
RETRYABLE_LABELS = tuple(s.label for s in (State.FAILED, State.DEAD, State.CANCELLED))
STATE_LABELS = tuple(s.label for s in State)
FINAL_LABELS = tuple(s.label for s in State if s in FINAL_STATES)


class Refused(ValueError):
    """A query the master will not run: the message says why, for the asker. Handlers
    raise it (or NotFound) for what the asker got wrong; any other exception from a
    handler is a bug, which the master logs and counts."""


class NotFound(Refused, LookupError):
    """The query names a task or schedule the master does not have."""

    def __str__(self) -> str:  # LookupError's str() would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument: its type ("str", "int", "number", "list", "map"), whether it must
    be given, its default, and its bounds (length for a str, value for int/number)."""

    type: str
    required: bool = False
    default: Any = None
    lo: float = -math.inf
    hi: float = math.inf
    max_len: int = MAX_NAME
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    args: dict[str, Arg]
    need: Need
    run: Callable[[MasterCore, dict[str, Any], Caller], Any]
    doc: str


def check(kind: Kind, raw: dict[Any, Any]) -> dict[str, Any]:
    """The checked arguments of one query: every given one of the right type and in
    range, unknown ones refused, absent ones at their default. nil counts as absent."""
    unknown = [k for k in raw if k not in kind.args]
    if unknown:
        known = ", ".join(kind.args) or "none"
        raise Refused(f"query {kind.name!r} takes no argument {str(unknown[0])[:64]!r}; "
                      f"its arguments: {known}")
    out: dict[str, Any] = {}
    for name, arg in kind.args.items():
        value = raw.get(name)
        if value is None:
            if arg.required:
                raise Refused(f"query {kind.name!r} needs the argument {name!r}")
            out[name] = arg.default
        else:
            out[name] = _checked(kind.name, name, arg, value)
    return out


def _checked(kind: str, name: str, arg: Arg, v: Any) -> Any:
    what = f"query {kind!r}: {name}"
    t = arg.type
    if t == "str":
        if type(v) is not str or not 0 < len(v) <= arg.max_len:
            raise Refused(f"{what} must be a non-empty string of at most {arg.max_len} "
                          "characters")
        if arg.choices and v not in arg.choices:
            raise Refused(f"{what} must be one of {', '.join(arg.choices)}, not {v[:64]!r}")
        return v
    if t == "int":
        if type(v) is not int or not arg.lo <= v <= arg.hi:
            raise Refused(f"{what} must be an integer from {arg.lo:g} to {arg.hi:g}")
        return v
    if t == "number":
        if type(v) not in (int, float) or not math.isfinite(v) or not arg.lo <= v <= arg.hi:
            raise Refused(f"{what} must be a finite number from {arg.lo:g} to {arg.hi:g}")
        return v
    if t == "list" or t == "map":
        if t == "list" and type(v) is not list:
            raise Refused(f"{what} must be an array")
        if t == "map" and (type(v) is not dict or not all(type(k) is str for k in v)):
            raise Refused(f"{what} must be a map with string keys")
        if not serde.nesting_within(v, MAX_NESTING):
            raise Refused(f"{what} nests deeper than {MAX_NESTING} levels")
        return v
    raise AssertionError(f"query table: unknown argument type {t!r}")  # a bug, not input


# --- one QUERY, within its asker's budget ---------------------------------------------

def on_query(core: MasterCore, caller: Caller, request_id: int, kind: str,
             args: dict[str, Any]) -> None:
    """One QUERY: look its kind up in the table, check its arguments and the
    caller's privilege before anything runs, then answer REPLY ok or not ok."""
    spec = KINDS.get(kind)
    if spec is None:
        reply(core, caller.rid, request_id, False, f"unknown query {kind[:64]!r}; "
              f"known: {', '.join(sorted(KINDS))}")
        return
    if not allowed(caller, spec.need):
        reply(core, caller.rid, request_id, False, refusal(f"query {kind!r}", spec.need))
        return
    budget = _query_budget(core, caller.rid)
    if budget[0] <= 0:
        core.queries_refused += 1
        reply(core, caller.rid, request_id, False, (
            f"too many queries: this client asked for more than {QUERY_BYTES} bytes "
            f"of answers per second; try again in {-budget[0] / QUERY_BYTES + 0.01:.2f} s"))
        return
    core._scanned = core._rows = 0
    try:
        body = spec.run(core, check(spec, args), caller)
    except Refused as e:  # anything else is a bug: the master counts it
        reply(core, caller.rid, request_id, False, str(e))
    else:
        rows = (len(body) if type(body) is list else 0) + core._rows
        budget[0] -= QUERY_COST + SCAN_COST * core._scanned + ROW_COST * rows
        reply(core, caller.rid, request_id, True, body)


def reply(core: MasterCore, rid: bytes, request_id: int, ok: bool, body: Any) -> None:
    core._push(rid, Cmd.REPLY, m.Reply(request_id, ok, body))


def _query_budget(core: MasterCore, rid: bytes) -> list[float]:
    b = core.query_budget.get(rid)
    if b is None:
        b = core.query_budget[rid] = [float(QUERY_BYTES), core.now]
    else:
        b[0] = min(float(QUERY_BYTES), b[0] + (core.now - b[1]) * QUERY_BYTES)
        b[1] = core.now
    return b


def charge(core: MasterCore, rid: bytes, cost: float) -> None:
    """Count cost bytes against rid's query budget (work done for its next query)."""
    _query_budget(core, rid)[0] -= cost


def forget_full_budgets(core: MasterCore) -> None:
    """Housekeeping: forget the peers whose budget is full again."""
    now = core.now
    full = [rid for rid, (left, at) in core.query_budget.items()
            if left + (now - at) * QUERY_BYTES >= QUERY_BYTES]
    for rid in full:
        del core.query_budget[rid]


# --- what a query changes ------------------------------------------------------------

def retry(core: MasterCore, tid: str) -> dict[str, Any]:
    """Put a failed, dead or cancelled task back in its queue, as new (attempt 0)."""
    t = core.tasks.get(tid)
    if t is None:
        raise NotFound(f"unknown task id {tid}")
    if t.state not in (State.FAILED, State.DEAD, State.CANCELLED):
        raise Refused(f"task {tid} is {t.state.label}; only failed, dead or "
                      "cancelled tasks can be retried")
    _run_again(core, t)
    return t.as_dict()


def retry_many(core: MasterCore, state: str, queue: str | None = None,
               name: str | None = None, limit: int = 1000) -> dict[str, Any]:
    """Retry the tasks in a failed, dead or cancelled `state`, newest first, filtered by
    queue and task name: at most `limit`, among the newest MAX_SCAN tasks. `more` says
    the master stopped before it had looked at every task (at `limit`, or MAX_SCAN)."""
    want = state_named(state)
    if want not in (State.FAILED, State.DEAD, State.CANCELLED):
        raise Refused(f"only failed, dead or cancelled tasks can be retried, not {state}")
    chosen: list[TaskRecord] = []
    scanned = 0
    more = False
    for t in reversed(core.tasks.values()):
        if len(chosen) >= limit or scanned >= MAX_SCAN:
            more = True
            break
        scanned += 1
        if t.state is want and (queue is None or t.queue == queue) \
                and (name is None or t.name == name):
            chosen.append(t)
    for t in chosen:  # after the walk: a move changes no order, but walk, then change
        _run_again(core, t)
    core._scanned += scanned
    core._rows += len(chosen)
    return {"count": len(chosen), "retried": [t.id for t in chosen], "more": more}


def _run_again(core: MasterCore, t: TaskRecord) -> None:
    """A final task back in its queue, as new: attempt 0, no result, no eta."""
    core._move(t, State.QUEUED)
    t.attempt, t.result = 0, None
    t.set_options(eta=None)
    if t.inputs:  # it takes its inputs' results again (those still kept)
        workflows.hold_inputs(core, t)


def purge(core: MasterCore, state: str, older_than: float) -> int:
    """Forget the tasks in final `state` last changed `older_than` seconds ago or more."""
    want = state_named(state)
    if want not in FINAL_STATES:
        raise Refused("only final states (succeeded, failed, cancelled, dead) "
                      "can be purged")
    victims = [t for t in core.tasks.values()
               if t.state is want and t.updated <= core.wall - older_than
               and t.id not in core.kept]  # a waiting task takes its result
    for t in victims:
        expiry.forget(core, t)
        core._deleted.append(t.id)
    return len(victims)


# --- the read-only answers -----------------------------------------------------------

def status(core: MasterCore) -> dict[str, Any]:
    """The `status` answer: workers, queue depths, counts, throughput, counters."""
    log = core.done_log
    recent = sum(n for sec, n in log if sec >= int(core.now) - 10 and sec < int(core.now))
    return {
        "master_id": core.master_id,
        "workers": [w.as_dict(core.now) for w in core.workers.values()],
        "queues": {q: d for q, d in core.depth.items()},
        "counts": {s.label: n for s, n in core.counts.items()},
        "throughput": recent / 10.0,
        "dropped_messages": core.dropped,
        "ignored_results": core.ignored_results,
        "timed_out": core.timed_out,
        "dropped_sessions": core.dropped_sessions,
        "queries_refused": core.queries_refused,
        "refused_entries": core.bad_entries,
        "catalogue": core.catalogue.view(),
        "longest_turn": round(core.longest_turn, 4),
        "subscribers": len(core.events.subs),
        "store": dict(core.store_info),
    }

def list_tasks(core: MasterCore, state: str | None = None, queue: str | None = None,
               name: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Tasks newest first, at most MAX_TASKS_LIMIT. Walks the task table from
    its newest end without copying it: an unfiltered query costs `limit` rows
    whatever the number of tasks held."""
    want = state_named(state) if state else None
    limit = min(limit, MAX_TASKS_LIMIT)
    out: list[dict[str, Any]] = []
    if limit <= 0:
        return out
    scanned = 0
    for t in reversed(core.tasks.values()):
        scanned += 1
        if (want is None or t.state is want) and (queue is None or t.queue == queue) \
                and (name is None or t.name == name):
            row = t.as_dict()
            if t.after:  # a task in a graph: the ids it waits for (issue 17)
                row.update(workflows.parent_ids(t))
                core._rows += len(row["parent_ids"]) // 8  # up to 100 ids: ~13 KiB
            out.append(row)
            if len(out) >= limit:
                break
        if scanned >= MAX_SCAN:
            break  # a filter that matches little: the newest MAX_SCAN tasks only
    core._scanned += scanned
    return out


def state_named(label: str) -> State:
    try:
        return State[label.upper()]
    except KeyError:
        raise Refused(f"unknown state {label!r}; one of "
                              f"{', '.join(s.label for s in State)}") from None


# --- the handlers: checked args in, a REPLY body out ----------------------------------

def _status(core: MasterCore, a: dict[str, Any], caller: Caller) -> Any:
    return status(core)


def _tasks(core: MasterCore, a: dict[str, Any], caller: Caller) -> Any:
    return list_tasks(core, state=a["state"], queue=a["queue"], name=a["name"],
                      limit=a["limit"])


def _get(core: MasterCore, a: dict[str, Any], caller: Caller) -> Any:
    t = core.tasks.get(a["id"])
    if t is None:
        raise NotFound(f"unknown task id {a['id']}")
    return detail.task_detail(core, t)


def _retry(core: MasterCore, a: dict[str, Any], caller: Caller) -> Any:
    return retry(core, a["id"])


def _retry_many(core: MasterCore, a: dict[str, Any], caller: Caller) -> Any:
    left = core.query_budget[caller.rid][0]  # on_query made it, and it is above 0
    limit = min(a["limit"], max(1, int(left // ROW_COST)))  # what the budget pays for
    return retry_many(core, a["state"], a["queue"], a["name"], limit)


def _cancel_unstarted(core: MasterCore, a: dict[str, Any], caller: Caller) -> Any:
    """Cancel the named tasks that have not started (1.5; zq.core.cancels decides)."""
    ids = _task_ids(a, "cancel_unstarted", cancels.MAX_CANCEL_IDS)
    core._scanned += len(ids)  # its budget: as a scan of that many tasks
    return cancels.cancel_unstarted(core, caller, ids)


def _cancel_inputs(core: MasterCore, a: dict[str, Any], caller: Caller) -> Any:
    """Cancel, upstream of the named tasks, what has not started (1.5; workflows)."""
    ids = _task_ids(a, "cancel_inputs", workflows.MAX_CANCEL_IDS)
    return workflows.cancel_inputs(core, caller, ids)


def _task_ids(a: dict[str, Any], query: str, most: int) -> list[str]:
    """The query's `ids`, refused unless they hold 1 to `most` task ids."""
    ids: list[str] = a["ids"]
    if not 0 < len(ids) <= most:
        raise Refused(f"query '{query}': ids must hold 1 to {most} task ids, not "
                      f"{len(ids)} (send more in several queries)")
    return ids


def _purge(core: MasterCore, a: dict[str, Any], caller: Caller) -> Any:
    return {"purged": purge(core, a["state"], a["older_than"])}


def _schedule_add(core: MasterCore, a: dict[str, Any], caller: Caller) -> Any:
    return timers.add_schedule(core, {k: v for k, v in a.items() if v is not None})


def _schedule_list(core: MasterCore, a: dict[str, Any], caller: Caller) -> Any:
    return timers.list_schedules(core)


def _schedule_remove(core: MasterCore, a: dict[str, Any], caller: Caller) -> Any:
    return timers.remove_schedule(core, a["name"])


def _schedule_pause(core: MasterCore, a: dict[str, Any], caller: Caller) -> Any:
    return timers.pause_schedule(core, a["name"])


def _schedule_resume(core: MasterCore, a: dict[str, Any], caller: Caller) -> Any:
    return timers.resume_schedule(core, a["name"])


def _schedule_run(core: MasterCore, a: dict[str, Any], caller: Caller) -> Any:
    return timers.run_schedule(core, a["name"])


def _events(core: MasterCore, a: dict[str, Any], caller: Caller) -> Any:
    """Subscribe to events (1.3), renew, change the filter, acknowledge, or stop."""
    if a["stop"]:
        return {"subscribed": False, "was": core.events.unsubscribe(caller.rid)}
    kinds = a["kinds"]
    if kinds is not None:
        bad = [k for k in kinds if type(k) is not str or k not in EVENT_KINDS]
        if bad or not kinds:
            raise Refused(f"query 'events': kinds must be a non-empty array of "
                          f"{', '.join(EVENT_KINDS)}; not {str(bad[0] if bad else kinds)[:64]!r}")
    return core.events.subscribe(caller.rid, core.now, a["queue"], a["task"], kinds,
                                 a["seen"])


_ID = Arg("str", required=True, max_len=MAX_ID)
_SCHEDULE = Arg("str", required=True, max_len=200)

KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("status", {}, Need.READ, _status,
         "workers, queue depths, counts per state, throughput and counters"),
    Kind("tasks", {"state": Arg("str", choices=STATE_LABELS), "queue": Arg("str"),
                   "name": Arg("str"),
                   "limit": Arg("int", default=100, lo=1, hi=MAX_TASKS_LIMIT)},
         Need.READ, _tasks, "tasks newest first, filtered"),
    Kind("get", {"id": _ID}, Need.READ, _get, "one task"),
    Kind("events", {"queue": Arg("str"), "task": Arg("str"), "kinds": Arg("list"),
                    "seen": Arg("int", lo=0, hi=2**62), "stop": Arg("int", default=0, lo=0, hi=1)},
         Need.READ, _events, "subscribe to task and worker events (renew within 10 s)"),
    Kind("retry", {"id": _ID}, Need.ADMIN, _retry,
         "put a failed, dead or cancelled task back in its queue"),
    Kind("retry_many", {"state": Arg("str", required=True, choices=RETRYABLE_LABELS),
                        "queue": Arg("str"), "name": Arg("str"),
                        "limit": Arg("int", default=1000, lo=1, hi=MAX_RETRY_MANY)},
         Need.ADMIN, _retry_many,
         "put the failed, dead or cancelled tasks of a filter back in their queues"),
    Kind("cancel_unstarted", {"ids": Arg("list", required=True)}, Need.READ,
         _cancel_unstarted, "cancel the named tasks that have not started (1.5)"),
    Kind("cancel_inputs", {"ids": Arg("list", required=True)}, Need.READ, _cancel_inputs,
         "cancel what the named tasks take results from and has not started (1.5)"),
    Kind("purge", {"state": Arg("str", default="succeeded", choices=FINAL_LABELS),
                   "older_than": Arg("number", default=0.0, lo=0.0)},
         Need.ADMIN, _purge, "forget final tasks"),
    Kind("schedule_add", {
        "name": Arg("str", required=True, max_len=200), "task": Arg("str", required=True),
        "cron": Arg("str", max_len=200), "every": Arg("number", lo=MIN_EVERY, hi=MAX_EVERY),
        "timezone": Arg("str", max_len=64), "args": Arg("list"), "kwargs": Arg("map"),
        "queue": Arg("str"), "priority": Arg("int", lo=-2**31, hi=2**31 - 1)},
        Need.ADMIN, _schedule_add, "add or replace a periodic task"),
    Kind("schedule_list", {}, Need.READ, _schedule_list, "the periodic tasks"),
    Kind("schedule_remove", {"name": _SCHEDULE}, Need.ADMIN, _schedule_remove,
         "remove a periodic task"),
    Kind("schedule_pause", {"name": _SCHEDULE}, Need.ADMIN, _schedule_pause,
         "stop a periodic task's ticks until it is resumed"),
    Kind("schedule_resume", {"name": _SCHEDULE}, Need.ADMIN, _schedule_resume,
         "let a paused periodic task tick again, from its next tick after now"),
    Kind("schedule_run", {"name": _SCHEDULE}, Need.ADMIN, _schedule_run,
         "submit one run of a periodic task now (its ticks unchanged)"),
)}


def args_to_load(core: MasterCore, rid: bytes, kind: str, args: Any) -> list[str]:
    """Task ids a `get` shows whose argument payload the master freed (a success) or
    never held (an old task): the loop reads them back from a durable store. Nothing
    while the asker's query budget is spent (the query is refused anyway): each payload
    read costs its whole size, so a peer asking again and again reads at most about
    QUERY_BYTES a second from the store."""
    if not core.durable or _query_budget(core, rid)[0] <= 0:
        return []
    return [i for i in ids_to_load(kind, args)
            if (t := core.tasks.get(i)) is None or not t.payload]


def ids_to_load(kind: str, args: Any) -> list[str]:
    """Task ids a query reads that may live only in the store (an old result): the
    master reads them back before the core answers. Checked like the query's own args;
    anything malformed loads nothing (the query itself then says what is wrong)."""
    if kind == "get" and type(args) is dict:
        tid = args.get("id")
        if type(tid) is str and 0 < len(tid) <= MAX_ID:
            return [tid]
    return []
