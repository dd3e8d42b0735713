"""`zq top` used as a person uses it (issue 14): run on a pseudo-terminal against a busy
cluster of real processes, its screen read back (the worker, the queue, a non-zero rate
of finished tasks, the latest events from the stream), then `q` typed, and it exits 0."""

from __future__ import annotations

import re
import threading

import zq
from tests.integration.harness import Cluster
from tests.integration.ptys import PtyProc, zq_cli

APP = "tests.apps.progress_tasks"
RATE = re.compile(r"([\d,]+\.\d) tasks/s now")


def nonzero_rate(screen: str) -> bool:
    return any(float(r.replace(",", "")) > 0 for r in RATE.findall(screen))


def test_top_shows_workers_queues_and_a_rate_and_q_quits(cluster: Cluster):
    cluster.start_master("memory")
    cluster.start_worker(APP, name="topworker", pool="thread", concurrency=4,
                         extra=("--queues", "crunch"))
    stop = threading.Event()
    with zq.Client(cluster.endpoint) as client:
        busy = client.options(queue="crunch")

        def keep_busy() -> None:  # a steady stream of short tasks until the test ends
            for _ in range(2000):
                if stop.is_set():
                    return
                futures = [busy.submit(f"{APP}:pause", 0.01) for _ in range(20)]
                for f in futures:
                    f.result(timeout=30)

        feeder = threading.Thread(target=keep_busy, daemon=True)
        feeder.start()
        top = PtyProc(zq_cli("top", "--connect", cluster.endpoint, "--interval", "0.5s"))
        try:
            screen = top.read_until(nonzero_rate, 30, "a non-zero rate of finished tasks")
            screen = top.read_until(lambda s: "topworker" in s and "crunch" in s, 10,
                                    "the worker and its queue")
            assert "workers" in screen and "queues" in screen and "longest running" in screen
            # the event stream's latest events: the worker's tasks finishing
            screen = top.read_until(lambda s: "latest events" in s and "succeeded " in s, 10,
                                    "events from the stream")
            top.send(b"q")
            assert top.wait(15) == 0, screen[-2000:]
        finally:
            top.close()
            stop.set()
            feeder.join(30)
