"""Task options end to end: retries, time limits, priority, delay, cancel, after=,
rate limits and progress, with a real master and real workers."""

from __future__ import annotations

import concurrent.futures as cf
import time

import pytest

import zq
from tests.apps import e2e_tasks as t
from tests.integration.harness import wait_until

APP = "tests.apps.e2e_tasks"


def lines(path) -> list[list[str]]:
    return [ln.split() for ln in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def serial(cluster):
    """One worker that runs one task at a time and holds nothing extra: order is visible."""
    cluster.start_master()
    cluster.start_worker(APP, name="w1", concurrency=1, extra=("--prefetch", "0"))
    return cluster


def test_retries_then_success_and_dead_after_the_last(serial, tmp_path):
    with zq.Client(serial.endpoint) as client:
        f = client.options(retries=2, retry_backoff=0.05).submit(t.flaky, str(tmp_path / "a"), 2)
        assert f.result(timeout=30) == 3
        assert client.get(f.id)["attempt"] == 3

        g = client.options(retries=1, retry_backoff=0.05).submit(t.flaky, str(tmp_path / "b"), 5)
        with pytest.raises(RuntimeError, match="failure 2 of 5"):
            g.result(timeout=30)
        info = client.get(g.id)
        assert info["state"] == "dead" and info["attempt"] == 2

        # retry_on: an exception outside the list is not retried
        h = client.options(retries=3, retry_on=(KeyError,)).submit(t.fail, "ValueError", "x")
        with pytest.raises(ValueError):
            h.result(timeout=30)
        assert client.get(h.id)["state"] == "failed" and client.get(h.id)["attempt"] == 1

        client.retry(g.id)  # zq retry: a dead task runs again (and fails again here)
        with pytest.raises(RuntimeError):
            client.future(g.id).result(timeout=30)


def test_time_limit_kills_a_hung_task_and_the_worker_goes_on(serial):
    with zq.Client(serial.endpoint) as client:
        f = client.options(timeout=0.5).submit(t.sleep_then, 30, "never")
        with pytest.raises(zq.TaskTimeout):
            f.result(timeout=30)
        assert client.submit(t.add, 1, 2).result(timeout=30) == 3


def test_priority_orders_queued_tasks(serial, tmp_path):
    out, gate = tmp_path / "order", tmp_path / "gate"
    with zq.Client(serial.endpoint) as client:
        blocker = client.submit(t.log_run, str(tmp_path / "blocker"), "blocker", 0, str(gate))
        wait_until(lambda: client.status()["workers"][0]["running"] == 1, 10, "the blocker")
        priorities = [("low1", 0), ("high1", 5), ("low2", 0), ("high2", 5), ("mid", 2)]
        futures = [client.options(priority=p).submit(t.record, str(out), name)
                   for name, p in priorities]
        wait_until(lambda: client.status()["queues"].get("default") == 5, 10,
                   "all five to wait in the master behind the blocker")
        gate.touch()
        cf.wait(futures + [blocker], timeout=30)
    assert [row[0] for row in lines(out)] == ["high1", "high2", "mid", "low1", "low2"]


def test_delay_waits_in_the_master(serial, tmp_path):
    out = tmp_path / "when"
    with zq.Client(serial.endpoint) as client:
        submitted = time.time()
        f = client.options(delay=1.0).submit(t.record, str(out), "late")
        assert client.get(f.id)["state"] == "pending"
        f.result(timeout=30)
    ran_at = float(lines(out)[0][1])
    assert ran_at >= submitted + 0.95


def test_cancel_queued_and_running(serial, tmp_path):
    out = tmp_path / "ran"
    started = tmp_path / "started"
    with zq.Client(serial.endpoint) as client:
        running = client.submit(t.touch_then_sleep, str(started), 30)
        wait_until(started.exists, 20, "the long task to start")
        queued = client.submit(t.record, str(out), "should-not-run")
        assert client.get(queued.id)["state"] == "queued"
        assert queued.cancel() and running.revoke()  # cancel() leaves a running task alone
        for f in (queued, running):
            with pytest.raises(cf.CancelledError):
                f.result(timeout=10)
        wait_until(lambda: client.get(running.id)["state"] == "cancelled", 20,
                   "the running task to be stopped")
        assert client.get(queued.id)["state"] == "cancelled"
        assert client.submit(t.add, 2, 2).result(timeout=20) == 4  # the worker goes on
    assert not out.exists()  # the cancelled queued task never ran


def test_after_chains(serial, tmp_path):
    gate = tmp_path / "gate"
    with zq.Client(serial.endpoint) as client:
        first = client.submit(t.log_run, str(tmp_path / "runs"), "first", gate=str(gate))
        second = client.options(after=[first]).submit(t.add, "then-", "second")
        assert client.get(second.id)["state"] == "pending"  # first is held at its gate
        gate.touch()
        assert second.result(timeout=30) == "then-second"

        broken = client.submit(t.fail, "ValueError", "no")
        never = client.options(after=[broken]).submit(t.add, 1, 1)
        with pytest.raises(cf.CancelledError):
            never.result(timeout=30)
        assert client.get(never.id)["state"] == "cancelled"


def test_one_rate_limit_spreads_starts_over_several_workers(cluster, tmp_path):
    """rate_limit="4/s" over two workers: the k-th start of the name comes at least k/4 s
    after the first (the bucket starts with one token). The other bound, that the limit
    is the only brake, is timed: tests/unit/test_master_core.py checks it on a fake clock."""
    out = tmp_path / "starts"
    cluster.start_master()
    for name in ("w1", "w2"):
        cluster.start_worker(APP, name=name, pool="thread", concurrency=4)
    with zq.Client(cluster.endpoint) as client:
        futures = [client.options(rate_limit="4/s").submit(t.where_record, str(out), i)
                   for i in range(8)]
        assert len({f.result(timeout=30)["pid"] for f in futures}) == 2  # both ran some
    times = sorted(float(row[1]) for row in lines(out))
    assert len(times) == 8
    # 0.2 s allows for one start being delivered later than the next (latency).
    early = [(k, round(x - times[0], 3)) for k, x in enumerate(times) if x - times[0] < k / 4 - 0.2]
    assert early == [], f"(k, seconds after the first start) sooner than 4/s allows: {early}"


def test_progress_and_attempt_are_visible(serial):
    with zq.Client(serial.endpoint) as client:
        f = client.submit(t.with_progress, 3)
        assert f.result(timeout=30) == 3
        assert f.progress == (3, 3)
        assert client.submit(t.attempt_number).result(timeout=30) == 1


def test_a_task_only_reaches_workers_of_its_queue(cluster):
    cluster.start_master()
    cluster.start_worker(APP, name="default-worker", extra=("--queues", "default"))
    cluster.start_worker(APP, name="io-worker", pool="thread", extra=("--queues", "io,other"))
    with zq.Client(cluster.endpoint) as client:
        io = [client.options(queue="io").submit(t.where) for _ in range(6)]
        plain = [client.submit(t.where) for _ in range(6)]
        io_pids = {f.result(timeout=30)["pid"] for f in io}
        plain_pids = {f.result(timeout=30)["pid"] for f in plain}
        assert len(io_pids) == 1  # the thread pool runs in the io worker's own process
        assert not io_pids & plain_pids
        assert {client.get(f.id)["queue"] for f in io} == {"io"}
        # a queue nobody serves: the task waits in the master, counted in its queue
        orphan = client.options(queue="nobody").submit(t.add, 1, 1)
        wait_until(lambda: client.status()["queues"].get("nobody") == 1, 10, "the queue depth")
        assert client.get(orphan.id)["state"] == "queued"


def test_eta_waits_in_the_master(serial, tmp_path):
    import datetime as dt
    out = tmp_path / "when"
    with zq.Client(serial.endpoint) as client:
        at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1)
        f = client.options(eta=at).submit(t.record, str(out), "at")
        assert client.get(f.id)["state"] == "pending"
        f.result(timeout=30)
    assert float(lines(out)[0][1]) >= at.timestamp() - 0.05


