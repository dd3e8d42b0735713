"""Submit rate: how fast one thread can call client.submit() against a real master with
no workers, timed two ways: the submit() calls alone, and until the master has
acknowledged (ACCEPTED) every one of them (client.close() returns once nothing is
unacknowledged). Memory and SQLite store. The baseline, timed in the same run, is the
Python floor of a submission: an id string, msgpack of (args, kwargs), a list append.

    .venv/bin/python bench/submit_rate.py [--n 100000] [--runs 3]
"""

from __future__ import annotations

import gc
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import msgpack  # noqa: E402
from common import Progress, print_table, save_chart  # noqa: E402
from harness import Cluster, base_parser, interleaved, machine, results_path, write_markdown  # noqa: E402
from tasks import NOOP  # noqa: E402

import zq  # noqa: E402

SCRIPT = "submit_rate"


def zq_case(store: str, n: int):
    def run() -> tuple[float, float, float]:
        with Cluster(store=store) as cluster:
            cluster.start_master()
            client = zq.Client(cluster.endpoint)
            try:
                for i in range(100):  # warm up: connect, cache the task's spec
                    client.submit(NOOP, i)
                time.sleep(0.2)
                submit, futures = client.submit, []
                keep = futures.append
                start = time.perf_counter()
                for i in range(n):
                    keep(submit(NOOP, i))
                calls = time.perf_counter() - start
            finally:
                client.close(timeout=120)  # returns once every submission is acknowledged
            acked = time.perf_counter() - start
            queued = cluster.status()["counts"].get("queued", 0)
            if queued != n + 100:
                raise RuntimeError(f"{queued} tasks queued, expected {n + 100}")
        return n / calls, n / acked, calls * 1e6 / n
    return run


def floor_case(n: int):
    """What any client must do per submission, without a socket or a thread."""
    def run() -> tuple[float, float, float]:
        prefix, pack, entries = os.urandom(8).hex(), msgpack.Packer().pack, []
        add, options = entries.append, {}
        start = time.perf_counter()
        for i in range(n):
            add((prefix + str(i), NOOP, pack(((i,), options)), options))
        elapsed = time.perf_counter() - start
        return n / elapsed, float("nan"), elapsed * 1e6 / n
    return run


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--n", type=int, default=100_000,
                        help="submit() calls per run (the client blocks past max_unacked, "
                             "100,000 by default)")
    a = parser.parse_args(argv)
    n = 5_000 if a.quick else a.n

    cases = {store: zq_case(store, n) for store in ("memory", "sqlite")}
    cases["floor"] = floor_case(n)
    gc.collect()
    with Progress(total=a.runs * len(cases), label="submit runs") as bar:
        med = interleaved(a.runs, cases, bar)

    floor = med["floor"][0]
    headers = ["case", "submissions", "submit() calls/s", "µs per call", "acknowledged/s",
               "calls vs floor"]
    rows = []
    for store in ("memory", "sqlite"):
        calls, acked, us = med[store]
        rows.append([f"zq client.submit(), --store {store}", n, calls, us, acked,
                     calls / floor])
    rows.append(["floor: id + msgpack + append", n, floor, med["floor"][2], None, 1.0])
    notes = [
        f"{n:,} submit() calls from one thread against a master with no workers, after 100 "
        f"untimed ones; median of {a.runs} runs, a fresh master per case and run",
        "calls/s: the submit() calls alone; acknowledged/s: from the first call until the "
        "master acknowledged the last one",
        f"floor: the same ids and msgpack payloads built in a plain loop. {machine()}",
    ]
    print(f"zq submit rate: {notes[0]}\n{notes[1]}")
    print_table(headers, rows)
    print(notes[2])
    write_markdown(SCRIPT, headers, rows, notes)
    chart = {"memory calls": rows[0][2], "memory acked": rows[0][4],
             "sqlite calls": rows[1][2], "sqlite acked": rows[1][4], "floor": floor}
    save_chart(str(results_path(f"{SCRIPT}.png")), chart, kind="bar",
               title=f"submit() from one thread ({n:,}, median of {a.runs} runs)",
               ylabel="submissions/s")


if __name__ == "__main__":
    main()
