"""The master reads its key folders again on SIGHUP: a key added is admitted without a
restart; a key removed has its sessions closed (a client is then refused, a worker is
dropped and its task runs elsewhere); a folder that no longer reads keeps the old keys."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import zq
from tests.apps import e2e_tasks as t
from tests.integration.harness import ROOT, wait_until
from zq.security import add_key, load_keys_folder

APP = "tests.apps.e2e_tasks"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    done = subprocess.run([sys.executable, "-m", "zq", "keys", "init", str(tmp_path / "keys")],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return tmp_path / "keys"


@pytest.fixture
def keyed(cluster, folder):
    cluster.client_keys = load_keys_folder(str(folder), "admin")  # the harness's own queries
    cluster.start_master("memory", "--keys", str(folder))
    return cluster


def host_with(folder: Path, tmp_path: Path, role: str, name: str) -> Path:
    """A peer host's copy of the folder: master.key and that one secret key."""
    copy = tmp_path / f"host-{name}"
    (copy / "private" / f"{role}s").mkdir(parents=True)
    shutil.copy(folder / "master.key", copy)
    shutil.copy(folder / "private" / f"{role}s" / f"{name}.key_secret",
                copy / "private" / f"{role}s")
    return copy


def hangup(cluster, what: str) -> None:
    seen = cluster.master.output().count("SIGHUP: keys read again")
    cluster.master.signal(signal.SIGHUP)
    wait_until(lambda: cluster.master.output().count("SIGHUP: keys read again") > seen, 10,
               f"the master to read its keys again ({what})")


def test_a_key_added_is_admitted_after_sighup(keyed, folder, tmp_path):
    add_key(folder, "client", "ci")
    host = host_with(folder, tmp_path, "client", "ci")
    with zq.Client(keyed.endpoint, keys=host) as early:
        with pytest.raises(zq.AccessRefused):
            early.status()  # not admitted yet: the master read its keys at start
    hangup(keyed, "a client key added")
    assert "SIGHUP: client key" in keyed.master.output()
    with zq.Client(keyed.endpoint, keys=host) as client:
        assert client.status()["workers"] == []
    assert keyed.master.alive()


def test_a_removed_client_key_has_its_session_closed(keyed, folder):
    with zq.Client(keyed.endpoint, keys=folder) as client:
        assert client.status()["workers"] == []  # connected and served
        (folder / "clients" / "client.key").unlink()
        hangup(keyed, "the client key removed")
        assert "client key" in keyed.master.output() and "removed" in keyed.master.output()
        # Its next message (a heartbeat will do) closes the session; it reconnects, refused:
        # submit() raises if that came first, else the future does.
        with pytest.raises(zq.AccessRefused, match="refused this client's key"):
            client.submit(t.add, 1, 1).result(timeout=20)
    wait_until(lambda: "closed the session of peer" in keyed.master.output(), 10,
               "the master to log the closed session")


def test_a_removed_worker_key_drops_the_worker_and_its_task_runs_elsewhere(keyed, folder,
                                                                          tmp_path):
    keyed.start_worker(APP, name="w1", pool="thread", concurrency=1,
                       extra=("--keys", str(folder), "--prefetch", "0"))
    log, gate = tmp_path / "runs", tmp_path / "gate"
    with zq.Client(keyed.endpoint, keys=folder) as client:
        slow = client.submit(t.log_run, str(log), "slow", gate=str(gate))  # held on w1
        wait_until(lambda: client.get(slow.id)["state"] == "running", 10, "the task to start")
        first = client.get(slow.id)["attempt"]
        add_key(folder, "worker", "w2")
        (folder / "workers" / "worker.key").unlink()
        hangup(keyed, "w1's key removed, w2's added")
        w1 = keyed.procs[-1]
        wait_until(lambda: "w1" not in keyed.workers(), 10, "the master to drop w1")
        wait_until(lambda: "refused this worker's key" in w1.output(), 20,
                   "w1 to be told its key is refused")
        gate.touch()
        keyed.start_worker(APP, name="w2", pool="thread", concurrency=1,
                           extra=("--keys", str(host_with(folder, tmp_path, "worker", "w2"))))
        assert slow.result(timeout=30) == "slow"
        assert client.get(slow.id)["attempt"] > first
    ran_by = [int(line.split()[1]) for line in log.read_text().splitlines()]
    assert ran_by[0] == w1.pid and ran_by[-1] == keyed.procs[-1].pid  # ran again, on w2
    assert "worker w1" in keyed.master.output() and "dropped" in keyed.master.output()


def test_a_folder_that_no_longer_reads_keeps_the_old_keys(keyed, folder):
    (folder / "admins" / "also.key").write_bytes((folder / "clients" / "client.key").read_bytes())
    keyed.master.signal(signal.SIGHUP)
    wait_until(lambda: "SIGHUP: the keys were not changed" in keyed.master.output(), 10,
               "the master to refuse the broken folder")
    assert "a key has one role" in keyed.master.output()
    with zq.Client(keyed.endpoint, keys=folder) as client:
        assert client.status()["workers"] == []
