"""A real master, real workers and the Python client over TCP on 127.0.0.1."""

from __future__ import annotations

import concurrent.futures as cf
import subprocess
import sys

import pytest

import zq
from tests.apps import e2e_tasks as t
from tests.integration.harness import ROOT, wait_until
from tests.integration.storm import runs

APP = "tests.apps.e2e_tasks"


@pytest.fixture
def one_worker(cluster):
    cluster.start_master()
    cluster.start_worker(APP, name="w1")
    return cluster


def test_submit_map_and_errors(one_worker):
    with zq.Client(one_worker.endpoint) as client:
        assert client.submit(t.add, 2, 3).result(timeout=20) == 5
        assert client.submit("tests.apps.e2e_tasks:add", "a", "b").result(timeout=20) == "ab"
        assert list(client.map(t.add, range(300), range(300))) == [2 * i for i in range(300)]

        with pytest.raises(ValueError, match="boom") as err:
            client.submit(t.fail, "ValueError", "boom").result(timeout=20)
        assert isinstance(err.value.__cause__, zq.errors.RemoteTraceback)
        assert "in fail" in err.value.__cause__.traceback

        with pytest.raises(zq.TaskError) as err2:
            client.submit(t.fail, "CustomError", "nope").result(timeout=20)
        assert err2.value.type_name == "CustomError" and "nope" in err2.value.message


def test_executor_wait_and_as_completed(one_worker):
    with zq.Executor(one_worker.endpoint) as ex:
        assert list(ex.map(t.add, [1, 2], [3, 4])) == [4, 6]
        futures = [ex.submit(t.add, i, 1) for i in range(20)]
        done, not_done = cf.wait(futures, timeout=20)
        assert not not_done
        done = cf.as_completed(futures, timeout=20)
        assert sorted(f.result() for f in done) == list(range(1, 21))


def test_stream_and_attach_from_another_client(one_worker):
    with zq.Client(one_worker.endpoint) as a, zq.Client(one_worker.endpoint) as b:
        f = a.submit(t.countdown, 5)
        assert list(f.stream()) == [5, 4, 3, 2, 1]
        assert f.result(timeout=20) == "liftoff"
        assert b.future(f.id).result(timeout=20) == "liftoff"  # fetched by id elsewhere


def test_unknown_task_fails_alone(one_worker):
    with zq.Client(one_worker.endpoint) as client:
        with pytest.raises(zq.UnknownTask, match="nope"):
            client.submit("tests.apps.e2e_tasks:nope").result(timeout=20)
        with pytest.raises(zq.UnknownTask):
            client.submit("os:system", "true").result(timeout=20)  # not an --app module
        assert client.submit(t.add, 1, 1).result(timeout=20) == 2


def test_unserialisable_arguments_never_leave_the_client(one_worker):
    with zq.Client(one_worker.endpoint) as client:
        with pytest.raises(zq.SerializationError, match="msgpack"):
            client.submit(t.echo, object())
        assert client.submit(t.echo, {"k": [1, 2]}).result(timeout=20) == {"k": [1, 2]}


def test_status_shows_workers_and_counts(one_worker):
    with zq.Client(one_worker.endpoint) as client:
        client.submit(t.add, 1, 2).result(timeout=20)
        st = client.status()
    (w,) = st["workers"]
    assert w["name"] == "w1" and w["pool"] == "process" and w["concurrency"] == 2
    assert {"host", "pid", "running", "last_seen"} <= set(w)
    assert st["counts"]["succeeded"] >= 1


def test_credit_spreads_work_over_workers(cluster, tmp_path):
    cluster.start_master()
    for name in ("w1", "w2"):
        cluster.start_worker(APP, name=name, concurrency=1, extra=("--prefetch", "0"))
    log, gate = tmp_path / "runs", tmp_path / "gate"
    with zq.Client(cluster.endpoint) as client:
        futures = [client.submit(t.log_run, str(log), f"t{i}", 0, str(gate)) for i in range(4)]
        wait_until(lambda: log.exists() and len(log.read_text().splitlines()) == 2,
                   10, "both workers to start one task each")
        wait_until(lambda: client.status()["queues"].get("default") == 2, 10,
                   "the other two to be accepted")
        st = client.status()  # the two running tasks wait for the gate: nothing moves
        assert sorted(w["running"] for w in st["workers"]) == [1, 1]  # one each: the credit
        assert len({line.split()[1] for line in log.read_text().splitlines()}) == 2
        gate.touch()  # the rest waited in the master, not in a worker
        assert [f.result(timeout=20) for f in futures] == ["t0", "t1", "t2", "t3"]


def test_kill9_worker_mid_task_reruns_elsewhere(cluster, tmp_path):
    cluster.start_master()
    victim = cluster.start_worker(APP, name="victim", concurrency=1, extra=("--prefetch", "0"))
    log, gate = tmp_path / "runs", tmp_path / "gate"
    with zq.Client(cluster.endpoint) as client:
        f = client.submit(t.log_run, str(log), "done", gate=str(gate))
        wait_until(lambda: runs(log)["done"] == 1, 20, "the task to start on the victim")
        victim.kill()  # kill -9 the worker and its pool children, the task held running
        gate.touch()
        cluster.start_worker(APP, name="survivor", concurrency=1)
        assert f.result(timeout=30) == "done"
        info = client.get(f.id)
        assert info["state"] == "succeeded" and info["attempt"] == 2
        assert info["worker"] == "survivor" and runs(log)["done"] == 2


def test_worker_comes_back_after_master_restart(cluster):
    cluster.start_master()
    cluster.start_worker(APP, name="w1")
    cluster.master.kill()
    cluster.start_master()  # same port, fresh memory store
    cluster.wait_workers({"w1"}, timeout=30)
    with zq.Client(cluster.endpoint) as client:
        assert client.submit(t.add, 20, 22).result(timeout=20) == 42


def test_cli_submit_wait_status(one_worker):
    env_run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "zq", *args, "--connect", one_worker.endpoint],
        capture_output=True, text=True, timeout=60, cwd=ROOT)
    ok = env_run("submit", "tests.apps.e2e_tasks:add", "2", "3", "--wait")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "5"
    words = env_run("submit", "tests.apps.e2e_tasks:add", "zq", "rocks", "--wait")
    assert words.stdout.strip() == '"zqrocks"'
    bad = env_run("submit", "tests.apps.e2e_tasks:fail", "ValueError", "kaput", "--wait")
    assert bad.returncode == 1 and "ValueError" in bad.stderr and "kaput" in bad.stderr
    tid = env_run("submit", "tests.apps.e2e_tasks:add", "1", "1").stdout.strip()
    assert len(tid) >= 16
    st = env_run("status", "--json")
    assert st.returncode == 0 and '"w1"' in st.stdout
