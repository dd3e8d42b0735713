"""Canvas (issue 17): name calls without submitting them, and combine them into
workflows that pass data, as Celery's canvas does, scheduled by the master.

    add.s(1, 2)                       # a signature of any @zq.task function
    zq.sig("myapp.tasks:add", 1, 2)   # the same by name
    zq.chain(add.s(1, 2), mul.s(10))  # each result is the first argument of the next
    zq.group([add.s(i, i) for i in range(10)])   # in parallel: a GroupFuture
    zq.chord(zq.group([...]), total.s())         # the callback gets the list of results
    client.submit(workflow)           # the future of its final result (a GroupFuture
                                      # for a group)
    client.submit(add, zq.result_of("a1b2"), 1)  # a task's result by id (zq submit
                                      # --arg-from): as a future of it would be

A workflow is submitted as a whole, at once: every task goes to the master in the
client's next SUBMIT batch, each step naming its inputs (futures as arguments,
zq.core.workflows), so the master holds each step until what it takes has succeeded and
ships the results to the worker without decoding them. Nothing waits in the client.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from zq.core import values
from zq.core.codec import MAX_ID
from zq.errors import ConfigError

if TYPE_CHECKING:
    from zq.client.future import Future
    from zq.client.options import Submitter


class Workflow:
    """What client.submit() takes besides a callable: a Signature, Chain, Group or Chord."""

    __slots__ = ()
    __hash__ = None  # type: ignore[assignment]  # never a key of the client's spec cache


class Signature(Workflow):
    """One call, not submitted yet: the task (a function or "module:name"), its
    arguments, and options for this call (as client.options() takes them)."""

    __slots__ = ("task", "args", "kwargs", "options")

    def __init__(self, task: Callable[..., Any] | str, args: tuple[Any, ...] = (),
                 kwargs: dict[str, Any] | None = None,
                 options: dict[str, Any] | None = None) -> None:
        self.task = task
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.options = dict(options or {})

    def set(self, **options: Any) -> Signature:
        """This signature with these options (queue, priority, retries, timeout, ...)."""
        return Signature(self.task, self.args, self.kwargs, {**self.options, **options})

    def __repr__(self) -> str:
        name = self.task if isinstance(self.task, str) else getattr(
            self.task, "__qualname__", repr(self.task))
        return f"sig({name}, *{self.args!r}, **{self.kwargs!r})"


class Chain(Workflow):
    __slots__ = ("steps",)

    def __init__(self, steps: list[Workflow]) -> None:
        self.steps = steps


class Group(Workflow):
    __slots__ = ("members",)

    def __init__(self, members: list[Workflow]) -> None:
        self.members = members


class Chord(Workflow):
    __slots__ = ("group", "callback")

    def __init__(self, group: Group, callback: Workflow) -> None:
        self.group = group
        self.callback = callback


class ResultOf:
    """The result of the task with this id, standing among a task's arguments as a future
    of it would (a reference: the master holds the task until that one succeeded and
    ships its result; the worker puts it in place). For a task submitted elsewhere or
    earlier, known by its id only (`zq submit --arg-from ID`); nothing is watched."""

    __slots__ = ("id",)

    def __init__(self, task_id: str) -> None:
        if type(task_id) is not str or not 0 < len(task_id.encode()) <= MAX_ID:
            raise ConfigError(f"a task id is a non-empty string of at most {MAX_ID} bytes, "
                              f"not {task_id!r}")
        self.id = task_id

    def __repr__(self) -> str:
        return f"result_of({self.id!r})"


values.refer_with(ResultOf, lambda r: r.id)


def result_of(task_id: str) -> ResultOf:
    """The result of task `task_id`, as an argument of another task:
    client.submit(report, zq.result_of("a1b2")) runs report on that task's result once
    it has succeeded (and fails with DependencyFailed if it failed)."""
    return ResultOf(task_id)


def sig(task: Callable[..., Any] | str, /, *args: Any, **kwargs: Any) -> Signature:
    """A signature of task (a function, or its name "module:function") called with these
    arguments."""
    return Signature(task, args, kwargs)


def chain(*steps: Workflow) -> Chain:
    """Run steps one after the other, each result the first argument of the next (a
    group's result, the list of its results)."""
    if not steps:
        raise ValueError("chain() needs at least one step")
    return Chain([_workflow(s) for s in steps])


def group(*members: Workflow | Iterable[Workflow]) -> Group:
    """Run members in parallel: group([a.s(1), b.s(2)]) or group(a.s(1), b.s(2))."""
    if len(members) == 1 and not isinstance(members[0], Workflow):
        members = tuple(members[0])  # type: ignore[arg-type]
    return Group([_workflow(m) for m in members])  # type: ignore[arg-type]


def chord(header: Group | Iterable[Workflow], callback: Workflow) -> Chord:
    """Run the group, then callback with the list of its results as first argument."""
    g = header if isinstance(header, Group) else group(list(header))
    return Chord(g, _workflow(callback))


def _workflow(x: Any) -> Workflow:
    if not isinstance(x, Workflow):
        raise TypeError(f"a workflow step must be a signature (task.s(...), zq.sig(...)), "
                        f"a chain, a group or a chord, not {type(x).__name__}")
    return x


class GroupFuture:
    """The futures of a group's members, in order. result() is the list of their
    results; as_completed() yields the futures as they finish; cancel() stops them all.
    Passed as an argument (or to the next step of a chain), it stands for that list."""

    def __init__(self, futures: list[Any]) -> None:
        self.futures = futures

    def __len__(self) -> int:
        return len(self.futures)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.futures)

    def result(self, timeout: float | None = None) -> list[Any]:
        """Every member's result, in order; the first failure (in order) raises."""
        deadline = None if timeout is None else time.monotonic() + timeout
        out = []
        for f in self.futures:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            out.append(f.result(left))
        return out

    def done(self) -> bool:
        return all(f.done() for f in self.futures)

    def as_completed(self, timeout: float | None = None) -> Iterator[Any]:
        """The members' futures as they finish (a nested group's, flattened)."""
        return cf.as_completed(_flat(self.futures), timeout)

    def cancel(self) -> bool:
        """Stop every member whatever its state (Future.revoke()), and what the members
        take results from that has not started and nothing else needs (a group of
        chains: their earlier steps; protocol 1.5, zq.client.upstream). True if any
        member was cancelled here."""
        from zq.client.upstream import cancel_workflow
        return cancel_workflow(_flat(self.futures))


