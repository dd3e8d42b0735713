"""What the thread pool leaves behind when it is closed while a task still runs (threads
cannot be stopped): the thread runs on, but writes nothing to the pool's closed pipe,
whose fd numbers may belong to a new file by then. (That the async pool's threads do not
hold up the process's exit is tested with real workers in
tests/integration/test_pools_cleanup.py.)"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Iterator

import pytest

from tests.component.test_pools import task
from tests.integration.harness import wait_until
from zq.pools import ThreadPool

APPS = ("tests.apps.pools_tasks",)
GATED = "tests.apps.pools_tasks:gate_then_return"


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "gate"
    yield path
    path.touch()  # whatever happened, let the task's thread finish


def zq_task_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "zq-task"}


def test_a_thread_task_ending_after_close_writes_to_no_reused_fd(tmp_path: Path,
                                                                   gate: Path) -> None:
    before = zq_task_threads()
    pool = ThreadPool(APPS, 1)
    pool.start()
    mine = zq_task_threads() - before
    started = tmp_path / "started"
    pool.submit([task("t", GATED, str(started), str(gate), 30.0)])
    wait_until(started.exists, 10, "the task to start")
    (old_r,) = pool.fds()
    pool.close()
    r, w = os.pipe()  # the lowest free numbers: the closed pipe's, on this quiet process
    try:
        if r != old_r:
            pytest.skip("the pool's closed fd number was taken by something else")
        os.set_blocking(r, False)
        gate.touch()
        wait_until(lambda: not any(t.is_alive() for t in mine), 10, "the task's thread to end")
        with pytest.raises(BlockingIOError):
            os.read(r, 1)  # nothing arrived in the new pipe
    finally:
        os.close(r)
        os.close(w)

