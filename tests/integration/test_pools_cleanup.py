"""Everything a worker starts dies with it, however it dies (issue 10 #8): after kill -9
of the worker process alone (as the OOM killer does: one process, not its group) no
process of its session is left, in each pool; nor after a forced stop while a task
runs. The harness starts each worker in a session of its own, so what the worker
started, the fork server, the pool children and multiprocessing's resource tracker,
is found by session even after it has been orphaned."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

import zq
from tests.apps import pools_tasks as t
from tests.integration.harness import Cluster, Proc, wait_until
from tests.integration.procs import alive_in_session, session_of

APP = "tests.apps.pools_tasks"
GONE_WITHIN = 15.0  # seconds; the processes usually go within milliseconds


def start_busy_worker(cluster: Cluster, client: zq.Client, pool: str, task: object,
                      pid_file: Path) -> tuple[Proc, int]:
    """A worker of `pool` running `task` (which writes its pid to pid_file): returns the
    worker and the pid that runs the task (a pool child, or the worker itself)."""
    worker = cluster.start_worker(APP, name=f"w-{pool}", pool=pool, concurrency=2)
    assert session_of(worker.pid) == worker.pid  # its own session: everything it starts
    client.submit(task, str(pid_file), 120)
    runner = int(wait_until(lambda: pid_file.exists() and pid_file.read_text(), 20,
                            "the task to start"))
    return worker, runner


def assert_nothing_left(session: int) -> None:
    def gone() -> bool:
        return not alive_in_session(session)
    try:
        wait_until(gone, GONE_WITHIN, f"every process of session {session} to exit")
    except AssertionError:
        left = "\n".join(map(str, alive_in_session(session)))
        raise AssertionError(f"still running in the dead worker's session:\n{left}") from None


CASES = [
    ("process", t.pid_then_sleep),  # a child sleeping: it can see its pipe close
    ("process", t.pid_then_hold_the_gil),  # a child stuck in C code: it cannot
    ("thread", t.pid_then_sleep),
    ("async", t.pid_then_sleep),
    ("async", t.async_pid_then_sleep),
]


@pytest.mark.parametrize("pool, task", CASES, ids=[f"{p}-{f.__name__}" for p, f in CASES])
def test_kill_9_of_the_worker_leaves_no_process_behind(cluster, tmp_path, pool, task):
    cluster.start_master()
    with zq.Client(cluster.endpoint) as client:
        worker, runner = start_busy_worker(cluster, client, pool, task, tmp_path / "pid")
        started = alive_in_session(worker.pid)
        if pool == "process":
            assert runner != worker.pid
            assert len(started) >= 3, started  # worker, fork server, child (and tracker)
        os.kill(worker.pid, signal.SIGKILL)  # the worker alone, not its group
        worker.wait(10)
        assert_nothing_left(worker.pid)


@pytest.mark.parametrize("pool, task", CASES, ids=[f"{p}-{f.__name__}" for p, f in CASES])
def test_a_forced_stop_ends_the_worker_and_everything_it_started(cluster, tmp_path, pool,
                                                                  task):
    """SIGTERM twice stops at once: running tasks are killed (process pool) or left to
    the process's end (threads cannot be stopped), and the process exits."""
    cluster.start_master()
    with zq.Client(cluster.endpoint) as client:
        worker, _ = start_busy_worker(cluster, client, pool, task, tmp_path / "pid")
        worker.signal(signal.SIGTERM)
        wait_until(lambda: "stopping:" in worker.output(), 10, "the worker to start stopping")
        worker.signal(signal.SIGTERM)
        worker.wait(GONE_WITHIN)  # not after the task's 120 s
        assert_nothing_left(worker.pid)


@pytest.mark.parametrize("pool", ["process", "thread", "async"])
def test_a_graceful_stop_leaves_nothing_running(cluster, tmp_path, pool):
    cluster.start_master()
    with zq.Client(cluster.endpoint) as client:
        worker = cluster.start_worker(APP, name=f"w-{pool}", pool=pool, concurrency=2)
        assert client.submit(t.pid_then_sleep, str(tmp_path / "pid"), 0).result(timeout=30)
        worker.signal(signal.SIGTERM)
        assert worker.wait(GONE_WITHIN) == 0
        assert_nothing_left(worker.pid)
