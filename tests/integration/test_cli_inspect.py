"""The inspection commands of the `zq` command line, run as subprocesses against a real
master and worker: tasks, result, retry, cancel, purge, status; what they say when no
master answers. (`zq local`: tests/integration/test_zq_local.py.)"""

from __future__ import annotations

import concurrent.futures as cf
import json
import subprocess
import sys
from typing import Any

import pytest

import zq
from tests.apps import e2e_tasks as t
from tests.integration.harness import ROOT, free_port, wait_until

APP = "tests.apps.e2e_tasks"
ADD = "tests.apps.e2e_tasks:add"


def zq_cli(endpoint: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zq", *args, "--connect", endpoint],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture
def one_worker(cluster):
    cluster.start_master()
    cluster.start_worker(APP, name="w1")  # process pool: a running task can be stopped
    return cluster


def test_tasks_result_and_status(one_worker):
    endpoint = one_worker.endpoint
    with zq.Client(endpoint) as client:
        adds = [client.submit(t.add, i, 1) for i in range(3)]
        assert [f.result(timeout=20) for f in adds] == [1, 2, 3]
        bad = client.submit(t.fail, "ValueError", "boom")
        with pytest.raises(ValueError):
            bad.result(timeout=20)

        out = zq_cli(endpoint, "tasks", "--state", "succeeded", "--json")
        assert out.returncode == 0, out.stderr
        rows = json.loads(out.stdout)
        assert {r["id"] for r in rows} == {f.id for f in adds}
        assert {r["state"] for r in rows} == {"succeeded"}
        assert {r["name"] for r in rows} == {ADD}

        out = zq_cli(endpoint, "tasks", "--name", ADD, "--limit", "2")
        assert out.returncode == 0, out.stderr
        header, *lines = out.stdout.splitlines()  # a table: its header, then one row a task
        assert header.split()[:2] == ["id", "state"]
        assert [ln.split()[:2] for ln in lines] == [[adds[2].id, "succeeded"],
                                                   [adds[1].id, "succeeded"]]  # newest first

        out = zq_cli(endpoint, "result", adds[1].id)
        assert (out.returncode, out.stdout) == (0, "2\n"), out.stderr

        slow = client.submit(t.sleep_then, 1.0, {"k": [1, 2]})
        out = zq_cli(endpoint, "result", slow.id, "--wait")  # still running when asked
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == {"k": [1, 2]}

        out = zq_cli(endpoint, "result", bad.id)
        assert out.returncode == 1
        assert out.stdout.strip() == f"{bad.id} is failed: ValueError: boom"
        out = zq_cli(endpoint, "result", bad.id, "--json")
        assert out.returncode == 1 and json.loads(out.stdout)["state"] == "failed"

        out = zq_cli(endpoint, "status", "--json")
        assert out.returncode == 0, out.stderr
        st = json.loads(out.stdout)
        assert [w["name"] for w in st["workers"]] == ["w1"]
        assert st["counts"]["succeeded"] == 4 and st["counts"]["failed"] == 1


def test_retry_cancel_and_purge(one_worker, tmp_path):
    endpoint = one_worker.endpoint
    with zq.Client(endpoint) as client:
        flaky = client.submit(t.flaky, str(tmp_path / "flaky"), 1)  # fails its first run
        with pytest.raises(RuntimeError):
            flaky.result(timeout=20)
        out = zq_cli(endpoint, "retry", flaky.id, "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["id"] == flaky.id
        assert client.future(flaky.id).result(timeout=20) == 2  # it ran again, and passed
        out = zq_cli(endpoint, "retry", flaky.id)  # succeeded: nothing to retry
        assert out.returncode != 0 and "only failed, dead or cancelled" in out.stderr

        out = zq_cli(endpoint, "cancel", "no-such-task")
        assert out.returncode != 0 and "unknown task id no-such-task" in out.stderr

        queued = client.options(queue="nobody").submit(t.add, 1, 1)  # no worker takes it
        client.get(queued.id)  # accepted
        out = zq_cli(endpoint, "cancel", queued.id)
        assert (out.returncode, out.stdout) == (0, f"{queued.id}: cancelled\n"), out.stderr
        assert client.get(queued.id)["state"] == "cancelled"
        with pytest.raises(cf.CancelledError):
            queued.result(timeout=10)

        running = client.submit(t.sleep_then, 30)
        wait_until(lambda: client.get(running.id)["state"] == "running", 10, "it to start")
        out = zq_cli(endpoint, "cancel", running.id)
        assert out.returncode == 0, out.stderr
        # The CLI asks `get` right after the CANCEL; the worker may have stopped the task
        # and reported it cancelled before that answer (a loaded machine, two tests at once)
        assert out.stdout in (f"{running.id}: cancel requested; it is running on worker w1\n",
                              f"{running.id}: cancelled\n"), out.stdout
        with pytest.raises(cf.CancelledError):
            running.result(timeout=10)  # its worker stopped it
        assert client.get(running.id)["state"] == "cancelled"
        out = zq_cli(endpoint, "cancel", flaky.id)
        assert out.returncode == 1 and "already succeeded" in out.stderr

        done = [client.submit(t.add, i, i) for i in range(3)]
        assert [f.result(timeout=20) for f in done] == [0, 2, 4]
        out = zq_cli(endpoint, "purge", "--state", "succeeded", "--older-than", "0s", "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == {"purged": 4}  # the three adds and flaky
        assert client.tasks(state="succeeded") == []
        out = zq_cli(endpoint, "result", done[0].id)
        assert out.returncode != 0
        assert f"unknown task id {done[0].id}" in out.stderr


def test_commands_fail_clearly_when_no_master_answers(tmp_path):
    """Nothing listens on the port: each command ends by itself (bounded), non-zero, and
    says what went wrong. They run side by side: each takes its full reply timeout."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    commands = [["status", "--json"], ["tasks"], ["result", "abc"], ["retry", "abc"],
                ["cancel", "abc"], ["submit", ADD, "1", "2"],
                ["result", "abc", "--wait", "--timeout", "1"]]
    procs = [subprocess.Popen([sys.executable, "-m", "zq", *c, "--connect", endpoint],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=ROOT) for c in commands]
    try:
        outs = [p.communicate(timeout=40) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for c, p, (out, err) in zip(commands, procs, outs):
        assert p.returncode != 0, (c, out, err)
        assert "error:" in err, (c, err)
    for c, (_, err) in zip(commands[:-1], outs):
        assert endpoint in err, (c, err)  # names the address it tried


def test_result_wait_says_what_the_task_is_doing_while_it_waits(one_worker, monkeypatch,
                                                                tmp_path):
    """`zq result ID --wait` (in process, so the note interval can be short) on a task
    that runs until the note is out: a note on stderr says it is running, then the value
    comes. (A task of fixed length could end before a loaded machine's first note.)"""
    import typer
    from typer.testing import CliRunner

    from zq import cli
    monkeypatch.setattr(cli, "NOTE_EVERY", 0.3)
    gate = tmp_path / "gate"
    echo = typer.echo

    def echo_then_open_the_gate(message: object = None, *args: Any, **kwargs: Any) -> None:
        echo(message, *args, **kwargs)
        if "is running" in str(message):
            gate.touch()

    monkeypatch.setattr(typer, "echo", echo_then_open_the_gate)
    with zq.Client(one_worker.endpoint) as client:
        future = client.submit(t.log_run, str(tmp_path / "runs"), "done", gate=str(gate))
        wait_until(lambda: client.get(future.id)["state"] == "running", 10,
                   what="the task to start")
        result = CliRunner().invoke(cli.app, ["result", future.id, "--wait", "--timeout",
                                              "60", "--connect", one_worker.endpoint])
    assert result.exit_code == 0, result.output
    assert f"still waiting: task {future.id} is running" in result.output
    assert result.output.rstrip().endswith('"done"')
