"""Throughput: client.map of N no-op tasks through a real master and real workers, with
the memory and the SQLite store, one and two workers; tasks/s and the CPU each process
spends per task, against the raw pyzmq relay (bench/relay.py) measured in the same run.

Each case starts a fresh master (and a fresh SQLite file) and fresh workers, runs a small
untimed warm-up map, then times one map of N tasks from the call to the last result.
Master and worker CPU come from /proc/PID/stat; the client runs in this process.

    .venv/bin/python bench/throughput.py [--n 100000] [--runs 3] [--prefetch 1000]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import Progress, print_table, save_chart  # noqa: E402
from harness import (  # noqa: E402
    Cluster, base_parser, interleaved, machine, results_path, timed_map, write_markdown,
)
from relay import relay_throughput  # noqa: E402
from tasks import NOOP  # noqa: E402


SCRIPT = "throughput"


def zq_case(store: str, workers: int, n: int, pool: str, concurrency: int,
            prefetch: int, warmup: int, keys: bool = False):
    def run() -> tuple[float, float, float, float]:
        with Cluster(store=store, keys=keys) as cluster:
            cluster.start_workers(workers, pool=pool, concurrency=concurrency,
                                  prefetch=prefetch, wait=None)  # they start meanwhile
            cluster.start_master()
            cluster.wait_workers()
            with cluster.client() as client:
                return timed_map(cluster, client, NOOP, range(n), warmup=warmup)
    return run


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="tasks per map")
    parser.add_argument("--pool", default="thread", choices=("thread", "process", "async"))
    parser.add_argument("--concurrency", type=int, default=1, help="per worker")
    parser.add_argument("--prefetch", type=int, default=1000,
                        help="zq worker --prefetch (set explicitly; see the notes)")
    a = parser.parse_args(argv)
    n = 2_000 if a.quick else a.n
    warmup = min(1_000, max(n // 10, 1))
    worker = f"--pool {a.pool} --concurrency {a.concurrency} --prefetch {a.prefetch}"

    cases = {}
    for store in ("memory", "sqlite"):
        for workers in (1, 2):
            cases[(store, workers)] = zq_case(store, workers, n, a.pool, a.concurrency,
                                              a.prefetch, warmup)
    cases["relay"] = lambda: relay_throughput(n, 100)
    cases["relay tracked"] = lambda: relay_throughput(n, 100, track=True)
    with Progress(total=a.runs * len(cases), label="throughput runs") as bar:
        med = interleaved(a.runs, cases, bar)

    relay, tracked = med["relay"], med["relay tracked"]
    headers = ["case", "tasks", "tasks/s", "vs relay", "vs relay tracked",
               "master µs/task", "worker µs/task", "client µs/task"]
    rows = []
    for store in ("memory", "sqlite"):
        for workers in (1, 2):
            rate, master_us, worker_us, client_us = med[(store, workers)]
            rows.append([f"zq --store {store}, {workers} worker{'s' if workers > 1 else ''}",
                         n, rate, rate / relay, rate / tracked, master_us, worker_us,
                         client_us])
    rows.append(["raw relay, batch=100", n, relay, 1.0, relay / tracked, None, None, None])
    rows.append(["raw relay, batch=100, master tracks ids", n, tracked, tracked / relay, 1.0,
                 None, None, None])

    mem1, sql1 = med[("memory", 1)][0], med[("sqlite", 1)][0]
    mem2, sql2 = med[("memory", 2)][0], med[("sqlite", 2)][0]
    notes = [
        f"client.map of {n:,} no-op tasks ({NOOP}), median of {a.runs} runs, "
        f"{warmup:,} untimed warm-up tasks first; a fresh master and workers per case",
        f"workers: zq worker {worker} (prefetch set explicitly for throughput)",
        f"SQLite/memory: {sql1 / mem1:.0%} with 1 worker, {sql2 / mem2:.0%} with 2; "
        f"2 workers/1 worker: {mem2 / mem1:.0%} (memory), {sql2 / sql1:.0%} (SQLite)",
        "relay: bench/relay.py relay_throughput(n, batch=100[, track=True]) in the same run",
        f"CPU from /proc/PID/stat (10 ms ticks) over the timed map; client = this process. "
        f"{machine()}",
    ]
    print(f"zq throughput: {notes[0]}\n{notes[1]}")
    print_table(headers, rows)
    for note in notes[2:]:
        print(note)
    write_markdown(SCRIPT, headers, rows, notes)
    labels = ["memory 1w", "memory 2w", "sqlite 1w", "sqlite 2w", "relay", "relay tracked"]
    chart = {label: row[2] for label, row in zip(labels, rows)}
    save_chart(str(results_path(f"{SCRIPT}.png")), chart, kind="bar", logy=True,
               title=f"client.map of {n:,} no-op tasks (median of {a.runs})",
               ylabel="tasks/s (log)")


if __name__ == "__main__":
    main()
