"""Master and workers on separate hosts: network namespaces joined by veth pairs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

import zq
from tests.apps import e2e_tasks as t
from tests.integration.harness import ROOT, Cluster, Proc, wait_until
from tests.integration.netns import Hosts, skip_unless_available
from zq.security import create_keys, load_peer_keys

APP = "tests.apps.e2e_tasks"
pytestmark = pytest.mark.netns


WORKER_START = 20.0  # seconds for a worker to start: Cluster.wait_workers' allowance


def wait_logged(cluster: Cluster, proc: Proc, text: str, timeout: float, what: str) -> None:
    """Wait until proc's log holds text. Fails at once if proc exits, and either way with
    every process's log: a run's logs are gone once its temporary directory is."""
    def logged() -> bool:
        if not proc.alive():
            raise AssertionError(f"{what}: it exited with code {proc.popen.returncode}")
        return text in proc.output()
    try:
        wait_until(logged, timeout, what)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{cluster.logs()}") from None


@pytest.fixture
def hosts():
    skip_unless_available("multi-host tests")
    with Hosts(workers=2) as h:
        yield h


@pytest.fixture
def spread(hosts, tmp_path):
    """A master on its own host, a worker on each of two other hosts. Without keys the
    master admits peers from other hosts only with --insecure (test_loopback_rule.py)."""
    c = Cluster(tmp_path, heartbeat=0.2)
    c.endpoint = f"tcp://{hosts.master_addr}:{c.port}"
    try:
        c.start_master("memory", "--insecure", bind=f"tcp://*:{c.port}",
                       prefix=hosts.exec_prefix(hosts.master_ns))
        for k, ns in enumerate(hosts.worker_ns, start=1):
            c.start_worker(APP, name=f"host{k}", concurrency=1, extra=("--prefetch", "0"),
                           connect=f"tcp://{hosts.master_addr_for(k)}:{c.port}",
                           prefix=hosts.exec_prefix(ns))
        yield c
    finally:
        c.close()


def test_tasks_run_on_both_worker_hosts(spread):
    here = os.stat("/proc/self/ns/net").st_ino
    with zq.Client(spread.endpoint) as client:
        futures = [client.submit(t.where_after, 0.3) for _ in range(6)]
        places = [f.result(timeout=30) for f in futures]
    hosts_used = {p["netns"] for p in places}
    assert len(hosts_used) == 2 and here not in hosts_used


def test_cut_off_host_loses_its_work_to_the_other_and_rejoins(spread, hosts):
    with zq.Client(spread.endpoint) as client:
        assert client.submit(t.add, 1, 2).result(timeout=30) == 3
        hosts.set_link(1, up=False)  # host1 can no longer reach the master
        wait_until(lambda: spread.workers() == {"host2"}, 15, "the master to drop host1")
        futures = [client.submit(t.where_after, 0.05) for _ in range(4)]
        assert len({f.result(timeout=30)["netns"] for f in futures}) == 1
        hosts.set_link(1, up=True)
        spread.wait_workers({"host1", "host2"}, timeout=60)  # it reconnects by itself
        assert client.submit(t.add, 2, 2).result(timeout=30) == 4


def test_with_keys_only_the_keyed_host_serves(hosts, tmp_path):
    """Keys across hosts: the master admits the worker host that has a worker key; the
    other host's worker, started without keys, never registers and says why, and all
    work runs on the keyed host."""
    for name in ("master", "worker", "client"):
        create_keys(tmp_path / "keys" / name, name)
    keys = tmp_path / "keys"
    master_key = str(keys / "master" / "master.key")
    c = Cluster(tmp_path, heartbeat=0.2)
    c.endpoint = f"tcp://{hosts.master_addr}:{c.port}"
    c.client_keys = load_peer_keys(str(keys / "client" / "client.key_secret"), master_key)
    try:
        c.start_master("memory", "--secret-key", str(keys / "master" / "master.key_secret"),
                       "--worker-keys", str(keys / "worker"), "--client-keys",
                       str(keys / "client"), bind=f"tcp://*:{c.port}",
                       prefix=hosts.exec_prefix(hosts.master_ns))
        keyed = ("--secret-key", str(keys / "worker" / "worker.key_secret"),
                 "--master-key", master_key)
        for k, ns in enumerate(hosts.worker_ns, start=1):
            c.start_worker(APP, name=f"host{k}", concurrency=1,
                           extra=("--prefetch", "0", *(keyed if k == 1 else ())),
                           connect=f"tcp://{hosts.master_addr_for(k)}:{c.port}",
                           prefix=hosts.exec_prefix(ns), wait=k == 1)
        host2 = c.procs[-1]
        # host2 was not waited for: its start-up (the worker, its pool's fork server and
        # child) gets any worker's allowance, and the refusal's own wait starts once it
        # runs. Refused before the work, host2 has surely tried when the work is checked.
        wait_logged(c, host2, "worker host2 (session", WORKER_START,
                    "host2's worker to start and connect")
        wait_logged(c, host2, "requires keys", 10, "host2's worker to say the master requires keys")
        config = zq.ClientConfig(secret_key=str(keys / "client" / "client.key_secret"),
                                 master_key=master_key)
        with zq.Client(c.endpoint, config=config) as client:
            futures = [client.submit(t.where_after, 0.1) for _ in range(6)]
            places = {f.result(timeout=30)["netns"] for f in futures}
        assert len(places) == 1
        assert c.workers() == {"host1"}
        assert all(p.alive() for p in c.procs)  # host2 still trying, never admitted
    finally:
        c.close()


@pytest.mark.parametrize("to_master", [True, False], ids=["worker-to-master", "master-to-worker"])
def test_one_way_partition_is_detected_and_healed(spread, hosts, to_master):
    """Cut host1's traffic in one direction only. The master stops hearing host1, or
    host1 stops hearing the master: either way the master drops host1 and host2 does
    the work; once healed, host1 comes back by itself and takes work again."""
    with zq.Client(spread.endpoint) as client:
        assert client.submit(t.add, 1, 2).result(timeout=30) == 3
        hosts.drop_one_way(1, to_master=to_master)
        try:
            wait_until(lambda: spread.workers() == {"host2"}, 20, "the master to drop host1")
            futures = [client.submit(t.where_after, 0.05) for _ in range(4)]
            assert len({f.result(timeout=30)["netns"] for f in futures}) == 1
        finally:
            hosts.drop_one_way(1, to_master=to_master, on=False)
        spread.wait_workers({"host1", "host2"}, timeout=60)
        futures = [client.submit(t.where_after, 0.3) for _ in range(6)]
        assert len({f.result(timeout=30)["netns"] for f in futures}) == 2


def test_results_made_while_the_client_cannot_hear_reach_it_after(spread, hosts, tmp_path):
    """The master's packets to the client vanish (its submissions still arrive): the
    tasks run and finish meanwhile; once the way back heals, every future resolves with
    its own value, the master records one result per task, and each task ran once
    (counted in a log the worker hosts write: the hosts share the file system)."""
    log = tmp_path / "runs"

    def master_status() -> dict:
        """Asked from inside the master's host, which the cut does not touch."""
        done = subprocess.run(
            [*hosts.exec_prefix(hosts.master_ns), sys.executable, "-m", "zq", "status",
             "--json", "--connect", f"tcp://127.0.0.1:{spread.port}"],
            capture_output=True, text=True, timeout=30, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        return json.loads(done.stdout) if done.returncode == 0 else {}

    with zq.Client(spread.endpoint) as client:
        first = client.submit(t.add, 0, 0)
        assert first.result(timeout=30) == 0
        hosts.drop_to_test()
        try:
            futures = [client.submit(t.log_distinct_run, str(log), f"t{i}") for i in range(20)]
            wait_until(lambda: master_status().get("counts", {}).get("succeeded") == 21, 30,
                       what="the 20 tasks to finish while the client cannot hear")
            assert not any(f.done() for f in futures)
        finally:
            hosts.drop_to_test(on=False)
        assert [f.result(timeout=60) for f in futures] == [f"t{i}:1" for i in range(20)]
        ids = {row["id"] for row in client.tasks(state="succeeded", limit=100)}
        assert ids == {f.id for f in futures} | {first.id}
    ran = Counter(line.split()[0] for line in log.read_text().splitlines())
    assert ran == Counter({f"t{i}": 1 for i in range(20)})
