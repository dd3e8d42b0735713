"""Workflows that pass data (issue 17): the master's rules for a task whose arguments
refer to other tasks' results (`client.submit(f, client.submit(g, 1))`).

The client puts a reference (values.Ext.REF, the input's task id) where a future stands
and names the inputs in the SUBMIT option `inputs`. The master never reads a payload:

- **Hold.** The inputs join the task's `after`, so the dependency machinery holds it
  PENDING until every input succeeded (MasterCore._place_new, _release_dependents).
- **Ship.** Its TASK carries the inputs' result payloads as they came from their workers
  (a Refs, which the codec sends as the entry's 7th field); the worker substitutes them
  (serde.decode_call).
- **Fail, cancel.** An input that ends failed or dead fails the task with
  DependencyFailed, naming the input and carrying its (root) error as the cause; one
  cancelled cancels it, as after= does.
- **Keep.** An input's result is kept until every task that takes it is final, whatever
  its result_ttl and the master's max_finished: `kept` counts them per input, and the
  expiry parks a kept result instead of forgetting it, and takes it back when the count
  reaches zero. (Until final, not only until started: an attempt that is retried, or
  rerun after its worker died, needs its inputs again.)
- **Durable.** `inputs` is a field of the task's record; restore() rebuilds `kept`.
- **Cancel upstream.** Cancelling a workflow's final task also cancels what it takes
  results from, transitively, that has not started and that no other unfinished task
  needs (cancel_inputs, the QUERY `cancel_inputs` of protocol 1.5): what follows a
  cancelled task is cancelled by the rules above; this is the way up.

These are functions of the MasterCore they change, called from small hooks there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zq.core import expiry, serde
from zq.core.access import Caller, may_touch
from zq.core.cancels import may_run
from zq.core.codec import MAX_ID, MAX_IDS
from zq.core.messages import FINAL_STATES, State
from zq.core.parts import Refs
from zq.core.tasks import TaskRecord, cancelled_error

if TYPE_CHECKING:
    from zq.core.master_core import MasterCore

DEPENDENCY_FAILED = "DependencyFailed"


def check_inputs(core: MasterCore, inputs: list[str], after: list[str] | None) -> list[str]:
    """The task's `after` with its inputs added; ValueError (the entry is REJECTED)
    for an input the master does not hold, or whose result it no longer has."""
    missing = [i for i in inputs if i not in core.tasks]
    if missing:
        raise ValueError(f"the arguments refer to unknown task ids: {', '.join(missing[:5])} "
                         "(forgotten since, or never submitted to this master)")
    for i in inputs:
        d = core.tasks[i]
        if d.state is State.SUCCEEDED and d.result is None:
            raise ValueError(f"the result of task {i} is no longer kept: submit it again")
    out = list(after or ())
    have = set(out)
    out.extend(i for i in inputs if i not in have)
    return out


def hold_inputs(core: MasterCore, t: TaskRecord) -> None:
    """A new (or restored) task t that is not final takes its inputs: keep their results."""
    kept = core.kept
    for i in t.inputs or ():
        kept[i] = kept.get(i, 0) + 1


def release_inputs(core: MasterCore, t: TaskRecord) -> None:
    """t is final: its inputs' results are kept for it no longer. A result parked by
    the expiry while kept goes back to it (it may expire at once)."""
    kept, parked = core.kept, core.parked
    for i in t.inputs or ():
        n = kept.get(i)
        if n is None:
            continue
        if n > 1:
            kept[i] = n - 1
            continue
        del kept[i]
        if i in parked:
            parked.discard(i)
            d = core.tasks.get(i)
            if d is not None and d.state in FINAL_STATES:
                expiry.keep_result(core, d)


def park(core: MasterCore, tid: str) -> bool:
    """The expiry reached task tid's result: True (and parked) if a waiting task still
    needs it, so it must not be forgotten now."""
    if tid in core.kept:
        core.parked.add(tid)
        return True
    return False


def with_inputs(core: MasterCore, t: TaskRecord) -> Any:
    """What t's TASK carries as its payload: its arguments and its inputs' results."""
    tasks = core.tasks
    refs = []
    for i in t.inputs or ():
        d = tasks.get(i)
        if d is not None and d.state is State.SUCCEEDED and d.result is not None:
            refs.append((i, d.result))
    return Refs(t.payload, refs)


def dependency_failed(dep: TaskRecord) -> bytes:
    """The error of a task whose input `dep` failed for good: DependencyFailed naming the
    input, with the input's own error as its cause (the first failure's, when the input
    itself failed because of one of its inputs: a failed chain nests no deeper)."""
    cause = dep.result if type(dep.result) is bytes else b""
    info = serde.decode_error(cause)
    while info["type"] == DEPENDENCY_FAILED and type(info.get("cause")) is bytes:
        cause = info["cause"]
        info = serde.decode_error(cause)
    message = (f"input task {dep.id} ({dep.name}) ended {dep.state.label}: "
               f"{info['type']}: {info['message']}")
    return serde.encode_dependency_failed(message, dep.id, cause)


def ended_without_result(core: MasterCore, t: TaskRecord, dep: TaskRecord) -> None:
    """dep, which t runs after, ended other than succeeded: t fails with
    DependencyFailed if dep is one of its inputs and failed for good, else is
    cancelled (a cancelled input, or an after= dependency)."""
    if t.inputs and dep.id in t.inputs and dep.state in (State.FAILED, State.DEAD):
        core._finish(t, State.FAILED, dependency_failed(dep))
    else:
        core._finish(t, State.CANCELLED, cancelled_error(
            f"task {dep.id} it runs after ended {dep.state.label}"))


# Not started: cancelling such a task loses no work. A task leased to a worker counts as
# started (RUNNING), even one waiting in that worker's prefetch: it is left to finish.
NOT_STARTED = frozenset({State.PENDING, State.QUEUED, State.RETRYING})
MAX_CANCEL_IDS = MAX_IDS  # task ids in one cancel_inputs query (as in one CANCEL)


def cancel_inputs(core: MasterCore, caller: Caller, ids: list[Any]) -> dict[str, Any]:
    """The QUERY cancel_inputs: the named tasks (a workflow's final ones, which the
    client cancels with CANCEL too) are going away; cancel their inputs, transitively,
    that have not started and that no unfinished task outside the workflow takes (by
    `inputs` or `after`), and that the caller may touch. Each entry is checked alone
    (`refused`: [index, reason]). The answer: `cancelled`, the inputs it cancelled."""
    refused: list[list[Any]] = []
    named: list[str] = []
    for n, tid in enumerate(ids):
        if type(tid) is not str or not 0 < len(tid) <= MAX_ID:
            refused.append([n, f"entry #{n}: a task id must be a non-empty string of at "
                               f"most {MAX_ID} characters"])
        else:
            named.append(tid)
    doomed = upstream_of(core, named, lambda t: may_touch(caller, t.owner))
    for t in doomed:
        if t.state in NOT_STARTED:  # (cancelling one may have cancelled another: final)
            core.cancel(t)
    return {"cancelled": [t.id for t in doomed], "refused": refused}


def upstream_of(core: MasterCore, ids: list[str], may: Any) -> list[TaskRecord]:
    """The inputs of tasks `ids`, transitively, that go with them: each not started (nor
    possibly running on a worker after a master restart: zq.core.cancels.may_run), every
    unfinished task that waits on it (as input or `after`) among `ids` or these, and
    may(task) true. Each candidate input counts its live takers outside the set once;
    a task joining the set counts down the inputs it runs after, so the answer does not
    depend on the order the graph is walked in, and the walk is linear in its edges
    (each charged to the query budget)."""
    tasks, waiting = core.tasks, core.waiting
    gone = set(ids)
    live: dict[str, int] = {}  # candidate input -> its unfinished takers not in `gone`
    stack = list(gone)
    out: list[TaskRecord] = []
    while stack:
        t = tasks.get(stack.pop())
        core._scanned += 1
        if t is None or not t.inputs:
            continue
        ready = []
        for i in t.inputs:
            if i in gone or i in live:
                continue
            d = tasks.get(i)
            if d is None or d.state not in NOT_STARTED or not may(d) or may_run(core, d):
                continue
            takers = waiting.get(i, ())
            core._scanned += len(takers)
            live[i] = sum(1 for w in takers if w not in gone
                          and (r := tasks.get(w)) is not None and r.state not in FINAL_STATES)
            if not live[i]:
                ready.append(i)
        while ready:
            i = ready.pop()
            gone.add(i)
            d = tasks[i]
            out.append(d)
            stack.append(i)
            for a in d.after or ():  # d no longer holds up what it runs after
                if a in live and a not in gone:
                    live[a] -= 1
                    if not live[a]:
                        ready.append(a)
    return out


PARENTS_SHOWN = 100  # parent ids a `tasks` row lists at most (as `get` does)


def parent_ids(t: TaskRecord) -> dict[str, Any]:
    """The fields a `tasks` row of a task that waits for others adds: the ids of what it
    runs after or takes results from (the first PARENTS_SHOWN, in the order given) and
    how many there are."""
    after = t.after or []
    return {"parent_ids": list(after[:PARENTS_SHOWN]), "parents_total": len(after)}


def restore(core: MasterCore) -> None:
    """After a restart: the tasks not final yet take their inputs again."""
    for t in core.tasks.values():
        if t.inputs and t.state not in FINAL_STATES:
            hold_inputs(core, t)


def check(core: MasterCore) -> None:
    """The invariant of `kept` (MasterCore.validate): each input counts exactly the
    tasks not final yet that take it."""
    want: dict[str, int] = {}
    for t in core.tasks.values():
        if t.inputs and t.state not in FINAL_STATES:
            for i in t.inputs:
                want[i] = want.get(i, 0) + 1
    assert want == core.kept, f"kept results drifted: {core.kept} != {want}"
    for tid in core.parked:
        assert tid in core.kept, f"{tid} parked but kept for nobody"
