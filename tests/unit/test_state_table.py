"""docs/TASKS.md's state table is generated from zq.core.states.EDGES: it must be current
(run `make docs` after changing EDGES)."""

from __future__ import annotations

import pathlib

import pytest

from zq.core import states
from zq.core.messages import State

TASKS_MD = pathlib.Path(__file__).resolve().parents[2] / "docs" / "TASKS.md"


def test_docs_tasks_md_shows_the_current_edges() -> None:
    doc = TASKS_MD.read_text()
    assert states.with_table(doc) == doc, "docs/TASKS.md's state table is stale: make docs"


def test_every_edge_is_in_the_table_once() -> None:
    table = states.table_markdown()
    rows = table.splitlines()[2:]
    listed = {(a.strip(), row.split("|")[2].strip())
              for row in rows for a in row.split("|")[1].split(",")}
    assert listed == {(a.label, b.label) for a, b in states.EDGES}
    assert len(listed) == len(states.EDGES)


def test_a_stale_table_is_replaced_and_the_rest_kept() -> None:
    doc = f"before\n{states.BEGIN}\n| from | to |\n| old | row |\n{states.END}\nafter\n"
    new = states.with_table(doc)
    assert new.startswith(f"before\n{states.BEGIN}\n") and new.endswith(f"{states.END}\nafter\n")
    assert "| old | row |" not in new and states.table_markdown() in new


def test_an_edge_not_in_the_table_is_refused() -> None:
    with pytest.raises(states.IllegalTransition):
        states.edge(State.SUCCEEDED, State.RUNNING)
    assert states.edge(State.QUEUED, State.PENDING).saved is False
    assert states.edge(State.QUEUED, State.RUNNING).saved is True