def test_async_generator_streams_in_the_async_pool(cluster):
    cluster.start_master()
    cluster.start_worker(APP, name="aio", pool="async")
    with zq.Client(cluster.endpoint) as client:
        f = client.submit(t.async_countdown, 4)
        assert list(f.stream(timeout=30)) == [4, 3, 2, 1]
        f.result(timeout=30)


def test_submit_flags_reach_the_master(serial, tmp_path):
    import subprocess
    import sys

    from tests.integration.harness import ROOT

    def zq_cli(*args, endpoint=serial.endpoint):
        return subprocess.run([sys.executable, "-m", "zq", *args, "--connect", endpoint],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
    first = zq_cli("submit", "tests.apps.e2e_tasks:add", "1", "2").stdout.strip()
    eta = time.time() + 0.5
    flags = ("--after", first, "--eta", str(eta), "--retries", "2", "--retry-backoff", "0.1",
             "--retry-on", "KeyError,ValueError", "--rate-limit", "10/s", "--priority", "3",
             "--timeout", "20", "--key", "k-1")
    second = zq_cli("submit", "tests.apps.e2e_tasks:add", "3", "4", *flags, "--wait")
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "7"
    with zq.Client(serial.endpoint) as client:
        info = [x for x in client.tasks(limit=5)
                if x["name"].endswith(":add") and x["id"] != first][0]
    assert info["priority"] == 3 and info["retries"] == 2 and info["eta"] == pytest.approx(eta)
    assert info["key"] == "k-1"
    bad = zq_cli("submit", "tests.apps.e2e_tasks:add", "--eta", "next tuesday")
    assert bad.returncode != 0 and "ISO 8601" in bad.stderr

    # Every flag, as the SUBMIT options a master receives (a fake master records them).
    from tests.component.fake_master import FakeMaster
    fake = FakeMaster()
    try:
        done = zq_cli("submit", "tests.apps.e2e_tasks:add", "3", "4", *flags,
                      "--delay", "1.5", "--queue", "io", endpoint=fake.endpoint)
        assert done.returncode == 0, done.stderr
        ((_, name, _, options),) = fake.submitted()
    finally:
        fake.stop()
    assert name == "tests.apps.e2e_tasks:add"
    assert options == {"after": [first], "eta": pytest.approx(eta), "retries": 2,
                       "retry_backoff": 0.1, "retry_on": ["KeyError", "ValueError"],
                       "rate_limit": "10/s", "priority": 3, "queue": "io",
                       "timeout": 20.0, "key": "k-1", "delay": 1.5}
