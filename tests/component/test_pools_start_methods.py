"""The process pool's children start by the child entry point's import path
(zq.pools.child._child_main): with a fork server (the default, which preloads that
module) and with spawn (a fresh interpreter that must import it by name). Each runs a
task, reports a crash as a lost attempt and is replaced."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator

import pytest

from tests.component.test_pools import Driver, task, value
from zq.core.messages import Outcome
from zq.pools import ProcessPool
from zq.pools.child import _child_main

APP = "tests.apps.worker_tasks"
METHODS = [m for m in ("forkserver", "spawn") if m in multiprocessing.get_all_start_methods()]


@pytest.fixture(params=METHODS)
def drv(request: pytest.FixtureRequest) -> Iterator[Driver]:
    pool = ProcessPool((APP,), 1, start_method=request.param)
    pool.start()
    yield Driver(pool)
    pool.close(kill=True)


def test_the_child_entry_point_is_importable_by_name() -> None:
    assert (_child_main.__module__, _child_main.__qualname__) == ("zq.pools.child",
                                                                  "_child_main")


def test_children_run_tasks_and_are_replaced_after_a_crash(drv: Driver) -> None:
    assert value(drv.run(task("a", "add", 2, 3))[0]) == 5
    first = value(drv.run(task("p", "pid"))[0])
    assert first != os.getpid()  # it ran in a child
    # the child dies under a task: a lost attempt (CANCELLED), and a new child serves
    assert drv.run(task("k", "kill_self"), timeout=20)[0][2] == Outcome.CANCELLED
    assert value(drv.run(task("b", "add", 4, 5), timeout=20)[0]) == 9
    assert value(drv.run(task("q", "pid"))[0]) not in (first, os.getpid())