def _flat(futures: list[Any]) -> list[Any]:
    out: list[Any] = []
    for f in futures:
        out.extend(_flat(f.futures) if isinstance(f, GroupFuture) else [f])
    return out


def _as_argument(x: Any) -> Any:
    """What a step's result stands as among the next step's arguments: a future, or the
    list of a group's (nested groups as nested lists)."""
    return [_as_argument(f) for f in x.futures] if isinstance(x, GroupFuture) else x


def submit(submitter: Submitter, wf: Workflow, first: Any = None, has_first: bool = False
           ) -> Future | GroupFuture:
    """Submit workflow wf (every task at once); `first`, when has_first, is the result
    of the step before (a future or a GroupFuture), its first argument."""
    if isinstance(wf, Signature):
        args = (_as_argument(first), *wf.args) if has_first else wf.args
        s = submitter.options(**wf.options) if wf.options else submitter
        return s.submit(wf.task, *args, **wf.kwargs)
    if isinstance(wf, Chain):
        out: Any = first
        has = has_first
        for step in wf.steps:
            out = submit(submitter, step, out, has)
            has = True
        return out  # type: ignore[no-any-return]
    if isinstance(wf, Group):
        return GroupFuture([submit(submitter, m, first, has_first) for m in wf.members])
    if isinstance(wf, Chord):
        results = submit(submitter, wf.group, first, has_first)
        return submit(submitter, wf.callback, results, True)
    raise TypeError(f"not a workflow: {type(wf).__name__}")
