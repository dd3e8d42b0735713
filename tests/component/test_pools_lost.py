"""A pool child that dies under its task loses the attempt; it does not fail the task
(issue 10 #6). The pool reports such a task as outcome 3 (CANCELLED) with no payload,
which the master counts as a lost attempt (docs/PROTOCOL.md §4); a child the pool kills
on purpose for a time limit still reports TaskTimeout."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Iterator

import pytest

from tests.component.test_pools import Driver, error, task, value
from tests.integration.harness import wait_until
from zq.core.messages import Outcome
from zq.pools import ProcessPool

APPS = ("tests.apps.worker_tasks", "tests.apps.pools_tasks")
POOLS_APP = "tests.apps.pools_tasks"


@pytest.fixture
def one_child() -> Iterator[Driver]:
    pool = ProcessPool(APPS, 1)
    pool.start()
    yield Driver(pool)
    pool.close(kill=True)


def pid_in(path: Path) -> int:
    return int(wait_until(lambda: path.exists() and path.read_text(), 10, f"{path.name}"))


def test_a_child_killed_from_outside_loses_its_task_and_the_rest_still_run(
        one_child: Driver, tmp_path: Path) -> None:
    drv = one_child
    (before,) = drv.run(task("p0", "pid"))
    hung = task("hung", f"{POOLS_APP}:hang_first_attempt", str(tmp_path), 30.0)
    behind = [task(f"q{i}", "add", i, 1) for i in range(5)]  # queued in the same child
    drv.pool.submit([hung, *behind])
    child = pid_in(tmp_path / "pid-1")
    assert child == value(before)
    os.kill(child, signal.SIGKILL)  # as the OOM killer would
    (lost, *rest) = drv.wait_for("hung", *(b[0] for b in behind))
    assert (lost[1], lost[2], lost[3]) == (1, Outcome.CANCELLED, b"")
    assert [value(e) for e in rest] == [i + 1 for i in range(5)]
    (after,) = drv.run(task("p1", "pid"))
    assert value(after) != child  # a fresh child took its place


def test_a_time_limit_kill_is_still_a_timeout_not_a_lost_attempt(one_child: Driver) -> None:
    (late,) = one_child.run(task("slow", "sleep", 30, timeout=0.2))
    assert late[2] == Outcome.ERROR and error(late)["type"] == "TaskTimeout"


def test_a_broken_pool_reports_its_unstarted_tasks_lost_not_failed(
        one_child: Driver, tmp_path: Path) -> None:
    drv = one_child
    # every replacement child now fails to import its apps: three in a row break the pool
    drv.pool._apps = ("tests.apps.no_such_module",)  # type: ignore[attr-defined]
    hung = task("hung", f"{POOLS_APP}:hang_first_attempt", str(tmp_path), 30.0)
    queued = [task(f"q{i}", "add", i, 1) for i in range(3)]
    drv.pool.submit([hung])
    os.kill(pid_in(tmp_path / "pid-1"), signal.SIGKILL)
    drv.pool.submit(queued)
    got = drv.wait_for("hung", *(q[0] for q in queued))
    assert drv.pool.broken and "no_such_module" in drv.pool.broken
    assert [(e[2], e[3]) for e in got] == [(Outcome.CANCELLED, b"")] * 4
