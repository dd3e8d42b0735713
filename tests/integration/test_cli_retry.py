"""`zq retry --state S [--name N] [--queue Q] [--limit N]` against a real master and
worker (issue 14): it runs again exactly the tasks its filters choose, and they then
succeed; a single id still works; wrong combinations are refused before asking."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import zq
from tests.apps import e2e_tasks as t
from tests.integration.harness import ROOT, Cluster

APP = "tests.apps.e2e_tasks"
FLAKY = f"{APP}:flaky"


def zq_cli(endpoint: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zq", *args, "--connect", endpoint],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def dead(client: zq.Client, tmp_path: Path, label: str, queue: str = "default",
         fn=t.flaky) -> zq.Future:
    """A task that fails twice, so dies after its one retry; a third run succeeds."""
    f = client.options(queue=queue, retries=1, retry_backoff=0.01).submit(
        fn, str(tmp_path / label), 2)
    with pytest.raises(RuntimeError):
        f.result(timeout=30)
    return f


def states(client: zq.Client, futures: list) -> list[str]:
    return [client.get(f.id)["state"] for f in futures]


def test_bulk_retry_runs_exactly_what_its_filters_choose(cluster: Cluster, tmp_path: Path):
    cluster.start_master()
    cluster.start_worker(APP, name="w1", pool="thread", extra=("--queues", "default,other"))
    endpoint = cluster.endpoint
    with zq.Client(endpoint) as client:
        mine = [dead(client, tmp_path, f"a{i}") for i in range(2)]
        elsewhere = dead(client, tmp_path, "b", queue="other")
        failed = client.submit(t.fail, "ValueError", "once")  # retries=0: failed, not dead
        with pytest.raises(ValueError):
            failed.result(timeout=30)
        assert states(client, [*mine, elsewhere, failed]) == ["dead"] * 3 + ["failed"]

        out = zq_cli(endpoint, "retry", "--state", "dead", "--name", FLAKY,
                     "--queue", "default", "--json")
        assert out.returncode == 0, out.stderr
        assert sorted(json.loads(out.stdout)["retried"]) == sorted(f.id for f in mine)
        assert [client.future(f.id).result(timeout=30) for f in mine] == [3, 3]  # ran again
        assert states(client, [elsewhere, failed]) == ["dead", "failed"]  # left alone

        out = zq_cli(endpoint, "retry", "--state", "dead")  # any name, any queue
        assert (out.returncode, out.stdout) == (0, "retried 1 dead tasks\n"), out.stderr
        assert client.future(elsewhere.id).result(timeout=30) == 3
        assert states(client, [failed]) == ["failed"]


def test_bulk_retry_stops_at_its_limit(cluster: Cluster, tmp_path: Path):
    cluster.start_master()
    cluster.start_worker(APP, name="w1", pool="thread")
    with zq.Client(cluster.endpoint) as client:
        futures = [dead(client, tmp_path, f"c{i}") for i in range(3)]
        out = zq_cli(cluster.endpoint, "retry", "--state", "dead", "--limit", "2")
        assert out.returncode == 0, out.stderr
        assert out.stdout == "retried 2 dead tasks (--limit 2: more may match)\n"
        # newest first: the last two submitted ran again, the first is still dead
        assert [client.future(f.id).result(timeout=30) for f in futures[1:]] == [3, 3]
        assert states(client, futures[:1]) == ["dead"]
        out = zq_cli(cluster.endpoint, "retry", "--state", "cancelled")
        assert (out.returncode, out.stdout) == (0, "retried 0 cancelled tasks\n"), out.stderr


@pytest.mark.parametrize("args, refused", [
    (["retry"], "give a task id, or --state failed|dead|cancelled to retry many (not both)"),
    (["retry", "abc", "--state", "dead"],
     "give a task id, or --state failed|dead|cancelled to retry many (not both)"),
    (["retry", "abc", "--name", FLAKY],
     "--name and --queue choose tasks with --state; a task id is one task"),
    (["retry", "--state", "dead", "--limit", "0"], "--limit must be >= 1, not 0"),
])
def test_wrong_combinations_are_refused_before_asking(args, refused):
    out = zq_cli("tcp://127.0.0.1:1", *args)  # nothing listens: it must not get that far
    assert (out.returncode, out.stderr.strip()) == (2, f"error: {refused}")
