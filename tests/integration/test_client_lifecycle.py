"""The client's lifecycle against a real master and worker (issue 10): what a script
submitted before it exited still runs; waits on a streaming task last until the task
ends, however many chunks come first."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import pytest

import zq
from tests.apps import lifecycle_tasks as lt
from tests.integration.harness import ROOT, Cluster, free_port, wait_until

APP = "tests.apps.lifecycle_tasks"
RUNS = 3  # runs of each script: a race lost now and then must show up

# Submits `count` tasks that each append a line to PATH.<i>, prints their ids and ends
# the way MODE says, without waiting for any result.
SCRIPT = '''
import sys
import zq
from tests.apps import lifecycle_tasks as lt

mode, endpoint, path, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if mode == "plain":  # submit and fall off the end: no close(), no flush()
    client = zq.Client(endpoint)
    for i in range(count):
        print(client.submit(lt.mark, f"{path}.{i}").id)
elif mode == "executor-nowait":
    executor = zq.Executor(endpoint)
    for i in range(count):
        print(executor.submit(lt.mark, f"{path}.{i}").id)
    executor.shutdown(wait=False)
elif mode == "client-with":
    with zq.Client(endpoint) as client:
        for i in range(count):
            print(client.submit(lt.mark, f"{path}.{i}").id)
elif mode == "executor-with":
    with zq.Executor(endpoint) as executor:
        for i in range(count):
            print(executor.submit(lt.mark, f"{path}.{i}").id)
'''
MODES = ("plain", "executor-nowait", "client-with", "executor-with")


@pytest.fixture
def worker(cluster: Cluster) -> Cluster:
    cluster.start_master()
    cluster.start_worker(APP, name="w1", pool="thread", concurrency=2)
    return cluster


def start_script(tmp_path: Path, mode: str, endpoint: str, path: Path, count: int = 1,
                 env: dict[str, str] | None = None) -> subprocess.Popen:
    script = tmp_path / "submit_and_exit.py"
    if not script.exists():
        script.write_text(SCRIPT)
    return subprocess.Popen(
        [sys.executable, str(script), mode, endpoint, str(path), str(count)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("ZQ_")},
             "PYTHONPATH": str(ROOT), **(env or {})})


def finish(proc: subprocess.Popen) -> tuple[str, str]:
    """The script's output once it has ended (bounded: a hang fails the test)."""
    try:
        return proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- finding 1: what was submitted before exit is not lost ------------------------------


def test_a_script_that_submits_and_exits_gets_its_task_run_every_time(
        worker: Cluster, tmp_path: Path) -> None:
    runs = {(mode, i): tmp_path / f"{mode}-{i}" for mode in MODES for i in range(RUNS)}
    procs = {key: start_script(tmp_path, key[0], worker.endpoint, path)
             for key, path in runs.items()}
    outputs = {key: finish(p) for key, p in procs.items()}
    for key, (_, err) in outputs.items():
        assert procs[key].returncode == 0, (key, err)
        assert "did not accept" not in err, (key, err)
    # Every script has ended; each task still runs (the master has it durably).
    wait_until(lambda: all(Path(f"{path}.0").exists() for path in runs.values()), 30,
               "every submitted task to run")
    ran = {key for key, path in runs.items() if Path(f"{path}.0").exists()}
    assert ran == set(runs)


def test_with_no_master_a_script_exits_at_its_bound_naming_what_was_not_accepted(
        tmp_path: Path) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    for mode in ("plain", "executor-nowait"):
        proc = start_script(tmp_path, mode, endpoint, tmp_path / mode, count=2,
                            env={"ZQ_EXIT_TIMEOUT": "1"})
        out, err = finish(proc)
        ids = out.split()
        assert proc.returncode == 0 and len(ids) == 2, (mode, out, err)
        lines = [ln for ln in err.splitlines() if "did not accept" in ln]
        assert len(lines) == 1, (mode, err)
        assert f"the master at {endpoint} did not accept 2 task(s) within 1 s of exit" in lines[0]
        for tid in ids:
            assert f"{tid} ({APP}:mark)" in lines[0]


# --- finding 2: result() waits through chunks ---------------------------------------------


def outcome_of(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "returned", call()
    except BaseException as e:  # noqa: BLE001 - the test compares what came out
        return "raised", e


N_CHUNKS = 20


def test_result_and_exception_wait_for_the_end_of_a_streaming_task(
        worker: Cluster, tmp_path: Path) -> None:
    """result() and exception() with a generous timeout, waiting while the task streams
    N chunks (one per gate opened by the test), return only once the task has ended."""
    gates = {"ok": tmp_path / "ok", "fail": tmp_path / "fail"}
    for g in gates.values():
        g.mkdir()
    outcomes: dict[str, tuple[str, Any]] = {}
    with zq.Client(worker.endpoint) as client:
        ok = client.submit(lt.gated_stream, str(gates["ok"]), N_CHUNKS)
        bad = client.submit(lt.gated_stream, str(gates["fail"]), N_CHUNKS, fail=True)
        waiters = [
            threading.Thread(target=lambda: outcomes.update(ok=outcome_of(
                lambda: ok.result(timeout=120)))),
            threading.Thread(target=lambda: outcomes.update(bad=outcome_of(
                lambda: bad.exception(timeout=120)))),
        ]
        for t in waiters:
            t.start()
        streams = {"ok": ok.stream(timeout=30), "fail": bad.stream(timeout=30)}
        for k in range(N_CHUNKS):  # one chunk at a time, each seen before the next
            for name, stream in streams.items():
                (gates[name] / str(k)).touch()
                assert next(stream) == k
        assert outcomes == {}  # both still waiting, N chunks later
        for g in gates.values():
            (g / "done").touch()
        for t in waiters:
            t.join(60)
            assert not t.is_alive()
    assert outcomes["ok"] == ("returned", "finished")
    kind, exc = outcomes["bad"]
    assert kind == "returned" and isinstance(exc, ValueError), outcomes["bad"]
    assert str(exc) == "failed after the stream"


def test_submit_wait_prints_no_note_per_chunk(worker: Cluster, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`zq submit gen --wait` (in process, with the periodic note far away) while the task
    streams: the only output is the result, no "still waiting" line per chunk."""
    from typer.testing import CliRunner

    from zq import cli
    monkeypatch.setattr(cli, "NOTE_EVERY", 3600.0)
    gates = tmp_path / "gates"
    gates.mkdir()
    done: dict[str, Any] = {}
    args = ["submit", f"{APP}:gated_stream", str(gates), str(N_CHUNKS), "--wait",
            "--connect", worker.endpoint]
    runner = threading.Thread(target=lambda: done.update(r=CliRunner().invoke(cli.app, args)))
    runner.start()
    try:
        with zq.Client(worker.endpoint) as client:
            rows = wait_until(lambda: client.tasks(name=f"{APP}:gated_stream"), 30,
                              "the task to be submitted")
            watched = client.future(rows[0]["id"])
            client.get(watched.id)  # answered after the WATCH: chunks now reach us too
            stream = watched.stream(timeout=30)
            for k in range(N_CHUNKS):
                (gates / str(k)).touch()
                assert next(stream) == k
    finally:
        (gates / "done").touch()
        runner.join(60)
    assert not runner.is_alive()
    result = done["r"]
    assert result.exit_code == 0, result.output
    assert "still waiting" not in result.output
    assert result.output.splitlines() == ['"finished"']
