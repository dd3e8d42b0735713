"""Issue 10, crash consistency, with real processes and kill -9: what the master told a
worker or a client before it crashed stays true after a restart on the same store.

- The attempt number is stored with the lease (before the TASK goes out): a rerun after
  a crash never shows a lower attempt than a run that already happened.
- A cancel of a running task is stored before the worker is told: a crash cannot bring
  the cancelled task back, whether its worker died with the master or lived on.

Runs and attempts are counted as the workers saw them (tests/apps/crash_tasks.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import CancelledError

import pytest

import zq
from tests.apps import crash_tasks as ct
from tests.integration.harness import ROOT, wait_until

APP = "tests.apps.crash_tasks"
SOLO = ("--prefetch", "0")  # one task at a time: nothing else is leased meanwhile


def lines(path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def test_a_rerun_after_a_master_crash_never_shows_a_lower_attempt(cluster, tmp_path):
    """kill -9 of the master and of the worker running attempt 1: the restarted master
    reads the lease back (attempt 1, not the 0 stored at the submit), and the rerun on
    another worker is attempt 2."""
    store, log, gate = str(tmp_path / "zq.db"), tmp_path / "runs", tmp_path / "gate"
    cluster.start_master(store)
    with zq.Client(cluster.endpoint) as client:
        # Submitted with no worker: it is stored queued, attempt 0, and leased in a
        # later turn (a lease in the submit's own turn rides along with its save).
        f = client.submit(ct.log_attempt, str(log), "job", str(gate))
        wait_until(lambda: client.status()["queues"].get("default") == 1, 20, "the submit")
        first = cluster.start_worker(APP, name="w1", pool="thread", concurrency=1, extra=SOLO)
        wait_until(lambda: len(lines(log)) == 1, 20, "attempt 1 to start on w1")
        cluster.master.kill()
        first.kill()
        cluster.start_master(store)
        # Restored (and held one liveness window, as a task that was running is).
        assert client.get(f.id)["attempt"] == 1
        gate.touch()
        cluster.start_worker(APP, name="w2", pool="thread", concurrency=1, extra=SOLO)
        assert f.result(timeout=30) == 2
        info = client.get(f.id)
    assert [(tag, int(attempt)) for tag, attempt, _ in lines(log)] == [("job", 1), ("job", 2)]
    assert (info["state"], info["attempt"], info["worker"]) == ("succeeded", 2, "w2")


def _cancel_while_running(cluster, client: zq.Client, log, gate) -> zq.Future:
    """A task running on w1, cancelled with `zq cancel ID` (a process that exits at once,
    so no client is left to send the cancel again after a restart), and the cancel seen
    by the task: so the master sent it, which it does only after the commit."""
    f = client.submit(ct.wait_for_cancel, str(log), "victim", str(gate))
    wait_until(lambda: ["victim", "start", "1"] in lines(log), 20, "the task to start on w1")
    done = subprocess.run([sys.executable, "-m", "zq", "cancel", f.id, "--connect",
                           cluster.endpoint], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "cancel requested; it is running" in done.stdout, done
    wait_until(lambda: ["victim", "cancelled", "1"] in lines(log), 20,
               "the task to see its cancel")
    assert client.get(f.id)["state"] == "running"  # w1 has not reported it yet
    return f


def test_a_cancelled_task_whose_worker_died_with_the_master_never_runs_again(
        cluster, tmp_path):
    store, log, gate = str(tmp_path / "zq.db"), tmp_path / "runs", tmp_path / "gate"
    cluster.start_master(store)
    w1 = cluster.start_worker(APP, name="w1", pool="thread", concurrency=1, extra=SOLO)
    with zq.Client(cluster.endpoint) as client:
        f = _cancel_while_running(cluster, client, log, gate)
        cluster.master.kill()
        w1.kill()
        gate.touch()
        cluster.start_master(store)
        info = client.get(f.id)
        assert info["state"] == "cancelled", info  # not queued to run again
        assert "restarted" in info["error"]["message"]
        with pytest.raises(CancelledError):
            f.result(timeout=30)  # the submitter hears it too
        cluster.start_worker(APP, name="w2", pool="thread", concurrency=1, extra=SOLO)
        # A task submitted now runs on w2: the cancelled one is not waiting before it.
        assert client.submit(ct.log_attempt, str(log), "witness").result(timeout=30) == 1
        assert client.get(f.id)["state"] == "cancelled"
    assert [ln[:2] for ln in lines(log)] == [
        ["victim", "start"], ["victim", "cancelled"], ["witness", "1"]]


def test_a_cancelled_task_whose_worker_lived_on_is_stopped_not_resurrected(cluster, tmp_path):
    """Only the master crashes: w1 re-registers saying it still runs the task; the
    restarted master, which stored the cancel, tells it to stop again and records the
    task cancelled; the task never starts a second time."""
    store, log, gate = str(tmp_path / "zq.db"), tmp_path / "runs", tmp_path / "gate"
    cluster.start_master(store)
    cluster.start_worker(APP, name="w1", pool="thread", concurrency=1, extra=SOLO)
    with zq.Client(cluster.endpoint) as client:
        f = _cancel_while_running(cluster, client, log, gate)
        cluster.master.kill()
        cluster.start_master(store)
        cluster.wait_workers({"w1"})
        assert client.get(f.id)["state"] == "cancelled"
        gate.touch()  # the task returns now; its report comes after its final state
        with pytest.raises(CancelledError):
            f.result(timeout=30)
        assert client.submit(ct.log_attempt, str(log), "witness").result(timeout=30) == 1
        assert client.get(f.id)["state"] == "cancelled"
    assert [ln[:2] for ln in lines(log)] == [
        ["victim", "start"], ["victim", "cancelled"], ["witness", "1"]]
