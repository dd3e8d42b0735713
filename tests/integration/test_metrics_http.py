"""`zq master --metrics HOST:PORT` scraped over HTTP (issue 14): after a known workload
the counters, histogram counts and gauges hold exactly what ran; the task timing shows
in `get`, `zq tasks` and `zq result`; a scraper that stalls holds neither the master nor
other scrapes."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import zq
from tests.apps import e2e_tasks as t
from tests.integration.harness import ROOT, Cluster, free_port, wait_until

APP = "tests.apps.e2e_tasks"
ADD, FAIL = f"{APP}:add", f"{APP}:fail"
N_OK, N_DEAD, N_FAILED, RETRIES = 20, 3, 1, 2

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def start(cluster: Cluster, tmp_path: Path) -> int:
    port = free_port()
    cluster.start_master(str(tmp_path / "zq.db"), "--metrics", f"127.0.0.1:{port}")
    cluster.start_worker(APP, name="w1", pool="thread", concurrency=2)
    return port


def run_workload(client: zq.Client) -> tuple[list[zq.Future], list[zq.Future], zq.Future]:
    """N_OK successes, N_DEAD tasks that fail every attempt (RETRIES retries each, then
    dead), N_FAILED that fails once with no retries (failed)."""
    ok = [client.submit(t.add, i, 1) for i in range(N_OK)]
    dying = client.options(retries=RETRIES, retry_backoff=0.01)
    dead = [dying.submit(t.fail, "ValueError", f"dead {i}") for i in range(N_DEAD)]
    failed = client.submit(t.fail, "ValueError", "once")
    assert [f.result(timeout=60) for f in ok] == [i + 1 for i in range(N_OK)]
    for f in [*dead, failed]:
        with pytest.raises(ValueError):
            f.result(timeout=60)
    return ok, dead, failed


def test_a_known_workload_scrapes_as_exact_numbers(cluster: Cluster, tmp_path: Path) -> None:
    port = start(cluster, tmp_path)
    before = scrape(port)
    assert value(before, "zq_master_up") == 1
    assert value(before, "zq_tasks_submitted_total", queue="default", task=ADD) == 0
    with zq.Client(cluster.endpoint) as client:
        run_workload(client)
    attempts = N_OK + N_DEAD * (RETRIES + 1) + N_FAILED

    def settled() -> Samples | None:
        s = scrape(port)
        gauges = (value(s, "zq_queue_depth", queue="default"),
                  value(s, "zq_tasks_running", queue="default"),
                  value(s, "zq_workers", queue="default"))
        return s if gauges == (0, 0, 1) else None

    s = wait_until(settled, 15, "the gauges to show an idle queue with one worker")
    d = {"queue": "default"}
    assert value(s, "zq_tasks_submitted_total", **d, task=ADD) == N_OK
    assert value(s, "zq_tasks_submitted_total", **d, task=FAIL) == N_DEAD + N_FAILED
    assert value(s, "zq_tasks_finished_total", **d, task=ADD, state="succeeded") == N_OK
    assert value(s, "zq_tasks_finished_total", **d, task=FAIL, state="dead") == N_DEAD
    assert value(s, "zq_tasks_finished_total", **d, task=FAIL, state="failed") == N_FAILED
    assert value(s, "zq_tasks_finished_total", **d, task=FAIL, state="succeeded") == 0
    assert value(s, "zq_task_retries_total", **d, task=FAIL) == N_DEAD * RETRIES
    assert value(s, "zq_task_retries_total", **d, task=ADD) == 0
    # one runtime per finished task (its last attempt), one queue wait per attempt
    assert value(s, "zq_task_runtime_seconds_count", **d, task=ADD) == N_OK
    assert value(s, "zq_task_runtime_seconds_count", **d, task=FAIL) == N_DEAD + N_FAILED
    assert value(s, "zq_task_runtime_seconds_bucket", **d, task=ADD, le="+Inf") == N_OK
    assert value(s, "zq_task_queue_wait_seconds_count", **d) == attempts
    assert value(s, "zq_task_queue_wait_seconds_bucket", **d, le="+Inf") == attempts
    assert value(s, "zq_task_runtime_seconds_sum", **d, task=ADD) >= 0
    # SQLite commits every turn that changed tasks: each is observed
    assert value(s, "zq_store_commit_seconds_count") >= 1
    assert value(s, "zq_master_up") == 1


def test_task_timing_shows_in_get_zq_tasks_and_zq_result(cluster: Cluster,
                                                         tmp_path: Path) -> None:
    start(cluster, tmp_path)
    with zq.Client(cluster.endpoint) as client:
        ok, dead, _ = run_workload(client)
        info = client.get(ok[0].id)
        assert info["worker"] == "w1"
        assert info["created"] <= info["started"] <= info["finished"]
        assert info["runtime"] == pytest.approx(info["finished"] - info["started"])
        assert info["queue_wait"] >= 0
        assert info["finished"] == info["updated"]
        gone = client.get(dead[0].id)  # the last attempt's timing
        assert gone["state"] == "dead" and gone["attempt"] == RETRIES + 1
        assert gone["started"] <= gone["finished"] and gone["runtime"] >= 0

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "zq", *args, "--connect",
                               cluster.endpoint], capture_output=True, text=True,
                              timeout=60, cwd=ROOT)

    out = cli("tasks", "--name", ADD, "--limit", "1")
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.splitlines()[:2]
    for column in ("worker", "started", "finished", "runtime", "queue wait"):
        assert column in header
    assert " w1 " in row and len(re.findall(r" \d+\.\d{3}s\b", row)) == 2  # runtime, wait

    out = cli("result", dead[0].id)
    assert out.returncode == 1
    assert out.stdout.startswith(f"{dead[0].id} is dead: ValueError")
    assert "started " in out.stderr and "runtime " in out.stderr
    assert "queue wait " in out.stderr and "on worker w1" in out.stderr
    out = cli("result", ok[0].id)
    assert (out.returncode, out.stdout) == (0, "1\n"), out.stderr  # the value alone
    assert "runtime " in out.stderr and "on worker w1" in out.stderr
    out = cli("tasks", "--name", ADD, "--limit", "1", "--json")
    (row_json,) = json.loads(out.stdout)
    assert {"started", "finished", "runtime", "queue_wait"} <= set(row_json)


def test_a_stalled_scraper_holds_neither_the_master_nor_other_scrapes(
        cluster: Cluster, tmp_path: Path) -> None:
    port = start(cluster, tmp_path)
    stalled: list[socket.socket] = []
    try:
        # One connection sends half a request and waits; one sends a whole request and
        # never reads the answer. Both stay open for the whole workload.
        half = socket.create_connection(("127.0.0.1", port), timeout=5)
        stalled.append(half)
        half.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        mute = socket.create_connection(("127.0.0.1", port), timeout=5)
        stalled.append(mute)
        mute.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        mute.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        with zq.Client(cluster.endpoint) as client:
            run_workload(client)  # the master keeps serving
            assert cluster.status()["workers"]
        s = scrape(port)  # and a scrape is answered meanwhile
        assert value(s, "zq_tasks_finished_total", queue="default", task=ADD,
                     state="succeeded") == N_OK
    finally:
        for sock in stalled:
            sock.close()


def test_a_metrics_port_in_use_stops_the_master_saying_so(cluster: Cluster,
                                                          tmp_path: Path) -> None:
    taken = socket.socket()
    try:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        master = cluster.start_master("memory", "--metrics", f"127.0.0.1:{port}", wait=False)
        wait_until(lambda: not master.alive(), 15, "the master to exit")
        assert "--metrics 127.0.0.1:" in master.output()
        assert "cannot listen there" in master.output()
    finally:
        taken.close()


def _answers(port: int) -> Any:
    try:
        return scrape(port)
    except OSError:
        return None


def test_zq_metrics_in_the_environment_turns_metrics_on(cluster: Cluster,
                                                        tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("ZQ_METRICS", f"127.0.0.1:{port}")
    cluster.start_master("memory")
    s = wait_until(lambda: _answers(port), 15, "/metrics to answer")
    assert value(s, "zq_master_up") == 1
