"""Fault 17: the wall clock steps an hour forward or back (NTP, a VM restored, a
hand-set clock) while the master runs. Each rule uses the clock it must (DESIGN §5,
STYLE "Names"): liveness, retry backoff and rate limits measure durations, on the
monotonic clock, which never jumps; eta, cron schedules and result ttl are dates a
user set, on the wall clock. So a jump neither drops a live worker, nor takes a task
from the worker running it, nor expires results en masse, nor stalls a retry or a
rate-limited task for an hour, nor fires a cron tick twice.

The first half drives the core (zq.core.master_core) through `advance(now, wall)`; the
second runs a real Master in this process with a wall clock the test controls, real
workers and a real client."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

import zq
from tests.apps import e2e_tasks as t
from tests.faults.checks import check_tasks, runs
from tests.integration.harness import Cluster, wait_until
from tests.unit.test_master_core import ERR, OK, W1, W2, Harness
from zq.config import MasterConfig
from zq.core.messages import State
from zq.master import Master

HOUR = 3600.0
JUMPS = [HOUR, -HOUR]
APP = "tests.apps.e2e_tasks"


def jump(h: Harness, seconds: float) -> None:
    """Only the wall clock moves (a step), then one turn: tick, dispatch."""
    h.wall += seconds
    h.s.advance(h.now, h.wall)
    h.tick()
    h.dispatch()


def settle(h: Harness, seconds: float, step: float = 0.25, *workers: bytes) -> None:
    """Both clocks move on by `seconds` in turns of `step`; the workers heartbeat."""
    for _ in range(round(seconds / step)):
        h.later(step)
        for w in workers:
            h.heartbeat(w)
        h.tick()
        h.dispatch()


# --- the core -------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", JUMPS)
def test_liveness_does_not_move_with_the_wall_clock(seconds):
    """A jump is no sign of death: the worker and its lease stay; only a silence as long
    as the liveness window on the monotonic clock drops it."""
    h = Harness(heartbeat_interval=1.0, liveness=3)
    h.hello(W1)
    h.hello(W2, credit=0)
    h.submit("t1")
    h.dispatch()
    h.out()
    jump(h, seconds)
    settle(h, 2.0)  # silent, but for less than the window
    assert set(h.s.workers) == {W1, W2}
    assert h.state("t1") is State.RUNNING and h.s.lease == {"t1": W1}
    settle(h, 1.25)  # now past it
    assert W1 not in h.s.workers and h.state("t1") is State.QUEUED


@pytest.mark.parametrize("seconds", JUMPS)
def test_results_are_not_expired_en_masse(seconds):
    """Results kept for the default day survive a jump either way. A result's ttl is a
    date on the wall clock (like an eta): one of ten minutes is past after +1 h."""
    h = Harness()
    h.hello(W1, credit=20)
    h.submit("short", result_ttl=600.0)
    h.submit(*[f"d{i}" for i in range(10)])
    h.dispatch()
    h.results(W1, ("short", 1, OK), *[(f"d{i}", 1, OK) for i in range(10)])
    jump(h, seconds)
    assert all(f"d{i}" in h.s.tasks for i in range(10))
    assert ("short" in h.s.tasks) is (seconds < 0)


@pytest.mark.parametrize("seconds", JUMPS)
def test_an_eta_is_a_date_on_the_wall_clock(seconds):
    """A task for ten minutes from now starts at once after +1 h, and still waits its
    ten minutes of wall time after -1 h."""
    h = Harness()
    h.hello(W1)
    h.submit("later", eta=h.wall + 600)
    h.dispatch()
    jump(h, seconds)
    assert h.state("later") is (State.RUNNING if seconds > 0 else State.PENDING)


@pytest.mark.parametrize("seconds", JUMPS)
def test_a_retry_waits_its_backoff_not_the_jump(seconds):
    """A failed task waits its backoff (about 1 s) and runs again, whatever the wall
    clock did meanwhile: a step back must not hold it for an hour."""
    h = Harness(heartbeat_interval=1.0)
    h.hello(W1)
    h.submit("flaky", retries=1, retry_backoff=1.0)
    h.dispatch()
    h.results(W1, ("flaky", 1, ERR))
    assert h.state("flaky") is State.RETRYING
    jump(h, seconds)
    settle(h, 1.5, 0.25, W1)
    assert h.state("flaky") is State.RUNNING and h.attempt("flaky") == 2


@pytest.mark.parametrize("seconds", JUMPS)
def test_a_rate_limit_counts_seconds_not_the_jump(seconds):
    """At 2 tasks a second, a step back must not stop the name for an hour, nor a step
    forward let a burst through."""
    h = Harness(heartbeat_interval=1.0)
    h.hello(W1, credit=100)
    h.submit(*[f"r{i}" for i in range(20)], rate_limit="2/s")
    h.dispatch()
    h.out()
    settle(h, 1.0, 0.1, W1)
    started = sum(h.s.tasks[f"r{i}"].state is State.RUNNING for i in range(20))
    jump(h, seconds)
    settle(h, 2.0, 0.1, W1)
    after = sum(h.s.tasks[f"r{i}"].state is State.RUNNING for i in range(20))
    assert 3 <= after - started <= 5, (started, after)  # two seconds at 2/s (+ a token)


def test_a_cron_tick_never_fires_twice_after_a_step_back():
    """A schedule every minute fires once per tick. The clock steps back an hour: the
    ticks of that hour already fired do not fire again, and the schedule goes on from
    the first tick after the last one it fired."""
    h = Harness()
    h.s.add_schedule({"name": "every", "task": "app:job", "every": 60.0})
    h.s.add_schedule({"name": "cron", "task": "app:job", "cron": "* * * * *"})
    settle(h, 300, 5.0)  # five minutes: five ticks each
    fired = sorted(h.s.tasks)
    assert len(fired) == 10 and len({tid.split("@")[0] for tid in fired}) == 2
    jump(h, -HOUR)
    settle(h, HOUR + 180, 30.0)  # an hour to catch up, then three more minutes
    ticks = sorted(h.s.tasks)
    assert len(ticks) == len(set(ticks)) == 16, ticks  # three new ticks each
    assert set(fired) <= set(ticks)
    for name in ("every", "cron"):
        assert len([tid for tid in ticks if tid.startswith(name + "@")]) == 8


def test_after_a_step_forward_a_schedule_fires_once_not_once_per_missed_tick():
    h = Harness()
    h.s.add_schedule({"name": "every", "task": "app:job", "every": 60.0})
    settle(h, 120, 5.0)
    assert len(h.s.tasks) == 2
    jump(h, HOUR)
    assert len(h.s.tasks) == 3  # the latest missed tick only
    settle(h, 60, 5.0)
    assert len(h.s.tasks) == 4


# --- a real master on a clock the test sets ----------------------------------------------


class SteppedClock:
    """time.time() plus an offset the test changes: a wall clock that jumps."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def master_with_clock(tmp_path: Path) -> Iterator[tuple[Cluster, SteppedClock]]:
    """A Master thread in this process (SQLite store) on a clock the test steps, and a
    Cluster to start real workers against it."""
    clock = SteppedClock()
    cluster = Cluster(tmp_path, heartbeat=0.25, liveness=4)
    config = MasterConfig(bind=cluster.endpoint, store=str(tmp_path / "zq.db"),
                          heartbeat_interval=cluster.heartbeat,
                          heartbeat_liveness=cluster.liveness)
    master = Master(config, wall=clock)
    thread = threading.Thread(target=master.run, name="master", daemon=True)
    thread.start()
    try:
        assert master.ready.wait(10), "the master did not start"
        yield cluster, clock
        assert thread.is_alive(), "the master's loop ended"
    finally:
        master.stop()
        thread.join(10)
        cluster.close()


