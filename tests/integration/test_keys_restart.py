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
