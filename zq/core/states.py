"""The legal task-state edges, as data: why each is taken and whether the change is
stored. Anything else is a bug in the master core. docs/TASKS.md's table is generated
from table_markdown() (`make docs`; a test checks it is current)."""

from __future__ import annotations

from dataclasses import dataclass

from zq.core.messages import State
from zq.errors import ZqError

P, Q, R, S, F, C, T, D = (State.PENDING, State.QUEUED, State.RUNNING, State.SUCCEEDED,
                          State.FAILED, State.CANCELLED, State.RETRYING, State.DEAD)


@dataclass(frozen=True, slots=True)
class Edge:
    why: str  # when the master takes it, for the docs
    saved: bool = True  # the task is written to the store with the change


# (from, to): the edge
EDGES: dict[tuple[State, State], Edge] = {
    (P, Q): Edge("its eta passed, or every task it runs after succeeded"),
    (P, C): Edge("cancelled, or a task it runs after failed for good"),
    (P, F): Edge("a task whose result it takes as an argument failed for good "
                 "(`zq.DependencyFailed`)"),
    (P, R): Edge("a worker that re-registers still runs it (it was deferred or restored "
                 "meanwhile), or a late result of an earlier attempt arrives"),
    (Q, R): Edge("leased to a worker"),
    (Q, C): Edge("cancelled before it started"),
    # Not stored: the store keeps it queued, which a restart reads the same way.
    (Q, P): Edge("deferred by its task name's rate limit", saved=False),
    (R, S): Edge("the worker returned a result"),
    (R, F): Edge("it failed and may not be retried"),
    (R, T): Edge("it failed (or its worker died) with attempts left: backing off"),
    (R, Q): Edge("handed back unstarted, or its worker died with attempts left"),
    (R, D): Edge("it failed (or its worker died) on its last attempt"),
    (R, C): Edge("cancelled while running"),
    (T, Q): Edge("its backoff passed"),
    (T, R): Edge("a worker that re-registers still runs it, or a late success of the "
                 "attempt that failed arrives"),
    (T, C): Edge("cancelled while waiting to retry"),
    (F, Q): Edge("retried by hand (`zq retry ID`, `client.retry(id)`)"),
    (D, Q): Edge("retried by hand (`zq retry ID`, `client.retry(id)`)"),
    (C, Q): Edge("retried by hand (`zq retry ID`, `client.retry(id)`)"),
}


class IllegalTransition(ZqError):
    """The core tried an edge that is not in EDGES: a bug in zq, not bad input."""


def edge(old: State, new: State) -> Edge:
    """The edge old -> new; IllegalTransition if there is none."""
    e = EDGES.get((old, new))
    if e is None:
        raise IllegalTransition(f"{old.label} -> {new.label} is not a legal task transition")
    return e


def check(old: State, new: State) -> None:
    edge(old, new)


def table_markdown() -> str:
    """The edges as a Markdown table, for the docs: edges that differ only in where
    they start share a row."""
    rows: list[tuple[list[str], State, str]] = []
    for (a, b), e in EDGES.items():
        if rows and rows[-1][1] is b and rows[-1][2] == e.why:
            rows[-1][0].append(a.label)
        else:
            rows.append(([a.label], b, e.why))
    lines = [f"| {', '.join(froms)} | {b.label} | {why} |" for froms, b, why in rows]
    return "\n".join(["| from | to | when |", "|---|---|---|", *lines])


BEGIN = "<!-- state table: generated from zq.core.states.table_markdown() by `make docs` -->"
END = "<!-- end of state table -->"


def with_table(doc: str) -> str:
    """doc (docs/TASKS.md) with its state table, between BEGIN and END, made current."""
    start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
    return doc[:start] + "\n" + table_markdown() + "\n" + doc[end:]
