"""Secure by default: a master without keys admits only peers on its own host. A worker
on another host (network namespace) and a client from a third are refused, told why, and
logged on the master with their address; with --insecure the same peers are served."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import zq
from tests.apps import e2e_tasks as t
from tests.integration.harness import ROOT, Cluster, wait_until
from tests.integration.netns import Hosts, skip_unless_available

APP = "tests.apps.e2e_tasks"
pytestmark = pytest.mark.netns


@pytest.fixture
def hosts():
    skip_unless_available("these tests")  # probed when needed, never at import
    with Hosts(workers=1) as h:
        yield h


@pytest.fixture
def cluster(hosts, tmp_path):
    c = Cluster(tmp_path, heartbeat=0.2)
    c.endpoint = f"tcp://{hosts.master_addr}:{c.port}"  # the master's host, seen from here
    try:
        yield c
    finally:
        c.close()


def zq_cli(*args: str, prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*(prefix or []), sys.executable, "-m", "zq", *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def status_from_the_master_host(cluster: Cluster, hosts: Hosts) -> dict:
    """`zq status` run on the master's own host, over loopback."""
    done = zq_cli("status", "--json", "--connect", f"tcp://127.0.0.1:{cluster.port}",
                  prefix=hosts.exec_prefix(hosts.master_ns))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def start(cluster: Cluster, hosts: Hosts, *flags: str, env: tuple[str, ...] = ()) -> None:
    prefix = hosts.exec_prefix(hosts.master_ns) + (["env", *env] if env else [])
    cluster.start_master("memory", *flags, bind=f"tcp://*:{cluster.port}", prefix=prefix,
                         wait=False)
    master = cluster.master
    assert master is not None
    wait_until(lambda: "listening on" in master.output() or not master.alive(), 20,
               "the master to listen")
    assert master.alive(), master.output()


def remote_worker(cluster: Cluster, hosts: Hosts, wait: bool) -> object:
    return cluster.start_worker(APP, name="remote", pool="thread", wait=wait,
                                connect=f"tcp://{hosts.master_addr_for(1)}:{cluster.port}",
                                prefix=hosts.exec_prefix(hosts.worker_ns[0]))


def test_without_keys_peers_on_other_hosts_are_refused_and_told(cluster, hosts):
    start(cluster, hosts)
    master = cluster.master
    remote = remote_worker(cluster, hosts, wait=False)
    cluster.start_worker(APP, name="local", pool="thread", wait=False,
                         connect=f"tcp://127.0.0.1:{cluster.port}",
                         prefix=hosts.exec_prefix(hosts.master_ns))
    wait_until(lambda: "refused this worker: without keys it admits only peers on its own "
                       "host" in remote.output(), 20, "the remote worker to say it was refused")
    wait_until(lambda: f"refused a connection from {hosts.worker_addr(1)}:" in master.output(),
               10, "the master to log the refused worker's address")
    assert "--insecure" in remote.output() and "--insecure" in master.output()
    wait_until(lambda: [w["name"] for w in status_from_the_master_host(cluster, hosts)["workers"]]
               == ["local"], 20, "the local worker, and only it, to register")

    with zq.Client(cluster.endpoint) as client:  # from this host: not the master's
        with pytest.raises(zq.AccessRefused, match="only peers on its own host"):
            client.submit(t.add, 1, 2).result(timeout=20)
    wait_until(lambda: f"refused a connection from {hosts.test_addr}:" in master.output(), 10,
               "the master to log the refused client's address")
    done = zq_cli("status", "--connect", cluster.endpoint)
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0, done.stderr  # one clear line
    assert "refused this client" in done.stderr and "--insecure" in done.stderr
    assert remote.alive()  # it keeps trying, it does not give up
    assert status_from_the_master_host(cluster, hosts)["counts"].get("succeeded", 0) == 0


@pytest.mark.parametrize("how", ["flag", "env"])
def test_with_insecure_the_same_peers_are_served(cluster, hosts, how):
    if how == "flag":
        start(cluster, hosts, "--insecure")
    else:
        start(cluster, hosts, env=("ZQ_INSECURE=1",))
    remote_worker(cluster, hosts, wait=True)
    with zq.Client(cluster.endpoint) as client:
        assert client.submit(t.add, 1, 2).result(timeout=20) == 3
        assert client.submit(t.where).result(timeout=20)["netns"] != os.stat(
            "/proc/self/ns/net").st_ino
    assert "refused" not in cluster.master.output()
