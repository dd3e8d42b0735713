"""With keys, a client's futures survive a master restart (issue 9 roles, issue 10): the
master does not keep which key submitted a task across a restart, and a reconnecting
client WATCHes what it still waits for. Reading a task's result is open to every
client key ("read status/tasks/results"); cancelling stays the owner's or an admin's."""

from __future__ import annotations

import zq
from tests.apps import e2e_tasks as t
from tests.integration.harness import wait_until
from tests.integration.test_keys_folder import folder  # noqa: F401 (a fixture)
from zq.security import load_keys_folder

APP = "tests.apps.e2e_tasks"


def test_a_keyed_client_gets_its_results_after_a_master_kill(cluster, folder, tmp_path):  # noqa: F811
    cluster.client_keys = load_keys_folder(str(folder), "client")
    store, log, gate = str(tmp_path / "zq.db"), tmp_path / "runs", tmp_path / "gate"
    cluster.start_master(store, "--keys", str(folder))
    cluster.start_worker(APP, name="w", pool="thread", concurrency=2,
                         extra=("--keys", str(folder)))
    with zq.Client(cluster.endpoint, keys=folder) as client:
        futures = [client.submit(t.log_run, str(log), str(i), 0.0, str(gate))
                   for i in range(4)]
        assert client.flush(10)
        wait_until(lambda: log.exists(), 20, "a task to run")
        cluster.master.kill()
        cluster.start_master(store, "--keys", str(folder))
        gate.touch()
        assert [f.result(timeout=60) for f in futures] == [str(i) for i in range(4)]


def test_a_client_key_still_cancels_its_own_task_after_a_restart(cluster, folder, tmp_path):  # noqa: F811
    """The submitting key is stored with the task, so after kill -9 of the master the
    client that submitted a task may still cancel it, and another client key may not."""
    from tests.integration.test_boundary_roles import host_of
    from tests.integration.test_keys_folder import zq_cli
    assert zq_cli("keys", "add", "client", "other", "--dir", str(folder)).returncode == 0
    cluster.client_keys = load_keys_folder(str(folder), "client")
    store = str(tmp_path / "zq.db")
    cluster.start_master(store, "--keys", str(folder))  # no worker: tasks stay queued
    mine, other = host_of(folder, tmp_path, "client"), host_of(folder, tmp_path, "other")
    with zq.Client(cluster.endpoint, keys=mine) as owner:
        a, b = owner.submit("app:f", 1), owner.submit("app:f", 2)
        assert owner.flush(10)
    cluster.master.kill()
    cluster.start_master(store, "--keys", str(folder))
    with zq.Client(cluster.endpoint, keys=mine) as owner, \
            zq.Client(cluster.endpoint, keys=other) as stranger:
        assert not stranger.future(b.id).cancel()  # refused by the master: it is not theirs
        stranger.status()  # answered after the CANCEL: one peer's messages keep their order
        assert owner.get(b.id)["state"] == "queued"
        assert owner.future(a.id).cancel()
        wait_until(lambda: owner.get(a.id)["state"] == "cancelled", 10, "the owner's cancel")
