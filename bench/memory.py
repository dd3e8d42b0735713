"""Memory and recovery: the master's resident memory with N (default 1,000,000) queued
tasks and no workers, with the memory and the SQLite store; then, with the SQLite store,
the time to restart the master with those N tasks in it (from process start until it
answers a status query) and its memory then. The baseline, in the same run, is the same
master started empty.

Tasks go in through a raw SUBMIT loop (bench/harness.py raw_submit: what zq.Client
sends, without a million Futures in this process), as no-op calls with a small argument.

    .venv/bin/python bench/memory.py [--n 1000000] [--runs 3]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import Progress, median_of, print_table, save_chart  # noqa: E402
from harness import (  # noqa: E402
    ARGS_NOOP,
    Cluster,
    base_parser,
    machine,
    raw_submit,
    results_path,
    write_markdown,
)
from tasks import NOOP  # noqa: E402

SCRIPT = "memory"


def queued(cluster: Cluster) -> int:
    return cluster.status(timeout=60)["counts"].get("queued", 0)


def run_once(store: str, n: int, bar: Progress) -> dict[str, float]:
    """One fresh master: RSS empty, fill with n, RSS full; with SQLite also stop,
    restart, time to answer and RSS after the restart."""
    out: dict[str, float] = {}
    with Cluster(store=store) as cluster:
        out["start_empty"] = cluster.start_master()
        out["rss_empty"] = cluster.master_memory()[0]
        took = raw_submit(cluster.endpoint, n, NOOP, ARGS_NOOP, progress=bar.step)
        out["submit_rate"] = n / took
        if queued(cluster) != n:
            raise RuntimeError(f"{queued(cluster)} tasks queued, expected {n}")
        out["rss_full"], out["hwm_full"] = cluster.master_memory()
        if store != "memory":
            out["db_mb"] = sum(os.path.getsize(p) for p in cluster.tmp.glob("zq.db*")) / 1e6
            out["stop"] = cluster.stop_master()
            out["restart"] = cluster.start_master(timeout=600)
            out["rss_restart"], out["hwm_restart"] = cluster.master_memory()
            if queued(cluster) != n:
                raise RuntimeError(f"{queued(cluster)} tasks queued after the restart, "
                                   f"expected {n}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--n", type=int, default=1_000_000, help="queued tasks")
    a = parser.parse_args(argv)
    n = 20_000 if a.quick else a.n

    results: dict[str, list[dict[str, float]]] = {"memory": [], "sqlite": []}
    with Progress(total=a.runs * 2 * n, label="tasks submitted") as bar:
        for _ in range(a.runs):
            for store in results:
                results[store].append(run_once(store, n, bar))

    def med(store: str, key: str) -> float:
        values = [r[key] for r in results[store]]
        return median_of(len(values), iter(values).__next__)

    per_task = {s: (med(s, "rss_full") - med(s, "rss_empty")) * 2**20 / n for s in results}
    headers = ["case", "tasks", "seconds to answer", "RSS MB", "peak RSS MB",
               "bytes/task", "accepted/s"]
    rows = [
        ["master started empty (memory)", 0, med("memory", "start_empty"),
         med("memory", "rss_empty"), None, None, None],
        [f"--store memory, {n:,} queued", n, None, med("memory", "rss_full"),
         med("memory", "hwm_full"), per_task["memory"], med("memory", "submit_rate")],
        [f"--store sqlite, {n:,} queued", n, None, med("sqlite", "rss_full"),
         med("sqlite", "hwm_full"), per_task["sqlite"], med("sqlite", "submit_rate")],
        ["master started empty (sqlite)", 0, med("sqlite", "start_empty"),
         med("sqlite", "rss_empty"), None, None, None],
        [f"restart, sqlite with {n:,} queued", n, med("sqlite", "restart"),
         med("sqlite", "rss_restart"), med("sqlite", "hwm_restart"),
         (med("sqlite", "rss_restart") - med("sqlite", "rss_empty")) * 2**20 / n, None],
    ]
    notes = [
        f"{n:,} no-op tasks submitted with no worker connected (the master holds them all), "
        f"median of {a.runs} runs, a fresh master per case and run",
        "seconds to answer: from starting the process until it answered a status query "
        "(restoring the store included); RSS = VmRSS, peak = VmHWM from /proc/PID/status",
        "bytes/task: (RSS with the tasks - RSS of the empty master) / tasks; "
        f"SQLite file {med('sqlite', 'db_mb'):,.0f} MB with WAL; graceful stop (SIGTERM) "
        f"{med('sqlite', 'stop'):.2f} s. {machine()}",
    ]
    print(f"zq master memory and recovery: {notes[0]}")
    print_table(headers, rows)
    for note in notes[1:]:
        print(note)
    write_markdown(SCRIPT, headers, rows, notes)
    chart = {"empty": rows[0][3], "memory, queued": rows[1][3], "sqlite, queued": rows[2][3],
             "sqlite, restarted": rows[4][3]}
    save_chart(str(results_path(f"{SCRIPT}.png")), chart, kind="bar",
               title=f"master RSS with {n:,} queued tasks (median of {a.runs})",
               ylabel="MB")


if __name__ == "__main__":
    main()
