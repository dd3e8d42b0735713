"""The dashboard's fan-out of the event stream (issue 15): every browser gets every
batch; one that stops reading loses messages past its backlog, counted and told as a gap
when it reads again, and never holds the others back; the chart counts finished tasks
per second; a task's events are kept per task, bounded."""

from __future__ import annotations

import asyncio
import json

import pytest

pytest.importorskip("starlette", reason="the dashboard needs the web extra: pip install 'zq[web]'")

from zq.web import live as lv  # noqa: E402


def event(kind: str, second: float, task: str = "t1", attempt: int = 1) -> dict:
    return {"kind": kind, "time": second, "id": task, "name": "m:f", "queue": "default",
            "attempt": attempt, "worker": "w1"}


def drain(b: lv.Browser) -> list[tuple[str, object]]:
    out = []
    while not b.queue.empty():
        message = b.queue.get_nowait()
        assert message is not None
        name, data = message.split("\n")[:2]
        out.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


def test_a_slow_browser_loses_messages_counted_and_never_holds_the_others() -> None:
    async def run() -> None:
        live = lv.Live()
        fast, slow = live.join(every=True), live.join(every=True)
        total = lv.BROWSER_BACKLOG + 50
        for i in range(total):
            live.publish([event("succeeded", 1000 + i, task=f"t{i}")])
            drain_fast = drain(fast)  # the fast one reads as it goes
            assert [n for n, _ in drain_fast] == ["events"]
        assert slow.queue.qsize() == lv.BROWSER_BACKLOG  # full, never more
        assert slow.dropped == 50
        got = drain(slow)  # it reads again: the next message starts with the gap
        assert len(got) == lv.BROWSER_BACKLOG
        live.publish([event("started", 2000, task="later")])
        after = drain(slow)
        assert after[0] == ("gap", {"dropped": 50})
        assert after[1][0] == "events" and after[1][1][0]["id"] == "later"
        assert slow.dropped == 0
    asyncio.run(run())


def test_the_chart_counts_finished_tasks_per_second() -> None:
    async def run() -> None:
        live = lv.Live()
        live.publish([event("started", 100.1), event("succeeded", 100.2),
                      event("failed", 100.9, "t2"), event("dead", 101.5, "t3"),
                      event("progress", 101.6), {"kind": "gap", "dropped": 7},
                      {"kind": "joined", "time": 101.7, "worker": "w2"}])
        assert live.chart(102.0, seconds=3) == [[99, 0], [100, 2], [101, 1], [102, 0]]
        assert live.dropped == 7
        b = live.join()
        live.tick(102.3)
        (name, data), = drain(b)
        assert name == "tick" and data["changed"] is True
        assert data["series"] == [[99, 0], [100, 2], [101, 1], [102, 0]]
        live.tick(103.1)
        assert drain(b)[0][1]["changed"] is False  # nothing new since
    asyncio.run(run())


def test_attempts_are_kept_per_task_and_bounded() -> None:
    async def run() -> None:
        live = lv.Live()
        live.publish([event("submitted", 1, attempt=0), event("started", 2),
                      event("progress", 3), event("retrying", 4), event("started", 5, attempt=2)])
        assert [(a["kind"], a["attempt"]) for a in live.attempts["t1"]] == [
            ("submitted", 0), ("started", 1), ("retrying", 1), ("started", 2)]
        live.publish([event("started", 6, task=f"x{i}") for i in range(lv.TASKS_REMEMBERED)])
        assert "t1" not in live.attempts and len(live.attempts) == lv.TASKS_REMEMBERED
        live.publish([event("started", 7 + i) for i in range(lv.ATTEMPTS_KEPT + 5)])
        assert len(live.attempts["t1"]) == lv.ATTEMPTS_KEPT
    asyncio.run(run())


def test_closing_ends_every_browser_even_a_full_one() -> None:
    async def run() -> None:
        live = lv.Live()
        full, idle = live.join(), live.join()
        for i in range(lv.BROWSER_BACKLOG):
            full.offer(lv.sse("events", [i]))
        live.close()
        assert idle.queue.get_nowait() is None
        messages = [full.queue.get_nowait() for _ in range(full.queue.qsize())]
        assert messages[-1] is None  # the end, after what it had not read yet
        assert not live.browsers
    asyncio.run(run())


def test_events_go_only_to_the_browsers_that_asked() -> None:
    async def run() -> None:
        live = lv.Live()
        every, mine, ticks_only = live.join(every=True), live.join(task="t2"), live.join()
        live.publish([event("started", 1, "t1"), event("started", 1, "t2"),
                      event("succeeded", 2, "t1")])
        assert [e["id"] for e in drain(every)[0][1]] == ["t1", "t2", "t1"]
        assert drain(mine) == [("events", [event("started", 1, "t2")])]
        assert drain(ticks_only) == []
        live.publish([event("succeeded", 3, "t1")])  # nothing of t2: nothing sent to it
        assert drain(mine) == []
        live.tick(4.0)
        assert [name for name, _ in drain(ticks_only)] == ["tick"]
    asyncio.run(run())
