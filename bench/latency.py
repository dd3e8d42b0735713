"""Latency: one client.submit(noop).result() round trip at a time through a real master
and one real worker (memory and SQLite store), p50 and p99, against the raw relay's
ping-pong (bench/relay.py relay_pingpong) measured in the same run.

    .venv/bin/python bench/latency.py [--n 2000] [--runs 3]
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import Progress, percentiles, print_table, save_chart  # noqa: E402
from harness import Cluster, base_parser, interleaved, machine, results_path, write_markdown  # noqa: E402
from relay import relay_pingpong  # noqa: E402
from tasks import NOOP  # noqa: E402

SCRIPT = "latency"


def zq_case(store: str, n: int, warmup: int, pool: str, prefetch: int, keys: bool = False):
    def run() -> tuple[float, float]:
        with Cluster(store=store, keys=keys) as cluster:
            cluster.start_workers(1, pool=pool, concurrency=1, prefetch=prefetch, wait=None)
            cluster.start_master()
            cluster.wait_workers()
            with cluster.client() as client:
                clock, submit = time.perf_counter, client.submit
                times = []
                for i in range(warmup + n):
                    start = clock()
                    submit(NOOP, i).result(timeout=30)
                    if i >= warmup:
                        times.append(clock() - start)
        return percentiles(times, (50, 99))
    return run


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--n", type=int, default=2_000, help="timed round trips per run")
    parser.add_argument("--warmup", type=int, default=100, help="untimed round trips first")
    parser.add_argument("--pool", default="thread", choices=("thread", "process", "async"))
    parser.add_argument("--prefetch", type=int, default=1000, help="zq worker --prefetch")
    a = parser.parse_args(argv)
    n, warmup = (100, 10) if a.quick else (a.n, a.warmup)

    cases = {store: zq_case(store, n, warmup, a.pool, a.prefetch)
             for store in ("memory", "sqlite")}
    cases["relay"] = lambda: percentiles(relay_pingpong(n, warmup=warmup), (50, 99))
    with Progress(total=a.runs * len(cases), label="latency runs") as bar:
        med = interleaved(a.runs, cases, bar)

    r50, r99 = med["relay"]
    headers = ["case", "round trips", "p50 µs", "p99 µs", "p50 vs relay", "p99 vs relay"]
    rows = []
    for store in ("memory", "sqlite"):
        p50, p99 = med[store]
        rows.append([f"zq submit().result(), --store {store}", n, p50 * 1e6, p99 * 1e6,
                     p50 / r50, p99 / r99])
    rows.append(["raw relay ping-pong", n, r50 * 1e6, r99 * 1e6, 1.0, 1.0])
    notes = [
        f"{n:,} sequential round trips after {warmup} untimed ones, per run; p50/p99 of a "
        f"run, median of {a.runs} runs; a fresh master and worker per case and run",
        f"worker: zq worker --pool {a.pool} --concurrency 1 --prefetch {a.prefetch}",
        f"relay: bench/relay.py relay_pingpong(n) in the same run. {machine()}",
    ]
    print(f"zq latency: {notes[0]}\n{notes[1]}")
    print_table(headers, rows)
    print(notes[2])
    write_markdown(SCRIPT, headers, rows, notes)
    chart = {}
    for label, row in zip(("memory", "sqlite", "relay"), rows):
        chart[f"{label} p50"] = row[2]
        chart[f"{label} p99"] = row[3]
    save_chart(str(results_path(f"{SCRIPT}.png")), chart, kind="bar",
               title=f"one round trip at a time ({n:,}, median of {a.runs} runs)",
               ylabel="µs")


if __name__ == "__main__":
    main()
