"""zq top's screen as a pure function of what the master answered (issue 14)."""

from __future__ import annotations

from rich.console import Console

from zq.top import Snapshot, rate, render


def text_of(renderable) -> str:
    console = Console(width=160, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def rows(screen: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("│")[1:-1]] for line in screen.splitlines()
            if line.startswith("│")]


STATUS = {
    "master_id": "m-1",
    "workers": [{"name": "w-a", "host": "h1", "pid": 11, "pool": "thread", "queues": ["io"],
                 "running": 2, "concurrency": 4, "last_seen": 0.2}],
    "queues": {"io": 7, "cpu": 0},
    "counts": {"queued": 7, "running": 2, "succeeded": 30, "failed": 1},
    "throughput": 3.0,
}
RUNNING = [
    {"id": "t-new", "name": "app:short", "queue": "io", "worker": "w-a", "attempt": 1,
     "updated": 995.0, "progress": None},
    {"id": "t-old", "name": "app:long", "queue": "io", "worker": "w-a", "attempt": 2,
     "updated": 880.0, "progress": [3, 10]},
]


def test_render_shows_workers_queues_and_longest_running_first():
    screen = text_of(render(Snapshot(STATUS, RUNNING, 1000.0), 12.5, "tcp://x:1"))
    assert "w-a" in screen and "2/4" in screen and "12.5 tasks/s now" in screen
    # queues: waiting (status), running (the running tasks), workers serving it
    assert ["io", "7", "2", "1"] in rows(screen)
    assert ["cpu", "0", "0", "0"] in rows(screen)
    # the task running for 2 minutes comes before the one running for 5 seconds
    assert screen.index("t-old") < screen.index("t-new")
    assert "2m00s" in screen and "5.0s" in screen and "3/10" in screen


def test_rate_counts_finished_tasks_between_snapshots():
    a = Snapshot({"counts": {"succeeded": 10, "failed": 2}}, [], 100.0)
    b = Snapshot({"counts": {"succeeded": 40, "failed": 2, "dead": 2}}, [], 102.0)
    assert rate(None, a) is None
    assert rate(a, b) == 16.0
    assert rate(b, b) is None  # no time between them: no rate


def test_render_lists_the_latest_events_when_subscribed():
    lines = [f"event {i}" for i in range(12)]
    screen = text_of(render(Snapshot(STATUS, [], 1000.0), None, "", lines))
    assert "latest events" in screen and "event 11" in screen and "event 3" not in screen
    assert "latest events" not in text_of(render(Snapshot(STATUS, [], 1000.0), None))
