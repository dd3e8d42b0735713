"""A durable storm, the setup the kill -9 tests of both durable stores share
(test_durability.py on SQLite, test_postgres_store.py on PostgreSQL): a master on a
store, two thread-pool workers, and tasks submitted in waves that log each run.

Executions are counted on the workers' side: tasks.log_distinct_run appends one line per
run to a file, so "ran once" is checked against what really ran, not against what the
master believes.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import zq
from tests.apps import e2e_tasks as t
from tests.integration.harness import Cluster, Proc, wait_until

APP = "tests.apps.e2e_tasks"
WAVE = 50  # tasks per submission wave


def runs(path: Path) -> Counter:
    """How many times each tag ran, from a log_run file."""
    if not path.exists():
        return Counter()
    return Counter(line.split()[0] for line in path.read_text().splitlines() if line)


def assert_one_result_each(client: zq.Client, futures: list) -> None:
    """Every task succeeded, and nothing else is recorded. (The master's list is keyed
    by id, so it cannot show a task twice: runs are counted from log files instead.)"""
    assert len(futures) < 1000  # what one `tasks` query lists at most
    ids = [row["id"] for row in client.tasks(state="succeeded", limit=1000)]
    assert set(ids) == {f.id for f in futures}
    counts = client.status()["counts"]
    assert counts["succeeded"] == len(futures)
    assert not {s: n for s, n in counts.items() if n and s != "succeeded"}, counts


class Storm:
    """Tasks submitted in waves of WAVE to a cluster of a master and workers w1 and w2;
    task i returns "i:N" on its Nth run and logs each run in `log`.

    Tasks from the third wave on hold their thread at a gate until release(): the
    storm cannot be over before a test's fault, however fast the machine runs it."""

    def __init__(self, cluster: Cluster, log: Path) -> None:
        self.cluster, self.log = cluster, log
        self.gate = log.with_name(log.name + ".gate")
        self.futures: list[zq.Future] = []
        self.workers: dict[str, Proc] = {}

    def start(self, store: str) -> None:
        """The master on `store` (a path or a URL), and the two workers."""
        self.cluster.start_master(store)
        self.workers = {name: self.cluster.start_worker(APP, name=name, pool="thread",
                                                        concurrency=4)
                        for name in ("w1", "w2")}

    def wave(self, client: zq.Client) -> None:
        for _ in range(WAVE):
            i = len(self.futures)
            gate = str(self.gate) if i >= 2 * WAVE else None
            self.futures.append(client.submit(t.log_distinct_run, str(self.log), str(i),
                                              0.002, gate=gate))

    def under_way(self, client: zq.Client) -> None:
        """Six waves, all acknowledged (so in the master's store), and at least 100 runs
        begun: tasks are now queued, leased, finishing with results on the wire, and
        held running at the gate. The test's fault comes next, then release()."""
        for _ in range(6):
            self.wave(client)
        assert client.flush(10)
        wait_until(lambda: self.ran() >= 2 * WAVE, 30, "the storm to be under way")

    def release(self) -> None:
        """Open the gate: the held runs finish, the rest of the storm runs freely."""
        self.gate.touch()

    def ran(self) -> int:
        return sum(runs(self.log).values())
