"""Issue 10, finding 3, end to end: a task submitted by name only (client.submit with a
string, `zq submit`, a periodic schedule) runs with the queue and retries its @zq.task
declares, because the worker announced them in HELLO. The worker serves only the
declared queue, and the task fails its first two attempts: without the declared options
it would wait in the default queue forever, or fail at once.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import zq
from tests.integration.harness import ROOT, Cluster, wait_until

APP = "tests.apps.catalogue_tasks"
NAME = f"{APP}:third_time"


@pytest.fixture
def cat_worker(cluster: Cluster) -> Cluster:
    cluster.start_master("memory")
    cluster.start_worker(APP, name="cat", pool="thread", concurrency=2,
                         extra=("--queues", "cat"))
    return cluster


def zq_cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zq", *args, "--connect", cluster.endpoint],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_client_submit_by_name_gets_the_declared_queue_and_retries(cat_worker: Cluster,
                                                                     tmp_path: Path) -> None:
    with zq.Client(cat_worker.endpoint) as client:
        f = client.submit(NAME, str(tmp_path))
        assert f.result(timeout=20) == 3
        row = client.get(f.id)
        assert (row["queue"], row["retries"], row["attempt"]) == ("cat", 2, 3)


def test_zq_submit_sends_only_the_options_given(cat_worker: Cluster, tmp_path: Path) -> None:
    out = zq_cli(cat_worker, "submit", NAME, str(tmp_path), "--wait", "--wait-timeout", "20")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3"
    # an option given on the command line wins over the declared one
    out = zq_cli(cat_worker, "submit", NAME, str(tmp_path), "--retries", "0", "--wait",
                 "--wait-timeout", "20")
    assert out.returncode == 1 and "attempt 1 fails on purpose" in out.stderr
    status = zq_cli(cat_worker, "status")
    assert status.returncode == 0, status.stderr
    assert any(line.startswith(f"{NAME}  queue=cat retries=2 ")  # its row in the table
               for line in status.stdout.splitlines()), status.stdout


def test_a_schedule_by_name_runs_with_the_declared_options(cat_worker: Cluster,
                                                          tmp_path: Path) -> None:
    with zq.Client(cat_worker.endpoint) as client:
        client.schedule("cat-every-second", NAME, str(tmp_path), every=1.0)
        try:
            wait_until(lambda: list(tmp_path.glob("done-*")), 20, "a scheduled run to succeed")
        finally:
            client.unschedule("cat-every-second")
        done = wait_until(lambda: [r for r in client.tasks(name=NAME)
                                   if r["state"] == "succeeded"], 10, "its record")
        assert (done[0]["queue"], done[0]["retries"], done[0]["attempt"]) == ("cat", 2, 3)
