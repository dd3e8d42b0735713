"""The legal task-state edges, as data. Anything else is a bug in the master core."""

from __future__ import annotations

from zq.core.messages import State
from zq.errors import ZqError

P, Q, R, S, F, C, T, D = (State.PENDING, State.QUEUED, State.RUNNING, State.SUCCEEDED,
                          State.FAILED, State.CANCELLED, State.RETRYING, State.DEAD)

# (from, to): why
EDGES: dict[tuple[State, State], str] = {
    (P, Q): "its eta passed, or every task it runs after succeeded",
    (P, C): "cancelled, or a task it runs after failed for good",
    (Q, R): "leased to a worker",
    (Q, C): "cancelled before it started",
    (Q, P): "deferred by its task name's rate limit",
    (R, S): "the worker returned a result",
    (R, F): "it failed and may not be retried",
    (R, T): "it failed (or its worker died) with attempts left: backing off",
    (R, Q): "handed back unstarted, or its worker died with attempts left",
    (R, D): "it failed (or its worker died) on its last attempt",
    (R, C): "cancelled while running",
    (T, Q): "its backoff passed",
    (T, C): "cancelled while waiting to retry",
    (F, Q): "retried by hand",
    (D, Q): "retried by hand",
    (C, Q): "retried by hand",
}


class IllegalTransition(ZqError):
    """The core tried an edge that is not in EDGES: a bug in zq, not bad input."""


def check(old: State, new: State) -> None:
    if (old, new) not in EDGES:
        raise IllegalTransition(f"{old.label} -> {new.label} is not a legal task transition")


def table_markdown() -> str:
    """The edges as a Markdown table, for the docs."""
    rows = [f"| {a.label} | {b.label} | {why} |" for (a, b), why in EDGES.items()]
    return "\n".join(["| from | to | when |", "|---|---|---|", *rows])
