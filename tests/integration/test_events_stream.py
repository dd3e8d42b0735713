"""The event stream with real processes (issue 14): `zq events --json` run against a
master and a worker prints a known workload's task events in order, filtered by queue;
bad subscriptions from a raw peer are refused with a reason while the master goes on
serving the subscriber; and `zq events` exits non-zero saying why for a bad filter."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict

import zmq

import zq
from tests.integration.harness import ROOT, Cluster, wait_until
from zq.core import codec
from zq.core import messages as m
from zq.core.messages import Role

APP = "tests.apps.progress_tasks"


def ask_raw(endpoint: str, args: object) -> tuple[bool, str]:
    """A QUERY 'events' with these args from a raw socket: (ok, the reason or body) of
    the master's REPLY, or of its ERROR for a message the codec refuses."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send_multipart(codec.encode(Role.CLIENT, m.Query(7, "events", args)))  # type: ignore[arg-type]
        assert sock.poll(10_000), "the master did not answer"
        _, answer = codec.decode(sock.recv_multipart())
        if isinstance(answer, m.Error):
            return False, answer.reason
        assert isinstance(answer, m.Reply), answer
        return answer.ok, str(answer.body)
    finally:
        sock.close(0)


def events_cli(cluster: Cluster, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "zq", "events", "--connect",
                             cluster.endpoint, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_events_of_a_known_workload_arrive_in_order_and_filtered(cluster: Cluster):
    cluster.start_master("memory")
    cluster.start_worker(APP, name="evw", pool="thread", concurrency=2,
                         extra=("--queues", "evq,other"))
    # 5 successes (3 events each) and one task that fails twice (retries=1): 20 events.
    proc = events_cli(cluster, "--json", "--queue", "evq", "--count", "20")
    try:
        wait_until(lambda: (cluster.status() or {}).get("subscribers") == 1, 20,
                   "the subscription")
        # Bad subscriptions meanwhile: each refused with a reason, the stream goes on.
        for args, says in (({"kinds": ["exploded"]}, "kinds must be"),
                           ({"seen": "lots"}, "seen"), ({"queue": ["a"]}, "queue"),
                           ([1, 2], "args must be a map")):
            ok_, reason = ask_raw(cluster.endpoint, args)
            assert not ok_ and says in reason, (args, reason)
        with zq.Client(cluster.endpoint) as client:
            evq = client.options(queue="evq")
            ok = [evq.submit(f"{APP}:square", x) for x in range(5)]
            other = client.options(queue="other").submit(f"{APP}:square", 9)
            bad = evq.options(retries=1, retry_backoff=0.01).submit(f"{APP}:fail_on", 1, 1)
            assert [f.result(timeout=30) for f in ok] == [0, 1, 4, 9, 16]
            assert other.result(timeout=30) == 81
            assert isinstance(bad.exception(timeout=30), ValueError)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    events = [json.loads(line) for line in out.splitlines()]
    assert len(events) == 20 and all(e["queue"] == "evq" for e in events), events
    by_task: dict[str, list[str]] = defaultdict(list)
    for e in events:
        by_task[e["id"]].append(e["kind"])
    for f in ok:
        assert by_task[f.id] == ["submitted", "started", "succeeded"]
    assert by_task[bad.id] == ["submitted", "started", "retrying", "started", "dead"]
    assert other.id not in by_task
    times = [e["time"] for e in events]
    assert times == sorted(times)
    started = [e for e in events if e["kind"] == "started"]
    assert all(e["worker"] == "evw" for e in started)
    assert [e["attempt"] for e in events if e["id"] == bad.id and e["kind"] == "started"] == [
        1, 2]


def test_zq_events_says_why_a_filter_is_refused(cluster: Cluster):
    cluster.start_master("memory")
    proc = events_cli(cluster, "--kind", "exploded")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert "kinds must be" in err and "exploded" in err
