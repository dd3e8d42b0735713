"""Stalls: the longest loop turn of a master with the SQLite store when 200 clients submit
1,000 tasks each at once (issue 10, finding 7), and what a long turn costs: workers the
master declared lost, clients that gave the master up and reconnected.

Client processes (each holding several zq.Client) wait at a gate, then every client
submits its tasks and waits for all results. Workers are light fake ones
(bench/fake_worker.py) unless --kind thread. Two measures of the longest turn: the
master's own (`longest_turn` in its status reply, polled through the run), and a probe
that sends a client HEARTBEAT every 10 ms and times each answer (an upper bound that
needs nothing from the master, so it measures an old master as well).

    .venv/bin/python bench/stall.py [--clients 200] [--tasks 1000] [--runs 3]
"""

from __future__ import annotations

import json
import logging
import os
import re
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import Progress, print_table  # noqa: E402
from harness import Cluster, Proc, base_parser, machine, wait_until, write_markdown  # noqa: E402
from tasks import NOOP  # noqa: E402

SCRIPT = "stall"
PROBE_EVERY = 0.01  # seconds between probe heartbeats
STATUS_EVERY = 0.5  # seconds between status polls for longest_turn
LOST = re.compile(r"silent for [0-9.]+ s: dropped")  # the master's log line for a lost worker


# --- the client processes -------------------------------------------------------------------


class _Count(logging.Handler):
    """Counts the client library's reconnect warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.reconnects = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "reconnecting" in record.getMessage():
            self.reconnects += 1


def client_process(endpoint: str, clients: int, tasks: int, gate: str, ready: str) -> None:
    """`clients` zq.Clients; at the gate, each submits `tasks` no-op tasks, then all wait
    for every result. Prints one JSON line: results, reconnects, seconds."""
    import zq
    count = _Count()
    logging.getLogger("zq").addHandler(count)
    opened = [zq.Client(endpoint) for _ in range(clients)]
    try:
        Path(ready).touch()
        deadline = time.monotonic() + 120
        while not os.path.exists(gate):
            if time.monotonic() > deadline:
                raise SystemExit("the gate never opened")
            time.sleep(0.005)
        start = time.monotonic()
        futures = [[c.submit(NOOP) for _ in range(tasks)] for c in opened]
        done = sum(1 for fs in futures for f in fs if f.result(timeout=600) is None)
        print(json.dumps({"results": done, "reconnects": count.reconnects,
                          "seconds": time.monotonic() - start}), flush=True)
    finally:
        for c in opened:
            c.close()


# --- the probe ------------------------------------------------------------------------------


class Probe(threading.Thread):
    """Sends a client HEARTBEAT every PROBE_EVERY seconds and times each answer; polls
    the master's status for `longest_turn` every STATUS_EVERY seconds."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(daemon=True)
        self.endpoint = endpoint
        self.stop = threading.Event()
        self.longest_answer = 0.0
        self.longest_turn: float | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:  # reported by the main thread
            self.error = e

    def _run(self) -> None:
        import zmq

        from zq.core import codec
        from zq.core import messages as msgs
        from zq.core.messages import Role
        ctx = zmq.Context.instance()
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        beat = codec.encode(Role.CLIENT, msgs.Heartbeat())
        status = codec.encode(Role.CLIENT, msgs.Query(1, "status", {}))
        next_status = 0.0
        try:
            sock.connect(self.endpoint)
            while not self.stop.is_set():
                asked = time.monotonic()
                ask_status = asked >= next_status
                sock.send_multipart(status if ask_status else beat)
                if not sock.poll(60_000):
                    raise RuntimeError("the master did not answer the probe for 60 s")
                _, reply = codec.decode(sock.recv_multipart())
                took = time.monotonic() - asked
                self.longest_answer = max(self.longest_answer, took)
                if ask_status:
                    next_status = time.monotonic() + STATUS_EVERY
                    turn = reply.body.get("longest_turn") if reply.ok else None
                    if turn is not None:
                        self.longest_turn = max(self.longest_turn or 0.0, turn)
                self.stop.wait(PROBE_EVERY)
        finally:
            sock.close(0)


# --- one run --------------------------------------------------------------------------------


