"""What a refused peer is told, with real processes on 127.0.0.1: keys on one side only,
an unknown key, a wrong master key. A client fails its futures and calls with
zq.AccessRefused (a CLI command exits with one line); a worker logs it and keeps trying.
Before, each of them waited in silence."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import zq
from tests.apps import e2e_tasks as t
from tests.integration.harness import ROOT, wait_until
from zq.security import create_keys, load_peer_keys

APP = "tests.apps.e2e_tasks"


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    for name in ("master", "worker", "client", "stranger", "other-master"):
        create_keys(tmp_path / "keys" / name, name)
    return tmp_path / "keys"


def key_files(keys: Path, who: str, master: str = "master") -> dict[str, str]:
    return {"secret_key": str(keys / who / f"{who}.key_secret"),
            "master_key": str(keys / master / f"{master}.key")}


def master_flags(keys: Path) -> tuple[str, ...]:
    return ("--secret-key", str(keys / "master" / "master.key_secret"),
            "--worker-keys", str(keys / "worker"), "--client-keys", str(keys / "client"))


@pytest.fixture
def keyed(cluster, keys):
    cluster.client_keys = load_peer_keys(**key_files(keys, "client"))
    cluster.start_master("memory", *master_flags(keys))
    return cluster


def refused(endpoint: str, config: zq.ClientConfig, match: str) -> None:
    """A client with this config is refused: its future and its queries say why."""
    with zq.Client(endpoint, config=config) as client:
        # The refusal may come before the first submit (which then raises it) or after
        # (its future does): either way the caller is told why.
        with pytest.raises(zq.AccessRefused, match=match):
            client.submit(t.add, 1, 2).result(timeout=20)
        with pytest.raises(zq.AccessRefused, match=match):
            client.status()
        with pytest.raises(zq.AccessRefused, match=match):
            client.submit(t.add, 3, 4)


def test_a_keyed_client_is_told_the_master_uses_no_keys(cluster, keys):
    cluster.start_master("memory")
    refused(cluster.endpoint, zq.ClientConfig(**key_files(keys, "client")), "does not use keys")


def test_a_client_without_keys_is_told_the_master_requires_them(keyed):
    refused(keyed.endpoint, zq.ClientConfig(secret_key=None, master_key=None), "requires keys")


def test_an_unknown_key_is_named(keyed, keys):
    stranger = load_peer_keys(**key_files(keys, "stranger"))
    assert stranger is not None
    # Most often the client reads the master's 400; now and then the master's hang-up
    # overtakes it and only failed handshakes are seen: both name the key.
    refused(keyed.endpoint, zq.ClientConfig(**key_files(keys, "stranger")),
            re.escape(stranger.public.decode()))
    wait_until(lambda: f"unknown key {stranger.public.decode()}" in keyed.master.output(), 10,
               "the master to log the unknown key")


def test_a_wrong_master_key_is_called_that(keyed, keys):
    config = zq.ClientConfig(**key_files(keys, "client", master="other-master"))
    refused(keyed.endpoint, config, "probably not that master's public key")
    with zq.Client(keyed.endpoint, config=zq.ClientConfig(**key_files(keys, "client"))) as ok:
        assert ok.status()["workers"] == []  # the master serves the right key on


@pytest.mark.parametrize("command", [["status"], ["submit", f"{APP}:add", "1", "2"],
                                     ["submit", f"{APP}:add", "1", "2", "--wait"]],
                         ids=["status", "submit", "submit-wait"])
def test_a_cli_command_refused_says_so_in_one_line(keyed, command):
    done = subprocess.run([sys.executable, "-m", "zq", *command, "--connect", keyed.endpoint],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "requires keys" in done.stderr


def test_a_refused_worker_logs_it_and_keeps_trying(keyed, keys):
    worker = keyed.start_worker(APP, name="stranger", pool="thread", wait=False,
                                extra=("--secret-key", key_files(keys, "stranger")["secret_key"],
                                       "--master-key", key_files(keys, "stranger")["master_key"]))
    wait_until(lambda: "refused this worker's key" in worker.output(), 20,
               "the worker to log that its key was refused")
    first = worker.output().count("connecting to")
    wait_until(lambda: worker.output().count("connecting to") > first, 20,
               "the worker to try again on a fresh socket")
    assert worker.alive()
    assert keyed.workers() == set()
