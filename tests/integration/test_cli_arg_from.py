"""`zq submit --arg-from ID` / `--kwarg-from NAME=ID` (issue 17) as real processes: a
previous task's result passed as an argument, held in the master until that task
succeeded; the results of --arg-from come first, in the order given, then ARGS."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.integration.harness import ROOT, Cluster

APP = "tests.apps.workflow_tasks"


def zq_submit(cluster: Cluster, task: str, *args: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ZQ_")}
    return subprocess.run(
        [sys.executable, "-m", "zq", "submit", f"{APP}:{task}", *args,
         "--connect", cluster.endpoint],
        capture_output=True, text=True, timeout=60, cwd=ROOT,  # a bound against a hang only
        env={**base, "PYTHONPATH": str(ROOT), "ZQ_TIMEOUT": "10s"})


def submitted(cluster: Cluster, task: str, *args: str) -> str:
    done = zq_submit(cluster, task, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def waited(cluster: Cluster, task: str, *args: str) -> object:
    done = zq_submit(cluster, task, *args, "--wait", "--wait-timeout", "30s")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def running(cluster: Cluster) -> Cluster:
    cluster.start_master()
    cluster.start_worker(APP, name="w1", pool="thread", concurrency=2)
    cluster.wait_workers({"w1"})
    return cluster


def test_arg_from_passes_results_first_in_order_then_args(running: Cluster):
    # slow(seconds, value) holds its task a moment, so the next one is submitted while
    # its input has not run yet: the master holds it, it does not read a missing result.
    a = submitted(running, "slow", "0.5", "[1, 2]")
    b = submitted(running, "add", "[3]", "[4]")
    assert waited(running, "add", "--arg-from", a, "--arg-from", b) == [1, 2, 3, 4]
    assert waited(running, "add", "--arg-from", b, "--arg-from", a) == [3, 4, 1, 2]
    assert waited(running, "add", "--arg-from", a, "[9]") == [1, 2, 9]


def test_kwarg_from_names_the_argument(running: Cluster):
    values = submitted(running, "slow", "0", "[1, 2, 3]")
    start = submitted(running, "add", "10", "5")
    assert waited(running, "total", "--kwarg-from", f"values={values}",
                  "--kwarg-from", f"start={start}") == 21
    # --kwarg-from wins over the same name in --kwargs
    assert waited(running, "total", "--arg-from", values, "--kwargs", '{"start": 100}',
                  "--kwarg-from", f"start={start}") == 21


def test_a_failed_input_fails_the_task_with_dependency_failed(running: Cluster):
    failing = submitted(running, "fail", "step one")
    done = zq_submit(running, "add", "--arg-from", failing, "1", "--wait",
                     "--wait-timeout", "30s")
    assert done.returncode == 1, done.stdout
    assert "task failed: DependencyFailed" in done.stderr
    assert f"input task {failing}" in done.stderr and "ValueError: step one" in done.stderr


def test_an_unknown_id_is_rejected_and_a_malformed_pair_refused(running: Cluster):
    done = zq_submit(running, "add", "--arg-from", "no-such-task", "1")
    assert done.returncode == 2
    assert "the master rejected the task" in done.stderr
    assert "unknown task ids: no-such-task" in done.stderr
    bad = zq_submit(running, "total", "--kwarg-from", "no-equals-sign")
    assert bad.returncode == 2 and "is not NAME=TASK_ID" in bad.stderr


def test_zq_tasks_shows_what_each_task_waits_for(running: Cluster):
    a = submitted(running, "add", "1", "2")
    b = submitted(running, "add", "--arg-from", a, "--after", a, "10")
    c = submitted(running, "add", "--arg-from", b, "--arg-from", a)
    base = {k: v for k, v in os.environ.items() if not k.startswith("ZQ_")}
    listed = subprocess.run(
        [sys.executable, "-m", "zq", "tasks", "--connect", running.endpoint],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**base, "PYTHONPATH": str(ROOT)})
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[-1] == "parents"  # the last column: greppable, awk-able
    last = {line.split()[0]: line.split()[-1] for line in lines[1:]}
    assert last[b] == a and last[c] == f"{b},{a}"
