"""A stored schedule that cannot load never stops the master from starting (issue 9,
finding 3): a real master restarted over a store holding bad schedules starts, runs the
good one, and `zq schedule list` shows the bad ones as broken."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import zq
from tests.integration.harness import ROOT, wait_until
from zq.store.sqlite import SqliteStore

APP = "tests.apps.e2e_tasks"


def test_a_master_starts_over_a_store_with_bad_schedules(cluster, tmp_path):
    store, marker = str(tmp_path / "zq.db"), tmp_path / "runs.txt"
    past = time.time() - 120.0  # due at once: a bad one would be fired at the first tick
    db = SqliteStore(store)
    db.set_meta("schedules", [
        # Saved by an older master through the wire: each crashed it at every start.
        {"name": "bad-anchor", "task": f"{APP}:noop", "every": 60.0, "anchor": math.inf},
        {"name": "bad-queue", "task": f"{APP}:noop", "every": 60.0, "queue": [1],
         "anchor": past, "last_tick": past},
        {"name": "good", "task": f"{APP}:count_runs", "every": 1.0, "args": [str(marker)],
         "anchor": past, "last_tick": past},
    ])
    db.commit()
    db.close()

    cluster.start_master(store)
    cluster.start_worker(APP, name="w1", pool="thread")
    wait_until(lambda: marker.exists() and marker.read_text().count("\n") >= 2, 20,
               "the good schedule to run twice")
    with zq.Client(cluster.endpoint) as client:
        listed = {s["name"]: s for s in client.schedules()}
        assert set(listed) == {"bad-anchor", "bad-queue", "good"}
        assert "anchor" in listed["bad-anchor"]["broken"]
        assert "queue" in listed["bad-queue"]["broken"]
        assert listed["good"]["broken"] is None
    out = subprocess.run([sys.executable, "-m", "zq", "schedule", "list", "--connect",
                          cluster.endpoint], capture_output=True, text=True, timeout=60,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line for line in out.stdout.splitlines() if line.split()}
    assert "BROKEN" in rows["bad-queue"] and "BROKEN" in rows["bad-anchor"]
    assert "BROKEN" not in rows["good"] and "every 1.0s" in rows["good"]
    assert "bad-anchor cannot load" in cluster.master.output()
    assert cluster.master.alive()
