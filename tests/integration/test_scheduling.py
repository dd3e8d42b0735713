"""Periodic tasks with real processes: a schedule file, run-time changes, a restart.

Runs are counted on the workers' side: the scheduled task logs its own id (NAME@TICK),
so "once per tick" is checked against what really ran, not against the master's list
(which is keyed by id and would merge a tick fired twice)."""

from __future__ import annotations

from collections import Counter

import zq
from tests.integration.harness import wait_until

APP = "tests.apps.e2e_tasks"
EVERY = 0.5


def ran(path) -> Counter:
    """How many times each task id ran, from a log_own_id file."""
    if not path.exists():
        return Counter()
    return Counter(line.split()[0] for line in path.read_text().splitlines() if line)


def tick_of(task_id: str) -> float:
    return float(task_id.partition("@")[2])


def test_schedule_file_runtime_changes_and_restart(cluster, tmp_path):
    """A schedule from a file fires once per tick, across a kill -9 of the master; one
    added at run time is listed; a removed one stays removed after the restart."""
    log, witness = tmp_path / "ticks.txt", tmp_path / "witness.txt"
    schedule = tmp_path / "schedule.toml"
    schedule.write_text(f'''
[[schedule]]
name = "heartbeat-job"
task = "tests.apps.e2e_tasks:log_own_id"
every = {EVERY}
args = ["{log}"]
''')
    store = str(tmp_path / "zq.db")
    cluster.start_master(store, "--schedule", str(schedule))
    cluster.start_worker(APP, name="w1", pool="thread")
    wait_until(lambda: len(ran(log)) >= 4, 20, "the scheduled task to run four times")

    cluster.master.kill()  # kill -9; the schedules and their last ticks live in the store
    before = set(ran(log))
    cluster.start_master(store)  # no --schedule this time
    wait_until(lambda: len(set(ran(log)) - before) >= 4, 20,
               "four more ticks after the restart")

    with zq.Client(cluster.endpoint) as client:
        added = client.schedule("every-minute", "tests.apps.e2e_tasks:noop", cron="* * * * *")
        assert added["next_run"] > 0
        # A witness: its runs show that the master has been firing schedules.
        client.schedule("witness", "tests.apps.e2e_tasks:log_own_id", str(witness),
                        every=1.0)
        assert {s["name"] for s in client.schedules()} == {
            "heartbeat-job", "every-minute", "witness"}
        client.unschedule("heartbeat-job")
        try:
            client.unschedule("heartbeat-job")
            raise AssertionError("removing a missing schedule must fail")
        except zq.Rejected as e:
            assert "no schedule named" in str(e)

        def all_finished() -> list[str]:
            rows = client.tasks(name="tests.apps.e2e_tasks:log_own_id", limit=1000)
            # The witness runs the same function (and logs to its own file): leave it out.
            rows = [r for r in rows if not r["id"].startswith("witness@")]
            return [r["id"] for r in rows] if all(r["state"] == "succeeded" for r in rows) else []
        listed = wait_until(all_finished, 20, "every fired tick to finish")

    runs = ran(log)
    assert set(runs) == set(listed)  # every task the master fired ran, and nothing else
    assert [tid for tid, n in runs.items() if n != 1] == []  # each exactly once
    assert all(tid.startswith("heartbeat-job@") for tid in runs)
    ticks = sorted(tick_of(tid) for tid in runs)
    gaps = [round((b - a) / EVERY, 6) for a, b in zip(ticks, ticks[1:])]
    assert all(g == int(g) and g >= 1 for g in gaps), gaps  # on the schedule's grid
    # A tick is skipped only while the master is down (or stalled): after downtime a
    # schedule runs once for the latest missed tick. Most ticks follow one another.
    assert gaps.count(1) >= len(gaps) / 2, gaps

    stopped = set(runs)
    cluster.master.kill()
    cluster.start_master(store)
    with zq.Client(cluster.endpoint) as client:
        assert {s["name"] for s in client.schedules()} == {"every-minute", "witness"}
    seen = set(ran(witness))
    wait_until(lambda: len(set(ran(witness)) - seen) >= 2, 20,
               "the witness schedule to fire twice after the restart")
    assert set(ran(log)) == stopped  # meanwhile the removed schedule stayed removed
