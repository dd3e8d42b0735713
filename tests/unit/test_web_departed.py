"""The dashboard's memory of workers that left or were lost (issue 15): kept for
DEPARTED_SECONDS and DEPARTED_KEPT at most, newest first, forgotten when the same
worker joins again, and never listed beside itself connected."""

from __future__ import annotations

import pytest

pytest.importorskip("starlette", reason="the dashboard needs the web extra: pip install 'zq[web]'")

from zq.web import live as lv  # noqa: E402
from zq.web.data import Data  # noqa: E402


def worker_event(kind: str, when: float, name: str = "w1", pid: int = 10) -> dict:
    return {"kind": kind, "time": when, "worker": name, "host": "h", "pid": pid,
            "queues": ["default"]}


def test_lost_and_left_workers_are_kept_newest_first_and_forgotten_on_join() -> None:
    live = lv.Live()
    live.publish([worker_event("lost", 100.0, "a", 1), worker_event("left", 101.0, "b", 2)])
    shown = live.departed_workers(now=102.0)
    assert [(w["name"], w["status"], w["gone_at"]) for w in shown] == [
        ("b", "left", 101.0), ("a", "lost", 100.0)]
    live.publish([worker_event("joined", 103.0, "a", 1)])  # back on its connection
    assert [w["name"] for w in live.departed_workers(now=104.0)] == ["b"]
    live.publish([worker_event("joined", 105.0, "b", 3)])  # a new process of that name
    assert [w["pid"] for w in live.departed_workers(now=106.0)] == [2]


def test_departed_workers_are_bounded_in_time_and_count() -> None:
    live = lv.Live()
    live.publish([worker_event("lost", 0.0, "old")])
    live.publish([worker_event("lost", float(i), f"w{i}", i)
                  for i in range(1, lv.DEPARTED_KEPT + 6)])
    kept = live.departed_workers(now=10.0)
    assert len(kept) == lv.DEPARTED_KEPT
    assert kept[0]["name"] == f"w{lv.DEPARTED_KEPT + 5}" and "old" not in {
        w["name"] for w in kept}
    later = live.departed_workers(now=lv.DEPARTED_SECONDS + 50.5)  # older than the window
    assert [w["gone_at"] for w in later] == [float(i) for i in range(
        lv.DEPARTED_KEPT + 5, 50, -1)]
    assert live.departed_workers(now=1e9) == []


def test_an_event_without_a_time_is_not_kept() -> None:
    live = lv.Live()
    live.publish([{"kind": "lost", "worker": "w1", "host": "h", "pid": 1, "time": "x"}])
    assert live.departed_workers(now=1.0) == []


class FakeClient:
    def __init__(self, workers: list[dict]) -> None:
        self.rows = workers

    def status(self) -> dict:
        return {"workers": self.rows}

    def tasks(self, **kw: object) -> list[dict]:
        return []


def test_a_departed_worker_connected_again_is_listed_once_connected() -> None:
    data = Data(FakeClient([{"name": "w1", "host": "h", "pid": 10}]))
    departed = [{"name": "w1", "host": "h", "pid": 10, "status": "lost", "gone_at": 1.0},
                {"name": "w1", "host": "h", "pid": 9, "status": "lost", "gone_at": 0.5}]
    rows = data.workers(departed)
    assert [(w["name"], w["pid"], w["status"]) for w in rows] == [
        ("w1", 10, "connected"), ("w1", 9, "lost")]