@pytest.mark.parametrize("seconds", JUMPS)
def test_a_running_cluster_rides_out_a_jump(master_with_clock, tmp_path, seconds):
    """Tasks running, waiting to retry, rate limited, and due in a minute; a schedule
    firing every second. The master's wall clock steps an hour: no worker is dropped,
    nothing running is given to another worker, the retry and the rate-limited tasks
    finish within seconds, the eta obeys the new date, no tick of the schedule runs twice,
    and every task has one result."""
    cluster, clock = master_with_clock
    log, gate = tmp_path / "runs", tmp_path / "gate"
    for name in ("w1", "w2"):
        cluster.start_worker(APP, name=name, pool="thread", concurrency=4)
    with zq.Client(cluster.endpoint) as client:
        client.schedule("beat", t.log_run, str(log), "beat", every=1.0)
        running = [client.submit(t.log_run, str(log), f"run{i}", gate=str(gate))
                   for i in range(2)]
        later = client.options(delay=60.0).submit(t.log_run, str(log), "later")
        wait_until(lambda: runs(log)["run0"] == runs(log)["run1"] == 1, 20,
                   "the gated tasks to start")
        wait_until(lambda: runs(log)["beat"] >= 2, 20, "the schedule to fire")
        holders = {f.id: client.get(f.id)["worker"] for f in running}
        flaky = client.options(retries=1, retry_backoff=2.0).submit(
            t.flaky, str(tmp_path / "flaky"), 1)
        limited = [client.options(rate_limit="2/s").submit(t.log_run, str(log), f"lim{i}")
                   for i in range(6)]
        wait_until(lambda: client.get(flaky.id)["state"] == "retrying", 20,
                   "the flaky task to wait for its retry")
        assert runs(log)["lim5"] == 0  # still held back by the rate limit
        clock.offset += seconds  # the step
        assert flaky.result(timeout=20) == 2
        assert [f.result(timeout=20) for f in limited] == [f"lim{i}" for i in range(6)]
        if seconds > 0:
            assert later.result(timeout=20) == "later"
        else:
            assert client.get(later.id)["state"] == "pending"
            later.cancel()
        beats = runs(log)["beat"]
        if seconds > 0:  # after a step back, the next tick is an hour of wall time away
            wait_until(lambda: runs(log)["beat"] >= beats + 2, 20, "the schedule to go on")
        gate.touch()
        assert [f.result(timeout=20) for f in running] == ["run0", "run1"]
        assert {f.id: client.get(f.id)["worker"] for f in running} == holders
        assert cluster.workers() == {"w1", "w2"}
        client.unschedule("beat")
        ticks = [row["id"] for row in client.tasks(limit=1000) if row["id"].startswith("beat@")]
        tags = {f.id: f"run{i}" for i, f in enumerate(running)}
        tags.update({f.id: f"lim{i}" for i, f in enumerate(limited)})
        assert [client.future(tid).result(timeout=10) for tid in ticks] == ["beat"] * len(ticks)
        assert runs(log)["beat"] == len(ticks)
        accepted = [*tags, flaky.id, later.id, *ticks]
        assert check_tasks(client, accepted, runs(log), tags) == 0
    assert len(ticks) == len(set(ticks))
