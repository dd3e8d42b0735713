"""Periodic tasks with real processes: a schedule file, run-time changes, a restart."""

from __future__ import annotations

import zq
from tests.integration.harness import wait_until

APP = "tests.apps.e2e_tasks"


def runs(path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_schedule_file_runtime_changes_and_restart(cluster, tmp_path):
    marker = tmp_path / "runs.txt"
    schedule = tmp_path / "schedule.toml"
    schedule.write_text(f'''
[[schedule]]
name = "heartbeat-job"
task = "tests.apps.e2e_tasks:count_runs"
every = 0.5
args = ["{marker}"]
''')
    store = str(tmp_path / "zq.db")
    cluster.start_master(store, "--schedule", str(schedule))
    cluster.start_worker(APP, name="w1", pool="thread")
    wait_until(lambda: runs(marker) >= 2, 20, "the scheduled task to run twice")

    with zq.Client(cluster.endpoint) as client:
        added = client.schedule("every-minute", "tests.apps.e2e_tasks:noop", cron="* * * * *")
        assert added["next_run"] > 0
        names = {s["name"] for s in client.schedules()}
        assert names == {"heartbeat-job", "every-minute"}
        client.unschedule("heartbeat-job")
        try:
            client.unschedule("heartbeat-job")
            raise AssertionError("removing a missing schedule must fail")
        except zq.Rejected as e:
            assert "no schedule named" in str(e)
        ids = [t["id"] for t in client.tasks(name="tests.apps.e2e_tasks:count_runs", limit=100)]
        assert ids and all(i.startswith("heartbeat-job@") for i in ids)
        assert len(ids) == len(set(ids))  # one task per tick

    stopped_at = runs(marker)
    cluster.master.kill()  # kill -9; the schedules live in the store
    cluster.start_master(store)  # no --schedule this time
    with zq.Client(cluster.endpoint) as client:
        assert {s["name"] for s in client.schedules()} == {"every-minute"}
    assert runs(marker) <= stopped_at + 1  # the removed schedule stays removed
