"""zq.bulk.retry_many (`zq retry --state`, the dashboard's bulk retry): one `retry_many`
query to a 1.4 master; against an older master, which does not know it, the tasks are
listed and retried one by one as before (issue 12)."""

from __future__ import annotations

from typing import Any

import pytest

from zq.bulk import retry_many
from zq.errors import Rejected


class Master14:
    """A client whose master answers retry_many."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, dict]] = []

    def query(self, kind: str, **args: Any) -> Any:
        self.asked.append((kind, args))
        return {"count": 2, "retried": ["b", "a"], "more": True}


class Master13:
    """A client whose master knows no retry_many: it lists and retries by id."""

    def __init__(self, ids: list[str], refused: tuple[str, ...] = ()) -> None:
        self.ids, self.refused = ids, refused
        self.retried: list[str] = []

    def query(self, kind: str, **args: Any) -> Any:
        raise Rejected(f"unknown query {kind!r}; known: get, purge, retry, status, tasks")

    def tasks(self, state: str, queue: str | None, name: str | None, limit: int) -> list:
        return [{"id": i} for i in self.ids if i not in self.retried][:limit]

    def retry(self, task_id: str) -> dict:
        if task_id in self.refused:
            raise Rejected(f"task {task_id} is queued; only failed, dead or cancelled ...")
        self.retried.append(task_id)
        return {"id": task_id}


def test_a_1_4_master_is_asked_once() -> None:
    client = Master14()
    out = retry_many(client, "dead", "app:f", None, 5)
    assert client.asked == [("retry_many", {"state": "dead", "limit": 5, "name": "app:f"})]
    assert out == {"count": 2, "retried": ["b", "a"], "skipped": [], "more": True}


def test_an_older_master_gets_the_tasks_retried_one_by_one() -> None:
    client = Master13(["c", "b", "a"], refused=("b",))
    out = retry_many(client, "dead", None, "io", 10)
    assert client.retried == ["c", "a"]
    assert out["retried"] == ["c", "a"] and out["count"] == 2 and not out["more"]
    assert [s["id"] for s in out["skipped"]] == ["b"]


def test_another_refusal_is_the_caller_s() -> None:
    class Refusing(Master14):
        def query(self, kind: str, **args: Any) -> Any:
            raise Rejected("query 'retry_many' needs the admin role")
    with pytest.raises(Rejected, match="admin role"):
        retry_many(Refusing(), "dead", None, None, 5)
