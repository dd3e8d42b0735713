"""Keys in two commands, with real processes: `zq keys init`, then `--keys DIR` on the
master, a worker, CLI commands and zq.Client(url, keys=DIR). Each key has one role: a
client key works and reads but may not do admin actions; the admin key in the same
folder does them, from the CLI and from zq.Client alike."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import zq
from tests.apps import e2e_tasks as t
from tests.integration.harness import ROOT
from zq.security import load_keys_folder

APP = "tests.apps.e2e_tasks"


def zq_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zq", *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    done = zq_cli("keys", "init", str(tmp_path / "zq-keys"))
    assert done.returncode == 0, done.stderr
    return tmp_path / "zq-keys"


@pytest.fixture
def keyed(cluster, folder):
    cluster.client_keys = load_keys_folder(str(folder), "client")
    cluster.start_master("memory", "--keys", str(folder))
    cluster.start_worker(APP, name="w1", pool="thread", extra=("--keys", str(folder)))
    return cluster


def client_only(folder: Path, tmp_path: Path) -> Path:
    """What a client host gets: master.key and the client's own secret, nothing else."""
    copy = tmp_path / "client-host"
    (copy / "private" / "clients").mkdir(parents=True)
    shutil.copy(folder / "master.key", copy)
    shutil.copy(folder / "private" / "clients" / "client.key_secret", copy / "private" / "clients")
    return copy


def test_one_folder_keys_every_side(keyed, folder):
    done = zq_cli("submit", f"{APP}:add", "2", "3", "--wait", "--connect", keyed.endpoint,
                  "--keys", str(folder))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "5"
    done = zq_cli("status", "--json", "--connect", keyed.endpoint, env={"ZQ_KEYS": str(folder)})
    assert done.returncode == 0, done.stderr
    with zq.Client(keyed.endpoint, keys=folder) as client:
        assert client.submit(t.add, 1, 1).result(timeout=20) == 2
    assert "keys on: admitting 1 worker, 1 client and 1 admin keys" in keyed.master.output()


def test_a_client_key_may_not_purge_and_the_admin_key_may(keyed, folder, tmp_path):
    host = client_only(folder, tmp_path)
    with zq.Client(keyed.endpoint, keys=host) as client:
        assert client.submit(t.add, 1, 2).result(timeout=20) == 3  # it works and reads
        with pytest.raises(zq.Rejected, match="needs the admin role"):
            client.purge("succeeded", 0)
    done = zq_cli("purge", "--connect", keyed.endpoint, "--keys", str(host))
    assert done.returncode != 0 and "needs the admin role" in done.stderr
    # The whole folder holds an admin key: the CLI and zq.Client use it for admin actions.
    done = zq_cli("purge", "--json", "--connect", keyed.endpoint, "--keys", str(folder))
    assert done.returncode == 0, done.stderr
    with zq.Client(keyed.endpoint, keys=folder) as client:
        assert client.submit(t.add, 2, 2).result(timeout=20) == 4
        assert client.purge("succeeded", 0) == {"purged": 1}


def test_an_admin_key_may_also_act_as_a_client(keyed, folder):
    config = zq.ClientConfig(keys=str(folder), admin=True)
    with zq.Client(keyed.endpoint, config=config) as admin:
        assert admin.submit(t.add, 5, 5).result(timeout=20) == 10
        assert admin.status()["workers"][0]["name"] == "w1"


def test_a_worker_key_cannot_submit(keyed, folder, tmp_path):
    host = tmp_path / "worker-as-client"
    (host / "private" / "clients").mkdir(parents=True)
    shutil.copy(folder / "master.key", host)
    shutil.copy(folder / "private" / "workers" / "worker.key_secret",
                host / "private" / "clients" / "client.key_secret")  # a worker key in disguise
    with zq.Client(keyed.endpoint, keys=host) as client:
        with pytest.raises(zq.Rejected, match="not admitted as a client"):
            client.status()
