"""Scale: throughput and the master's CPU per task with 1 to 1,000 connected workers,
the master's idle CPU (heartbeats only) with them connected, and (--restart) how long a
master killed -9 and started again takes to have every worker back and to serve at
full speed again.

Workers are light by default: bench/fake_worker.py processes (--fake-processes of
them) holding one DEALER per worker, registering with the real protocol and answering
every TASK at once with OK results, so the master is what is measured and 128 workers
fit on a small machine. --kind thread uses real `zq worker --pool thread` processes.
The baseline, in the same run, is the raw relay with a master that tracks task ids.

    .venv/bin/python bench/scale.py [--n 100000] [--workers 1,2,8,32,128,1000] [--runs 3]
                                    [--restart]

--restart: with the workers connected and nothing in flight, maps of --restart-batch
tasks measure the rate; the master is killed -9 and a new one started on the same
endpoint (memory store). The fake workers watch their links (--watch: a socket monitor
each, as zq's worker does): each sees its link drop and connects again on a fresh
socket after a jittered backoff (0.05-0.1 s for the first try, doubling), sending HELLO
as it connects: 1,000 HELLOs within about a second of the new master binding, a
registration storm. Measured from the new master's start (process start included): seconds until
every worker is registered, and until the end of the first map whose rate is at least
90% of the rate before.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import Progress, print_table  # noqa: E402
from harness import (  # noqa: E402
    Cluster,
    base_parser,
    interleaved,
    machine,
    results_path,
    timed_map,
    write_markdown,
)
from relay import relay_throughput  # noqa: E402
from tasks import NOOP  # noqa: E402

import zq  # noqa: E402

SCRIPT = "scale"


def zq_case(workers: int, n: int, kind: str, credit: int, processes: int, idle: float,
            concurrency: int | None):
    def run() -> tuple[float, float, float, float, float, float, float]:
        with Cluster() as cluster:
            if kind == "fake":
                cluster.start_fake_workers(workers, processes=processes, credit=credit,
                                           concurrency=concurrency, wait=None)
            else:
                cluster.start_workers(workers, pool="thread", concurrency=1,
                                      prefetch=credit - 1, wait=None)
            cluster.start_master()
            cluster.wait_workers()
            time.sleep(0.2)
            cpu0 = cluster.master_cpu()
            time.sleep(idle)
            idle_pct = (cluster.master_cpu() - cpu0) / idle * 100
            warmup = min(1000, n // 10)
            per_message = math.nan  # real workers: not counted
            with zq.Client(cluster.endpoint) as client:
                for _ in client.map(NOOP, range(warmup)):
                    pass
                if kind == "fake":
                    tasks0, messages0 = cluster.fake_answered(warmup)
                rate, master_us, workers_us, client_us = timed_map(
                    cluster, client, NOOP, range(n))
            if kind == "fake":  # how many tasks one TASK message carried, on average
                tasks, messages = cluster.fake_answered(tasks0 + n)
                per_message = (tasks - tasks0) / max(1, messages - messages0)
            rss = cluster.master_memory()[0]
        return rate, master_us, workers_us, client_us, idle_pct, rss, per_message
    return run


QUICK_MAX_WORKERS = 128
BACK = 0.9  # "back to full speed": a map at this share of the rate before the kill
RESTART_TIMEOUT = 120.0  # seconds a restart may take to get back before the run fails


def map_rate(endpoint: str, batch: int) -> float:
    """tasks/s of one client.map of `batch` no-op tasks (a fresh client: it connects,
    maps, and waits for every result)."""
    with zq.Client(endpoint) as client:
        start = time.perf_counter()
        done = sum(1 for _ in client.map(NOOP, range(batch)))
        elapsed = time.perf_counter() - start
    if done != batch:
        raise RuntimeError(f"{done} of {batch} results")
    return batch / elapsed


def restart_case(workers: int, credit: int, processes: int, batch: int,
                 concurrency: int | None):
    def run() -> tuple[float, float, float, float]:
        with Cluster() as cluster:
            cluster.start_fake_workers(workers, processes=processes, credit=credit,
                                       concurrency=concurrency, watch=True, wait=None)
            cluster.start_master()
            cluster.wait_workers(RESTART_TIMEOUT)
            map_rate(cluster.endpoint, batch)  # warm-up
            before = statistics.median([map_rate(cluster.endpoint, batch) for _ in range(3)])
            assert cluster.master is not None
            cluster.master.kill()  # kill -9, nothing in flight
            start = time.monotonic()
            up = cluster.start_master()
            cluster.wait_workers(RESTART_TIMEOUT)
            registered = time.monotonic() - start
            while map_rate(cluster.endpoint, batch) < BACK * before:
                if time.monotonic() - start > RESTART_TIMEOUT:
                    raise RuntimeError(f"not back to {BACK:.0%} of {before:,.0f} tasks/s "
                                       f"within {RESTART_TIMEOUT:g} s of the restart")
            return before, up, registered, time.monotonic() - start
    return run


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="tasks per map")
    parser.add_argument("--workers", default="1,2,8,32,128,1000",
                        help="worker counts (--quick: those up to 128)")
    parser.add_argument("--kind", default="fake", choices=("fake", "thread"))
    parser.add_argument("--credit", type=int, default=100,
                        help="tasks each worker holds (fake: HELLO credit; thread: "
                             "concurrency 1 + --prefetch credit-1)")
    parser.add_argument("--fake-concurrency", type=int,
                        help="slots each fake worker declares (default: its credit: it "
                             "answers every task at once; 1 makes the master spread tasks "
                             "one per idle slot, about one task per TASK message)")
    parser.add_argument("--fake-processes", type=int, default=2,
                        help="processes the fake workers are spread over")
    parser.add_argument("--idle", type=float, default=2.0,
                        help="seconds over which the idle master's CPU is measured")
    parser.add_argument("--restart", action="store_true",
                        help="also measure a kill -9 and restart of the master (fake "
                             "workers only)")
    parser.add_argument("--restart-batch", type=int, default=5_000,
                        help="tasks per map that measures the rate around a restart")
    a = parser.parse_args(argv)
    n, idle = (1_000, 0.2) if a.quick else (a.n, a.idle)
    batch = 500 if a.quick else a.restart_batch
    counts = [int(c) for c in a.workers.split(",")]
    if a.quick:  # a smoke test: 1,000 workers take a while just to connect
        counts = [c for c in counts if c <= QUICK_MAX_WORKERS] or counts[:1]
    if a.restart and a.kind != "fake":
        parser.error("--restart measures fake workers (--kind fake)")

    cases: dict[Any, Any] = {w: zq_case(w, n, a.kind, a.credit, a.fake_processes, idle,
                                        a.fake_concurrency)
                             for w in counts}
    if a.restart:
        cases.update({("restart", w): restart_case(w, a.credit, a.fake_processes, batch,
                                                   a.fake_concurrency)
                      for w in counts})
    cases["relay tracked"] = lambda: relay_throughput(n, 100, track=True)
    with Progress(total=a.runs * len(cases), label="scale runs") as bar:
        med = interleaved(a.runs, cases, bar)

    tracked = med["relay tracked"]
    headers = ["workers", "tasks", "tasks/s", "vs relay tracked", "master µs/task",
               "workers µs/task", "client µs/task", "idle master CPU %", "master RSS MB",
               "tasks per TASK message"]
    if a.restart:
        headers += ["rate before restart", "restart: master answers s",
                    "restart: all registered s",
                    f"restart: back to {BACK:.0%} s"]
    rows = []
    for w in counts:
        rate, master_us, workers_us, client_us, idle_pct, rss, per_message = med[w]
        per_message = None if math.isnan(per_message) else per_message
        rows.append([w, n, rate, rate / tracked, master_us, workers_us, client_us, idle_pct,
                     rss, per_message, *(med[("restart", w)] if a.restart else ())])
    rows.append(["raw relay, batch=100, tracked", n, tracked, 1.0, None, None, None, None,
                 None, 100, *((None,) * 4 if a.restart else ())])
    if a.kind == "fake":
        slots = a.credit if a.fake_concurrency is None else a.fake_concurrency
        how = (f"fake workers (bench/fake_worker.py, credit {a.credit} and concurrency "
               f"{slots} each, spread over {a.fake_processes} processes)")
    else:
        how = (f"zq worker --pool thread --concurrency 1 --prefetch {a.credit - 1}, "
               "one process each")
    notes = [
        f"client.map of {n:,} no-op tasks, median of {a.runs} runs, a fresh master and "
        f"workers per case; master --store memory",
        f"workers: {how}",
        f"idle master CPU: over {idle:g} s with the workers connected and no tasks "
        f"(heartbeat 1 s); CPU from /proc/PID/stat. {machine()}",
    ]
    if a.restart:
        notes.append(
            f"restart: the rate before is the median of 3 maps of {batch:,} tasks (after "
            f"one to warm up); the master is killed -9 with nothing in flight and started "
            f"again on the same endpoint; seconds from the new master's start (process "
            f"start included) until it answers a status query, until every worker is "
            f"registered, and until the end of the "
            f"first map of {batch:,} at {BACK:.0%} of the rate before or more")
    print(f"zq scale: {notes[0]}\n{notes[1]}")
    print_table(headers, rows)
    print("\n".join(notes[2:]))
    write_markdown(SCRIPT, headers, rows, notes)
    chart(str(results_path(f"{SCRIPT}.png")), counts, [r[2] for r in rows[:-1]],
          [r[4] for r in rows[:-1]], tracked, n, a.runs)


def chart(path: str, counts: list[int], rates: list[float], master_us: list[float],
          relay: float, n: int, runs: int) -> None:
    """tasks/s (left axis) and master µs/task (right axis) by workers, both from zero."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"note: matplotlib is not installed; {path} not written", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    try:
        ax.plot(counts, rates, marker="o", color="tab:blue", label="zq tasks/s")
        ax.axhline(relay, color="tab:blue", linestyle=":", label="raw relay (tracked) tasks/s")
        ax.set_xscale("log", base=2)
        ax.set_xticks(counts, [str(c) for c in counts])
        ax.set_ylim(0, max(max(rates), relay) * 1.1)
        ax.set_xlabel("connected workers")
        ax.set_ylabel("tasks/s")
        right = ax.twinx()
        right.plot(counts, master_us, marker="s", color="tab:red", label="master µs/task")
        right.set_ylim(0, max(master_us) * 1.5)
        right.set_ylabel("master CPU µs per task")
        lines = ax.get_legend_handles_labels()
        more = right.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], loc="lower left", fontsize=8)
        ax.set_title(f"{n:,} no-op tasks by connected workers (median of {runs})")
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)

if __name__ == "__main__":
    main()
