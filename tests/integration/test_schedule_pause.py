"""Schedules paused, resumed and run now against a real master (SQLite) and worker
(issue 15): a paused schedule runs nothing while another ticks (the witness), across a
kill -9 of the master; run now runs it once, ticks unchanged; resumed, it ticks again
from after the resume. Runs are counted on the worker's side (each logs its task id)."""

from __future__ import annotations

import json
import time

import zq
from tests.integration.harness import wait_until
from tests.integration.test_cli_inspect import zq_cli
from tests.integration.test_scheduling import ran, tick_of

APP = "tests.apps.e2e_tasks"
LOG_ID = "tests.apps.e2e_tasks:log_own_id"


def test_pause_resume_and_run_now(cluster, tmp_path):
    log, witness = tmp_path / "ticks.txt", tmp_path / "witness.txt"
    store = str(tmp_path / "zq.db")
    cluster.start_master(store)
    cluster.start_worker(APP, name="w1", pool="thread")
    with zq.Client(cluster.endpoint) as client:
        client.schedule("job", LOG_ID, str(log), every=0.5)
        client.schedule("witness", LOG_ID, str(witness), every=0.5)
        wait_until(lambda: len(ran(log)) >= 2, 20, "the schedule to run twice")

    paused = zq_cli(cluster.endpoint, "schedule", "pause", "job")
    assert paused.returncode == 0 and paused.stdout.strip() == "job: paused", paused.stderr
    with zq.Client(cluster.endpoint) as client:
        view = {s["name"]: s for s in client.schedules()}["job"]
        assert view["paused"] is True and view["next_run"] is None
        last_tick = view["last_tick"]

        def fired_before_pause_done() -> bool:
            rows = client.tasks(name=LOG_ID, limit=1000)
            return all(r["state"] == "succeeded" for r in rows if r["id"].startswith("job@"))
        wait_until(fired_before_pause_done, 20, "the ticks fired before the pause to run")
    before = set(ran(log))

    def witness_ticks(n: int) -> None:
        seen = set(ran(witness))
        wait_until(lambda: len(set(ran(witness)) - seen) >= n, 20,
                   f"the witness schedule to run {n} more times")

    witness_ticks(3)
    assert set(ran(log)) == before  # paused: nothing ran meanwhile
    cluster.master.kill()  # kill -9: the pause lives in the store
    cluster.start_master(store)
    listed = zq_cli(cluster.endpoint, "schedule", "list")
    assert "paused" in listed.stdout, listed.stdout
    witness_ticks(3)
    assert set(ran(log)) == before

    run = zq_cli(cluster.endpoint, "schedule", "run", "job", "--json")
    assert run.returncode == 0, run.stderr
    now_id = json.loads(run.stdout)["id"]
    assert now_id.startswith("job@now-")
    with zq.Client(cluster.endpoint) as client:
        client.future(now_id).result(timeout=20)
        assert set(ran(log)) - before == {now_id}
        view = {s["name"]: s for s in client.schedules()}["job"]
        assert view["paused"] is True and view["last_tick"] == last_tick  # ticks unmoved

        resumed_at = time.time()
        view = client.resume_schedule("job")
        assert view["paused"] is False and view["next_run"] > resumed_at
        wait_until(lambda: len(set(ran(log)) - before - {now_id}) >= 2, 20,
                   "the resumed schedule to tick twice")
    ticks = sorted(tick_of(tid) for tid in set(ran(log)) - before - {now_id})
    # no burst of the ticks missed while paused: every new tick is after the resume
    assert ticks[0] > resumed_at, (ticks, resumed_at)


def test_bad_requests_are_refused_and_the_master_keeps_serving(cluster):
    cluster.start_master()
    with zq.Client(cluster.endpoint) as client:
        for kind in ("schedule_pause", "schedule_resume", "schedule_run"):
            for args, message in (({"name": 7}, "must be a non-empty string"),
                                  ({"name": "nope"}, "no schedule named 'nope'"),
                                  ({}, "needs the argument 'name'")):
                try:
                    client.query(kind, **args)
                    raise AssertionError(f"{kind} {args} must be refused")
                except zq.Rejected as e:
                    assert message in str(e)
        assert client.status()["master_id"]
    missing = zq_cli(cluster.endpoint, "schedule", "pause", "nope")
    assert missing.returncode != 0 and "no schedule named 'nope'" in missing.stderr
