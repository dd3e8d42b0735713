"""Throughput: client.map of N no-op tasks through a real master and real workers, with
the memory, the SQLite and (when a server can be started here, zq.testing.pgserver:
server defaults, an fsync per commit) the PostgreSQL store, one and two workers;
tasks/s and the CPU each process spends per task, against the raw pyzmq relay
(bench/relay.py) measured in the same run.

Each case starts a fresh master (and a fresh SQLite file or database) and fresh workers,
runs a small untimed warm-up map, then times one map of N tasks from the call to the
last result.
Master and worker CPU come from /proc/PID/stat; the client runs in this process.

    .venv/bin/python bench/throughput.py [--n 100000] [--runs 3] [--prefetch 1000]
                                         [--stores memory,sqlite,postgres] [--metrics]
                                         [--workers 1,2]

--metrics adds, per case, the same case with `zq master --metrics` (nothing scrapes it:
the cost measured is the master's own bookkeeping), interleaved with the case without.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from contextlib import ExitStack, contextmanager
from typing import Iterator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import Progress, print_table, save_chart  # noqa: E402
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

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from zq.testing.pgserver import PgServer, PgUnavailable  # noqa: E402
from zq.testing.processes import free_port, query, wait_until  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = "throughput"


def zq_case(store: str, workers: int, n: int, pool: str, concurrency: int,
            prefetch: int, warmup: int, keys: bool = False, pg: PgServer | None = None,
            metrics: bool = False, subscriber: bool = False):
    def run() -> tuple[float, float, float, float]:
        spec = store
        if store == "postgres":  # a fresh database per run, as a fresh SQLite file
            assert pg is not None
            spec = pg.create_database("bench_" + uuid.uuid4().hex[:12])
        with Cluster(store=spec, keys=keys) as cluster:
            cluster.start_workers(workers, pool=pool, concurrency=concurrency,
                                  prefetch=prefetch, wait=None)  # they start meanwhile
            cluster.start_master(extra=["--metrics", f"127.0.0.1:{free_port()}"]
                                 if metrics else [])
            cluster.wait_workers()
            with ExitStack() as stack:
                if subscriber:
                    stack.enter_context(event_subscriber(cluster.endpoint))
                with cluster.client() as client:
                    return timed_map(cluster, client, NOOP, range(n), warmup=warmup)
    return run


@contextmanager
def event_subscriber(endpoint: str) -> Iterator[None]:
    """`zq events --json` reading every event (printed to /dev/null) for the whole run;
    subscribed (the master's status says so) before the map starts."""
    proc = subprocess.Popen([sys.executable, "-m", "zq", "events", "--json", "--connect",
                             endpoint], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    try:
        wait_until(lambda: (query(endpoint) or {}).get("subscribers") == 1, 20,
                   "the event subscriber")
        yield
    finally:
        proc.kill()
        proc.wait(10)


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="tasks per map")
    parser.add_argument("--pool", default="thread", choices=("thread", "process", "async"))
    parser.add_argument("--concurrency", type=int, default=1, help="per worker")
    parser.add_argument("--prefetch", type=int, default=1000,
                        help="zq worker --prefetch (set explicitly; see the notes)")
    parser.add_argument("--stores", default="memory,sqlite,postgres",
                        help="comma-separated; postgres runs only where a server can start")
    parser.add_argument("--workers", default="1,2",
                        help="comma-separated worker counts, a case each (e.g. 1,2,8)")
    parser.add_argument("--metrics", action="store_true",
                        help="also each case with zq master --metrics, interleaved")
    parser.add_argument("--subscriber", action="store_true",
                        help="a `zq events --json` subscriber reads every event meanwhile")
    a = parser.parse_args(argv)
    with ExitStack() as stack:
        run_cases(a, stack)


def start_pg(stores: list[str], stack: ExitStack) -> PgServer | None:
    """The bench's PostgreSQL server (server defaults: an fsync per commit), or None
    (said why) when it cannot run here."""
    if "postgres" not in stores:
        return None
    try:
        return stack.enter_context(PgServer.start(fast=False))
    except PgUnavailable as e:
        print(f"PostgreSQL store skipped: {e}", file=sys.stderr)
        stores.remove("postgres")
        return None


def run_cases(a, stack: ExitStack) -> None:
    stores = [s for s in a.stores.split(",") if s]
    pg = start_pg(stores, stack)
    n = 2_000 if a.quick else a.n
    warmup = min(1_000, max(n // 10, 1))
    worker = f"--pool {a.pool} --concurrency {a.concurrency} --prefetch {a.prefetch}"

    variants = [False, True] if a.metrics else [False]
    counts = [int(w) for w in a.workers.split(",") if w]
    cases = {}
    for store in stores:
        for workers in counts:
            for metrics in variants:
                cases[(store, workers, metrics)] = zq_case(
                    store, workers, n, a.pool, a.concurrency, a.prefetch, warmup, pg=pg,
                    metrics=metrics, subscriber=a.subscriber)
    cases["relay"] = lambda: relay_throughput(n, 100)
    cases["relay tracked"] = lambda: relay_throughput(n, 100, track=True)
    with Progress(total=a.runs * len(cases), label="throughput runs") as bar:
        med = interleaved(a.runs, cases, bar)

    relay, tracked = med["relay"], med["relay tracked"]
    headers = ["case", "tasks", "tasks/s", "vs relay", "vs relay tracked",
               "master µs/task", "worker µs/task", "client µs/task"]
    rows = []
    for store in stores:
        for workers in counts:
            for metrics in variants:
                rate, master_us, worker_us, client_us = med[(store, workers, metrics)]
                rows.append([f"zq --store {store}, {workers} worker{'s' if workers > 1 else ''}"
                             + (", --metrics" if metrics else ""),
                             n, rate, rate / relay, rate / tracked, master_us, worker_us,
                             client_us])
    rows.append(["raw relay, batch=100", n, relay, 1.0, relay / tracked, None, None, None])
    rows.append(["raw relay, batch=100, master tracks ids", n, tracked, tracked / relay, 1.0,
                 None, None, None])

    notes = [
        f"client.map of {n:,} no-op tasks ({NOOP}), median of {a.runs} runs, "
        f"{warmup:,} untimed warm-up tasks first; a fresh master and workers per case",
        f"workers: zq worker {worker} (prefetch set explicitly for throughput)"
        + (", one `zq events --json` subscriber" if a.subscriber else ""),
        *ratios(med, stores, counts),
        *metrics_cost(med, stores, variants),
        "relay: bench/relay.py relay_throughput(n, batch=100[, track=True]) in the same run",
        f"CPU from /proc/PID/stat (10 ms ticks) over the timed map; client = this process. "
        f"{machine()}",
    ]
    print(f"zq throughput: {notes[0]}\n{notes[1]}")
    print_table(headers, rows)
    for note in notes[2:]:
        print(note)
    write_markdown(SCRIPT, headers, rows, notes)
    labels = [f"{s} {w}w{' m' if m else ''}" for s in stores for w in (1, 2)
              for m in variants] + ["relay", "relay tracked"]
    chart = {label: row[2] for label, row in zip(labels, rows)}
    save_chart(str(results_path(f"{SCRIPT}.png")), chart, kind="bar", logy=True,
               title=f"client.map of {n:,} no-op tasks (median of {a.runs})",
               ylabel="tasks/s (log)")


def metrics_cost(med: dict, stores: list[str], variants: list[bool]) -> list[str]:
    """With --metrics: what it costs per case, in throughput and master CPU per task."""
    if True not in variants:
        return []
    out = []
    for store in stores:
        for workers in (1, 2):
            off, on = med[(store, workers, False)], med[(store, workers, True)]
            out.append(f"--metrics, {store} {workers}w: {on[0] / off[0] - 1:+.1%} tasks/s, "
                       f"master {on[1] - off[1]:+.1f} µs/task ({on[1] / off[1] - 1:+.1%})")
    return out


def ratios(med: dict, stores: list[str], counts: list[int]) -> list[str]:
    """One note per pair of stores measured (durable/memory, PostgreSQL/SQLite) at each
    worker count, and each count against 1 worker."""
    names = {"memory": "memory", "sqlite": "SQLite", "postgres": "PostgreSQL"}
    out = []
    for slow, fast in (("sqlite", "memory"), ("postgres", "memory"), ("postgres", "sqlite")):
        if slow in stores and fast in stores:
            out.append(f"{names[slow]}/{names[fast]}: " + ", ".join(
                f"{med[(slow, w, False)][0] / med[(fast, w, False)][0]:.0%} with {w} "
                f"worker{'s' if w > 1 else ''}" for w in counts))
    if 1 in counts:
        for w in (w for w in counts if w > 1):
            out.append(f"{w} workers/1 worker: " + ", ".join(
                f"{med[(s, w, False)][0] / med[(s, 1, False)][0]:.0%} ({names[s]})"
                for s in stores))
    return out

if __name__ == "__main__":
    main()
