"""A workflow's graph is visible (issue 17): the `submitted` event of a task that waits
for others names them (`parents`, the first 100, and `parents_total`), and so does its
row in the `tasks` query (`parent_ids`, `parents_total`); a task without any carries
neither, so plain tasks cost what they did."""

from __future__ import annotations

from typing import Any

from tests.unit.test_master_core import C, Harness, make
from zq.core import messages as m
from zq.core import queries
from zq.core.access import Caller

SUB = b"subscriber"


def subscribed() -> Harness:
    h = make()
    h.s.on_query(Caller(SUB), 1, "events", {})
    h.s.flush()
    return h


def submitted_events(h: Harness) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for rid, msg in h.s.flush().messages
            if rid == SUB and isinstance(msg, m.Events)
            for e in msg.events if e["kind"] == "submitted"}


def test_submitted_events_name_the_parents() -> None:
    h = subscribed()
    h.submit("a", "b")
    h.submit("c", inputs=["a"], after=["b"])
    h.submit("d", after=["a"])
    ev = submitted_events(h)
    assert "parents" not in ev["a"] and "parents_total" not in ev["a"]
    assert (ev["c"]["parents"], ev["c"]["parents_total"]) == (["b", "a"], 2)
    assert (ev["d"]["parents"], ev["d"]["parents_total"]) == (["a"], 1)


def test_a_chord_callback_lists_its_first_hundred_parents_and_counts_all() -> None:
    h = subscribed()
    members = [f"m{i}" for i in range(250)]
    h.s.on_submit(C, [(tid, "job", b"args", {}) for tid in members])
    h.submit("cb", inputs=members)
    cb = submitted_events(h)["cb"]
    assert cb["parents"] == members[:100] and cb["parents_total"] == 250


def test_tasks_rows_carry_the_parent_ids() -> None:
    h = make()
    h.submit("a")
    h.submit("b", inputs=["a"])
    rows = {r["id"]: r for r in queries.list_tasks(h.s)}
    assert "parent_ids" not in rows["a"]
    assert (rows["b"]["parent_ids"], rows["b"]["parents_total"]) == (["a"], 1)
