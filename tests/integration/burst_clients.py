"""Client processes for the stall test: `clients` zq.Clients in one process, each submits
`tasks` no-op tasks the moment a gate file appears, then waits for every result. Prints
one JSON line: results received, and how often the client library gave the master up
for lost and reconnected (its 'reconnecting' warnings).

    python -m tests.integration.burst_clients ENDPOINT CLIENTS TASKS GATE READY INTERVAL LIVENESS
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

import zq
from tests.apps import e2e_tasks

GATE_WAIT = 60.0  # seconds to wait for the gate at most
RESULT_WAIT = 120.0  # seconds to wait for each result at most


class Reconnects(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "reconnecting" in record.getMessage():
            self.count += 1


def main(endpoint: str, clients: int, tasks: int, gate: str, ready: str, interval: float,
         liveness: int) -> None:
    reconnects = Reconnects()
    logging.getLogger("zq").addHandler(reconnects)
    config = zq.ClientConfig(connect=endpoint, heartbeat_interval=interval,
                             heartbeat_liveness=liveness)
    opened = [zq.Client(config=config) for _ in range(clients)]
    try:
        with open(ready, "w"):
            pass
        deadline = time.monotonic() + GATE_WAIT
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.005)
        futures = [c.submit(e2e_tasks.noop) for c in opened for _ in range(tasks)]
        results = sum(1 for f in futures if f.result(timeout=RESULT_WAIT) is None)
        print(json.dumps({"results": results, "reconnects": reconnects.count}), flush=True)
    finally:
        for c in opened:
            c.close()


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], int(a[1]), int(a[2]), a[3], a[4], float(a[5]), int(a[6]))
