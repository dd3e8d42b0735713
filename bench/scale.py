"""Scale: throughput and the master's CPU per task with 1, 2, 8, 32 and 128 connected
workers, and the master's idle CPU (heartbeats only) with them connected.

Workers are light by default: bench/fake_worker.py processes (--fake-processes of
them) holding one DEALER per worker, registering with the real protocol and answering
every TASK at once with OK results, so the master is what is measured and 128 workers
fit on a small machine. --kind thread uses real `zq worker --pool thread` processes.
The baseline, in the same run, is the raw relay with a master that tracks task ids.

    .venv/bin/python bench/scale.py [--n 100000] [--workers 1,2,8,32,128] [--runs 3]
"""

from __future__ import annotations

import os
import sys
import time

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


def zq_case(workers: int, n: int, kind: str, credit: int, processes: int, idle: float):
    def run() -> tuple[float, float, float, float, float, float]:
        with Cluster() as cluster:
            if kind == "fake":
                cluster.start_fake_workers(workers, processes=processes, credit=credit,
                                           wait=None)
            else:
                cluster.start_workers(workers, pool="thread", concurrency=1,
                                      prefetch=credit - 1, wait=None)
            cluster.start_master()
            cluster.wait_workers()
            time.sleep(0.2)
            cpu0 = cluster.master_cpu()
            time.sleep(idle)
            idle_pct = (cluster.master_cpu() - cpu0) / idle * 100
            with zq.Client(cluster.endpoint) as client:
                rate, master_us, workers_us, client_us = timed_map(
                    cluster, client, NOOP, range(n), warmup=min(1000, n // 10))
            rss = cluster.master_memory()[0]
        return rate, master_us, workers_us, client_us, idle_pct, rss
    return run


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="tasks per map")
    parser.add_argument("--workers", default="1,2,8,32,128", help="worker counts")
    parser.add_argument("--kind", default="fake", choices=("fake", "thread"))
    parser.add_argument("--credit", type=int, default=100,
                        help="tasks each worker holds (fake: HELLO credit; thread: "
                             "concurrency 1 + --prefetch credit-1)")
    parser.add_argument("--fake-processes", type=int, default=2,
                        help="processes the fake workers are spread over")
    parser.add_argument("--idle", type=float, default=2.0,
                        help="seconds over which the idle master's CPU is measured")
    a = parser.parse_args(argv)
    n, idle = (1_000, 0.2) if a.quick else (a.n, a.idle)
    counts = [int(c) for c in a.workers.split(",")]

    cases = {w: zq_case(w, n, a.kind, a.credit, a.fake_processes, idle) for w in counts}
    cases["relay tracked"] = lambda: relay_throughput(n, 100, track=True)
    with Progress(total=a.runs * len(cases), label="scale runs") as bar:
        med = interleaved(a.runs, cases, bar)

    tracked = med["relay tracked"]
    headers = ["workers", "tasks", "tasks/s", "vs relay tracked", "master µs/task",
               "workers µs/task", "client µs/task", "idle master CPU %", "master RSS MB"]
    rows = []
    for w in counts:
        rate, master_us, workers_us, client_us, idle_pct, rss = med[w]
        rows.append([w, n, rate, rate / tracked, master_us, workers_us, client_us, idle_pct,
                     rss])
    rows.append(["raw relay, batch=100, tracked", n, tracked, 1.0, None, None, None, None,
                 None])
    if a.kind == "fake":
        how = (f"fake workers (bench/fake_worker.py, credit {a.credit} each, spread over "
               f"{a.fake_processes} processes)")
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
    print(f"zq scale: {notes[0]}\n{notes[1]}")
    print_table(headers, rows)
    print(notes[2])
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
