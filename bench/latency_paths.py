"""Latency through each of issue 18's fast paths, on and off, in ONE cluster: a master
(memory store), a worker with --inline-under on queue "inline" and one without on queue
"plain", a client with the fast result path (ClientConfig.fast_result) and one without;
blocks of round trips of each combination interleaved in rounds, beside blocks of the
raw relay's ping-pong, so a loaded machine's noise falls on every case alike.

    .venv/bin/python bench/latency_paths.py [--n 2000] [--block 100] [--store memory]
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import Progress, percentiles, print_table  # noqa: E402
from harness import Cluster, base_parser, machine, write_markdown  # noqa: E402
from relay import relay_pingpong  # noqa: E402
from tasks import NOOP  # noqa: E402

SCRIPT = "latency_paths"
WORKER = ("--pool", "thread", "--concurrency", "1", "--prefetch", "1000")


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--n", type=int, default=2000, help="timed round trips per case")
    parser.add_argument("--block", type=int, default=100, help="round trips per block")
    parser.add_argument("--store", default="memory", choices=("memory", "sqlite"))
    parser.add_argument("--inline-under", default="1ms", help="the inline worker's flag")
    a = parser.parse_args(argv)
    n, block = (200, 50) if a.quick else (a.n, a.block)
    rounds = max(1, n // block)
    cases = [(client, worker) for worker in ("plain", "inline") for client in ("plain", "fast")]
    times: dict[str, list[float]] = {f"{c}/{w}": [] for c, w in cases}
    times["relay"] = []
    import zq
    with Cluster(store=a.store) as cluster:
        cluster.start_master()
        cluster.start_workers(1, extra=("--queues", "plain"), wait=None)
        cluster.start_workers(1, extra=("--queues", "inline", "--inline-under",
                                        a.inline_under), wait=60)
        config = {"plain": zq.ClientConfig(fast_result=False), "fast": zq.ClientConfig()}
        with zq.Client(cluster.endpoint, config=config["plain"]) as plain, \
                zq.Client(cluster.endpoint, config=config["fast"]) as fast:
            clients = {"plain": plain, "fast": fast}
            submit = {(c, w): clients[c].options(queue=w).submit for c, w in cases}
            for fn in submit.values():  # warm-up: the inline worker proves noop short
                for i in range(100):
                    fn(NOOP, i).result(timeout=30)
            clock = time.perf_counter
            with Progress(total=rounds, label="latency blocks") as bar:
                for r in range(rounds):
                    order = cases[r % len(cases):] + cases[:r % len(cases)]
                    for case in order:
                        fn, out = submit[case], times["/".join(case)]
                        for i in range(block):
                            start = clock()
                            fn(NOOP, i).result(timeout=30)
                            out.append(clock() - start)
                    times["relay"] += relay_pingpong(block, warmup=10)
                    bar.step()
    r50, r99 = percentiles(times["relay"], (50, 99))
    headers = ["client / worker", "round trips", "p50 µs", "p99 µs", "p50 vs relay",
               "p99 vs relay"]
    label = {"plain/plain": "plain client, plain worker (before issue 18)",
             "fast/plain": "fast_result client, plain worker",
             "plain/inline": f"plain client, --inline-under {a.inline_under} worker",
             "fast/inline": f"fast_result client, --inline-under {a.inline_under} worker"}
    rows = []
    for key, name in label.items():
        p50, p99 = percentiles(times[key], (50, 99))
        rows.append([name, len(times[key]), p50 * 1e6, p99 * 1e6, p50 / r50, p99 / r99])
    rows.append(["raw relay ping-pong", len(times["relay"]), r50 * 1e6, r99 * 1e6, 1.0, 1.0])
    notes = [f"one cluster (--store {a.store}), {rounds} rounds of blocks of {block} "
             f"sequential submit(noop).result() per case, the order rotated each round; "
             f"p50/p99 over all blocks of a case. {machine()}",
             f"workers: zq worker {' '.join(WORKER)} --queues plain | --queues inline "
             f"--inline-under {a.inline_under}; relay: relay_pingpong({block}) per round"]
    print_table(headers, rows)
    for note in notes:
        print(note)
    write_markdown(SCRIPT, headers, rows, notes)


if __name__ == "__main__":
    main()
