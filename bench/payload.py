"""Payloads: client.map of tasks whose argument is 1 kB, 100 kB or 10 MB of bytes (the
task returns only its length) through a real master (--store memory) and one worker;
tasks/s, MB/s of arguments, and the master's CPU per task (payloads of 64 KiB and more
travel as frames of their own that the master does not decode, so its cost per task
should not grow with the size). The baseline, in the same run, is the raw relay
(bench/relay.py relay_payload) moving the same bytes, one task per message.

With --arrays the argument is a float64 numpy array of that size and the task returns
it (bench.tasks:echo), so the bytes go both ways: since protocol 1.4 an array of 16 KiB
and more travels as a frame of its own, sent from the array's memory and rebuilt over
the received frame (no copy in zq on either side; before, it was copied into the
payload and out of it).

    .venv/bin/python bench/payload.py [--megabytes 200] [--runs 3] [--arrays]
"""

from __future__ import annotations

import os
import sys

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
from relay import relay_payload  # noqa: E402
from tasks import ECHO, SIZE  # noqa: E402

import zq  # noqa: E402

SCRIPT = "payload"
SIZES = {"1 kB": 1_000, "100 kB": 100_000, "10 MB": 10_000_000}
IN_FLIGHT = 64_000_000  # bytes a worker may hold: sets its --prefetch for each size


def prefetch_for(size: int) -> int:
    return max(1, min(1000, IN_FLIGHT // size))


def relay_shape(size: int) -> tuple[int, int]:
    """(tasks per message, messages in flight) for the relay: small payloads batched up
    to ~64 kB a message as zq batches them, in-flight bytes bounded like the worker's."""
    batch = max(1, min(100, 64_000 // max(size, 1)))
    return batch, max(1, min(10, IN_FLIGHT // (batch * size)))


def count_for(size: int, megabytes: float, most: int, least: int) -> int:
    return max(least, min(most, int(megabytes * 1e6 / size)))


def zq_case(size: int, n: int, store: str, pool: str, arrays: bool = False):
    def run() -> tuple[float, float, float, float]:
        data: object = os.urandom(size)
        task = SIZE
        if arrays:
            import numpy as np
            data, task = np.frombuffer(data, dtype=np.uint8).view("<f8").copy(), ECHO
        with Cluster(store=store) as cluster:
            cluster.start_workers(1, pool=pool, concurrency=1, prefetch=prefetch_for(size),
                                  wait=None)
            cluster.start_master()
            cluster.wait_workers()
            with zq.Client(cluster.endpoint) as client:
                rate, master_us, worker_us, _ = timed_map(
                    cluster, client, task, [data] * n, warmup=max(1, min(100, n // 10)))
            rss = cluster.master_memory()[0]
        return rate, master_us, worker_us, rss
    return run


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--megabytes", type=float, default=200,
                        help="arguments moved per size and run (tasks: 3 to 20,000)")
    parser.add_argument("--store", default="memory", help="memory or sqlite")
    parser.add_argument("--pool", default="thread", choices=("thread", "process", "async"))
    parser.add_argument("--arrays", action="store_true",
                        help="numpy arrays (float64) of each size, echoed back by the task")
    a = parser.parse_args(argv)
    megabytes, most, least = (10, 1_000, 2) if a.quick else (a.megabytes, 20_000, 3)
    counts = {label: count_for(size, megabytes, most, least) for label, size in SIZES.items()}

    cases = {}
    for label, size in SIZES.items():
        cases[label] = zq_case(size, counts[label], a.store, a.pool, a.arrays)
        batch, window = relay_shape(size)
        cases[f"relay {label}"] = (lambda k, s, b, w: lambda: relay_payload(k, s, b, window=w))(
            counts[label], size, batch, window)
    with Progress(total=a.runs * len(cases), label="payload runs") as bar:
        med = interleaved(a.runs, cases, bar)

    headers = ["payload", "tasks", "tasks/s", "MB/s", "relay MB/s", "vs relay",
               "master µs/task", "worker µs/task", "master RSS MB", "worker --prefetch"]
    rows = []
    for label, size in SIZES.items():
        rate, master_us, worker_us, rss = med[label]
        relay = med[f"relay {label}"]
        rows.append([label, counts[label], rate, rate * size / 1e6, relay * size / 1e6,
                     rate / relay, master_us, worker_us, rss, prefetch_for(size)])
    what = ("a float64 numpy array of that size; the task returns it, so the bytes go "
            "both ways" if a.arrays else "bytes; the task returns its length")
    notes = [
        f"client.map of tasks whose one argument is the payload ({what}), median of "
        f"{a.runs} runs; a fresh master (--store {a.store}) and worker per case",
        f"worker: zq worker --pool {a.pool} --concurrency 1 --prefetch as in the table "
        f"(about {IN_FLIGHT // 1_000_000} MB of arguments held at most)",
        "MB/s: argument bytes delivered per second (1 MB = 10^6 bytes); relay: "
        "bench/relay.py relay_payload(n, size, batch, window=w): "
        + ", ".join(f"{label} {relay_shape(size)[0]} per message, {relay_shape(size)[1]} "
                    "in flight" for label, size in SIZES.items()),
        "master RSS: after the run; the master lets go of a succeeded task's arguments "
        f"and keeps its result until result_ttl. {machine()}",
    ]
    print(f"zq payloads: {notes[0]}\n{notes[1]}")
    print_table(headers, rows)
    for note in notes[2:]:
        print(note)
    write_markdown(SCRIPT, headers, rows, notes)
    chart = {}
    for row in rows:
        chart[f"zq {row[0]}"] = row[3]
        chart[f"relay {row[0]}"] = row[4]
    save_chart(str(results_path(f"{SCRIPT}.png")), chart, kind="bar", logy=True,
               title=f"argument bytes per second (median of {a.runs} runs)",
               ylabel="MB/s (log)")


if __name__ == "__main__":
    main()
