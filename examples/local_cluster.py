"""For the workflow examples: the cluster to run them on. --connect URL uses one that is
running already (its workers must run `--app workflow_tasks` with examples/ on
PYTHONPATH); without it, `zq local` starts a master (memory store) and two workers on a
free 127.0.0.1 port for the example's run, and stops them after."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import zq  # noqa: E402

WORKERS = 2


def _workers(client: zq.Client) -> int:
    """Workers registered; 0 while the master does not answer yet (it is starting)."""
    try:
        return len(client.query("status", timeout=2.0)["workers"])
    except zq.ConnectionLost:
        return 0


@contextlib.contextmanager
def cluster(connect: str | None) -> Iterator[zq.Client]:
    """A client on the given cluster, or on a `zq local` started for this run."""
    if connect:
        with zq.Client(connect) as client:
            yield client
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent)]))
    local = subprocess.Popen(
        [sys.executable, "-m", "zq", "local", "--app", "workflow_tasks", "--store", "memory",
         "--bind", endpoint, "--workers", str(WORKERS), "--pool", "thread"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        with zq.Client(endpoint) as client:
            deadline = time.monotonic() + 60
            while _workers(client) < WORKERS:
                if local.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the local cluster did not start (try: zq local "
                                     "--app workflow_tasks with examples/ on PYTHONPATH)")
                time.sleep(0.1)
            yield client
    finally:
        local.send_signal(signal.SIGTERM)  # zq local stops its workers, then the master
        try:
            local.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(local.pid, signal.SIGKILL)
            local.wait(10)