def one_run(a: Any, procs: int) -> dict[str, Any]:
    with Cluster(store="sqlite") as cluster:
        if a.kind == "fake":
            cluster.start_fake_workers(a.workers, credit=a.credit, wait=None)
        else:
            cluster.start_workers(a.workers, pool="thread", prefetch=a.credit, wait=None)
        cluster.start_master()
        cluster.wait_workers()
        gate, per = cluster.tmp / "gate", a.clients // procs
        clients = []
        for i in range(procs):
            n = per + (1 if i < a.clients % procs else 0)
            ready = cluster.tmp / f"ready-{i}"
            proc = Proc([cluster.endpoint, str(n), str(a.tasks), str(gate), str(ready)],
                        cluster.tmp / f"clients-{i}.log",
                        program=[sys.executable, __file__, "--client-process"])
            cluster.procs.append(proc)
            clients.append((proc, ready))
        wait_until(lambda: all(r.exists() for _, r in clients), 120, "the clients to start")
        probe = Probe(cluster.endpoint)
        probe.start()
        start = time.monotonic()
        gate.touch()
        try:
            for proc, _ in clients:
                proc.wait(900)
        finally:
            probe.stop.set()
            probe.join(70)
        elapsed = time.monotonic() - start
        if probe.error is not None:
            raise RuntimeError(f"the probe failed: {probe.error}")
        reports = []
        for proc, _ in clients:
            lines = [ln for ln in proc.output().splitlines() if ln.startswith("{")]
            if proc.popen.returncode != 0 or not lines:
                raise RuntimeError(f"a client process failed:\n{proc.output()[-3000:]}")
            reports.append(json.loads(lines[-1]))
        results = sum(r["results"] for r in reports)
        worker_reconnects = sum(p.output().count("no message from the master")
                                for p in cluster.workers)
        return {"results": results, "seconds": elapsed,
                "longest_turn": probe.longest_turn, "longest_answer": probe.longest_answer,
                "lost_workers": len(LOST.findall(cluster.master.output())),
                "client_reconnects": sum(r["reconnects"] for r in reports),
                "worker_reconnects": worker_reconnects}


def main(argv: list[str] | None = None) -> None:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--client-process":
        endpoint, clients, tasks, gate, ready = sys.argv[2:7]
        return client_process(endpoint, int(clients), int(tasks), gate, ready)
    parser = base_parser(__doc__)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=1000, help="per client")
    parser.add_argument("--procs", type=int, default=4, help="processes the clients share")
    parser.add_argument("--kind", choices=("fake", "thread"), default="fake",
                        help="workers: light fake ones, or zq worker --pool thread")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--credit", type=int, default=1000,
                        help="per worker (fake) or --prefetch (thread)")
    a = parser.parse_args(argv)
    if a.quick:
        a.clients, a.tasks = 10, 100
    procs = max(1, min(a.procs, a.clients))
    runs = []
    with Progress(total=a.runs, label="stall runs") as bar:
        for _ in range(a.runs):
            runs.append(one_run(a, procs))
            bar.step()

    def ms(v: float | None) -> float | None:
        return None if v is None else v * 1000

    headers = ["run", "tasks", "seconds", "tasks/s", "longest turn ms (master)",
               "longest probe answer ms", "workers lost", "client reconnects",
               "worker reconnects"]
    rows = [[str(i + 1), r["results"], r["seconds"], r["results"] / r["seconds"],
             ms(r["longest_turn"]), ms(r["longest_answer"]), r["lost_workers"],
             r["client_reconnects"], r["worker_reconnects"]] for i, r in enumerate(runs)]
    turns = [r["longest_turn"] for r in runs if r["longest_turn"] is not None]
    rows.append(["median", None, statistics.median(r["seconds"] for r in runs), None,
                 ms(statistics.median(turns)) if turns else None,
                 ms(statistics.median(r["longest_answer"] for r in runs)), None, None, None])
    workers = (f"{a.workers} fake workers (bench/fake_worker.py), credit {a.credit}"
               if a.kind == "fake" else
               f"{a.workers} zq worker --pool thread --concurrency 1 --prefetch {a.credit}")
    notes = [
        f"{a.clients} clients x {a.tasks:,} no-op tasks, submitted at once (clients in "
        f"{procs} processes), master --store sqlite; {workers}",
        "longest turn: the master's status `longest_turn`, polled every "
        f"{STATUS_EVERY:g} s (blank: this master does not report it); probe: a client "
        f"HEARTBEAT every {PROBE_EVERY * 1000:g} ms, the longest wait for its answer",
        "workers lost: the master's 'silent for ... dropped' lines; client reconnects: "
        "zq.client's 'reconnecting' warnings",
        machine(),
    ]
    print(f"zq stalls: {notes[0]}")
    print_table(headers, rows)
    for note in notes[1:]:
        print(note)
    write_markdown(SCRIPT, headers, rows, notes)


if __name__ == "__main__":
    main()
