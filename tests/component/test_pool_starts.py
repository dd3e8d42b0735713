"""Each pool says which tasks began running (Report.started, for the worker's STARTED
notices, protocol 1.4): a task waiting behind another is not reported until it runs, a
running one is reported once, and a task's start is seen without anything else waking
the loop (the pool's next_deadline polls while a start may be unseen). Gate files say
what runs; no sleeps."""

from __future__ import annotations

import select
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from zq.core import serde
from zq.pools import Pool, make_pool
from zq.testing.processes import wait_until

APPS = ["tests.apps.futures_tasks"]


def gated(task_id: str, started: Path, gate: Path) -> tuple:
    args = serde.encode_call((str(started), str(gate), task_id), {})
    return (task_id, 1, "tests.apps.futures_tasks:gated", args, None, None)


class Loop:
    """The worker loop's side of a pool: poll its fds until its next deadline, collect."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.started: list[str] = []
        self.results: dict[str, Any] = {}
        self._poll = select.poll()
        self._fds: set[int] = set()

    def pump(self, until: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            now = time.monotonic()
            if now > deadline:
                raise AssertionError(f"timed out waiting for {what}; started {self.started}, "
                                     f"results {sorted(self.results)}")
            fds = set(self.pool.fds())
            for fd in self._fds - fds:
                self._poll.unregister(fd)
            for fd in fds - self._fds:
                self._poll.register(fd, select.POLLIN)
            self._fds = fds
            nd = self.pool.next_deadline(now)
            # No cap: a start must be seen because next_deadline asks to look again,
            # not because this loop happens to look often.
            wait = min(deadline, nd if nd is not None else deadline) - now
            events = self._poll.poll(max(0.0, wait) * 1000)
            if not events and nd is None:
                raise AssertionError(f"{what}: the pool neither woke the loop nor asked it "
                                     "to look again")
            report = self.pool.collect(time.monotonic(), {fd for fd, _ in events})
            if report is None:
                continue
            self.started += report.started
            for e in report.results:
                self.results[e[0]] = serde.decode_value(e[3])


@pytest.fixture(params=["thread", "process", "async"])
def loop(request: pytest.FixtureRequest) -> Iterator[Loop]:
    pool = make_pool(request.param, APPS, 1)
    pool.start()
    yield Loop(pool)
    pool.close(kill=True)


def test_a_task_is_reported_started_when_it_runs_not_while_it_waits(loop: Loop,
                                                                    tmp_path: Path) -> None:
    s1, g1, s2, g2 = (tmp_path / n for n in ("s1", "g1", "s2", "g2"))
    loop.pool.submit([gated("a", s1, g1), gated("b", s2, g2)])  # one slot: b waits behind a
    loop.pump(lambda: "a" in loop.started, "a to be reported started")
    # started counts from when the pool begins the task: the async pool then hands a
    # plain function to a thread, which touches s1 a moment later
    wait_until(s1.exists, 20, "a to touch s1")
    assert loop.started == ["a"] and not s2.exists()  # b waits: not reported
    g1.touch()
    loop.pump(lambda: "b" in loop.started and "a" in loop.results, "b's start, a's result")
    wait_until(s2.exists, 20, "b to touch s2")
    assert loop.results == {"a": "a"}
    assert loop.started == ["a", "b"]  # each once, in the order they ran
    g2.touch()
    loop.pump(lambda: "b" in loop.results, "b's result")
    assert loop.started == ["a", "b"]
