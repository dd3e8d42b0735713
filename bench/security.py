"""What keys cost: throughput and round-trip latency of the same cluster without and with
CurveZMQ keys (zq master --secret-key ...), measured in the same run.

Throughput is throughput.py's case (client.map of N no-op tasks, --store memory, one
worker); latency is latency.py's (one submit().result() at a time). With keys every
message is encrypted and the master checks each message's key against its role.

    .venv/bin/python bench/security.py [--n 50000] [--round-trips 1000] [--runs 3]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import latency  # noqa: E402
import throughput  # noqa: E402
from common import Progress, print_table, save_chart, share  # noqa: E402
from harness import base_parser, interleaved, machine, results_path, write_markdown  # noqa: E402

SCRIPT = "security"
POOL, PREFETCH = "thread", 1000


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--n", type=int, default=50_000, help="tasks per map")
    parser.add_argument("--round-trips", type=int, default=1_000, help="timed round trips")
    a = parser.parse_args(argv)
    n, trips = (2_000, 100) if a.quick else (a.n, a.round_trips)
    warmup = min(1_000, max(n // 10, 1))

    cases = {}
    for keys in (False, True):
        cases[("map", keys)] = throughput.zq_case("memory", 1, n, POOL, 1, PREFETCH, warmup,
                                                  keys=keys)
        cases[("trip", keys)] = latency.zq_case("memory", trips, 100, POOL, PREFETCH,
                                                keys=keys)
    with Progress(total=a.runs * len(cases), label="security runs") as bar:
        med = interleaved(a.runs, cases, bar)

    headers = ["case", "tasks/s", "master µs/task", "worker µs/task", "client µs/task",
               "p50 µs", "p99 µs"]
    rows = []
    for keys in (False, True):
        rate, master_us, worker_us, client_us = med[("map", keys)]
        p50, p99 = med[("trip", keys)]
        rows.append(["with keys (CurveZMQ)" if keys else "no keys", rate, master_us,
                     worker_us, client_us, p50 * 1e6, p99 * 1e6])
    plain, keyed = rows
    notes = [
        f"--store memory, 1 worker (zq worker --pool {POOL} --concurrency 1 --prefetch "
        f"{PREFETCH}); tasks/s: client.map of {n:,} no-op tasks after {warmup:,} untimed; "
        f"p50/p99: {trips:,} sequential submit().result() after 100 untimed; median of "
        f"{a.runs} runs, cases interleaved, a fresh cluster per case and run",
        f"with keys / without: throughput {share(keyed[1], plain[1])}, master CPU per task "
        f"{share(keyed[2], plain[2])}, p50 {share(keyed[5], plain[5])}. {machine()}",
    ]
    print(f"zq with and without keys: {notes[0]}")
    print_table(headers, rows)
    print(notes[1])
    write_markdown(SCRIPT, headers, rows, notes)
    save_chart(str(results_path(f"{SCRIPT}.png")),
               {row[0]: row[1] for row in rows}, kind="bar",
               title=f"client.map of {n:,} no-op tasks (median of {a.runs})",
               ylabel="tasks/s")


if __name__ == "__main__":
    main()
