"""The master's log as an operator reads it after failures (issue 14), from real
processes: a task that dies leaves an ERROR line with its id, name, attempt and why; a
worker killed while running a task leaves a WARNING naming the worker and that task."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

import zq
from tests.integration.harness import Cluster, wait_until

APP = "tests.apps.e2e_tasks"


def master_line(cluster: Cluster, *parts: str) -> str:
    """The first line of the master's log holding every one of parts (waits for it)."""
    assert cluster.master is not None
    master = cluster.master

    def found() -> str | None:
        return next((ln for ln in master.output().splitlines()
                     if all(p in ln for p in parts)), None)
    return wait_until(found, 20, f"a master log line with {parts}")


def test_a_dead_task_leaves_an_error_line_with_its_id_name_attempt_and_why(cluster: Cluster):
    cluster.start_master()
    cluster.start_worker(APP, name="w1", pool="thread", concurrency=1)
    name = f"{APP}:fail"
    with zq.Client(cluster.endpoint) as client:
        fut = client.options(retries=1, retry_backoff=0.01).submit(name, "ValueError",
                                                                   "always broken")
        with pytest.raises(ValueError):
            fut.result(timeout=20)
    line = master_line(cluster, fut.id, "dead after")
    assert " ERROR " in line, line
    assert f"task {fut.id} {name} dead after attempt 2: ValueError: always broken" in line


def test_a_killed_worker_is_named_with_the_task_it_held(cluster: Cluster, tmp_path: Path):
    cluster.start_master()
    worker = cluster.start_worker(APP, name="doomed", pool="process", concurrency=1)
    started = tmp_path / "started"
    with zq.Client(cluster.endpoint) as client:
        fut = client.submit(f"{APP}:touch_then_sleep", str(started), 60)
        wait_until(started.exists, 20, "the task to start")
        worker.signal(signal.SIGKILL)
        line = master_line(cluster, "worker doomed", "gone holding")
    assert " WARNING " in line, line
    assert f"run again 1: {fut.id}" in line
