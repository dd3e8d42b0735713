"""Failover: two `zq master` processes on one PostgreSQL store (zq.testing.pgserver, a
throwaway server with its default fsyncs), `zq worker` processes and a client given
both masters, a durable stream of tasks, then kill -9 of the active master. Measured
per run: the seconds from the kill to the standby's takeover (its log line "took the
store's lease", wall clock), from the kill to the first result of a task submitted
after the kill (served by the new master, end to end: the client moved, the workers
re-registered), and the tasks lost (accepted or submitted, and no result within the
timeout: must be 0). Medians of --runs runs.

    .venv/bin/python bench/failover.py [--runs 3] [--workers 2] [--rate 500]
                                       [--heartbeat 0.25] [--liveness 4]
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import print_table  # noqa: E402
from harness import base_parser, write_markdown  # noqa: E402
from tasks import NOOP  # noqa: E402

import zq  # noqa: E402
from zq.testing.pgserver import PgServer, PgUnavailable  # noqa: E402
from zq.testing.processes import Proc, free_port, wait_until  # noqa: E402

SCRIPT = "failover"
APP = "bench.tasks"
TOOK = re.compile(r"^(\S+ \S+) INFO zq\.master: took the store's lease", re.M)


def took_at(log: str) -> float | None:
    """Wall-clock time of the takeover line, from the log's own timestamp."""
    found = TOOK.search(log)
    if found is None:
        return None
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def one_run(pg: PgServer, a) -> tuple[float, float, int, int]:
    """(takeover s, first new result s, tasks submitted, tasks lost)."""
    url = pg.create_database("zq_" + uuid.uuid4().hex[:12])
    tmp = Path(tempfile.mkdtemp(prefix="zq-failover-"))
    ends = [f"tcp://127.0.0.1:{free_port()}" for _ in range(2)]
    both = ",".join(ends)
    common = ["--store", url, "--heartbeat-interval", str(a.heartbeat),
              "--heartbeat-liveness", str(a.liveness), "--log-level", "info"]
    procs: list[Proc] = []
    try:
        first = Proc(["master", "--bind", ends[0], *common], tmp / "a.log")
        procs.append(first)
        wait_until(lambda: took_at(first.output()), 60, "the first master to serve")
        second = Proc(["master", "--bind", ends[1], *common], tmp / "b.log")
        procs.append(second)
        wait_until(lambda: "standby:" in second.output(), 60, "the standby")
        for k in range(a.workers):
            procs.append(Proc(["worker", "--connect", both, "--app", APP, "--pool", "thread",
                               "--concurrency", "4", "--name", f"w{k}", "--log-level",
                               "warning"], tmp / f"w{k}.log"))
        return storm(a, ends, first, second)
    finally:
        for p in reversed(procs):
            p.close()


def storm(a, ends: list[str], first: Proc, second: Proc) -> tuple[float, float, int, int]:
    futures: list = []
    after_kill: list = []  # (future) of tasks submitted after the kill
    killed = threading.Event()
    first_new: list[float] = []
    lock = threading.Lock()

    def on_new(_future) -> None:
        with lock:
            if not first_new:
                first_new.append(time.monotonic())

    with zq.Client(ends) as client:
        period = 1.0 / a.rate
        t0 = time.monotonic()
        kill_at = t0 + a.before
        end_at = kill_at + a.after
        kill_mono = kill_wall = 0.0
        i = 0
        while time.monotonic() < end_at:
            now = time.monotonic()
            if not killed.is_set() and now >= kill_at:
                kill_wall, kill_mono = time.time(), time.monotonic()
                first.kill()
                killed.set()
            f = client.submit(NOOP, i)
            futures.append(f)
            if killed.is_set():
                after_kill.append(f)
                f.add_done_callback(on_new)
            i += 1
            time.sleep(max(0.0, t0 + i * period - time.monotonic()))
        lost = 0
        deadline = time.monotonic() + a.timeout
        for f in futures:
            try:
                f.result(timeout=max(0.1, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - a task without its result is lost
                lost += 1
    took = took_at(second.output())
    takeover = (took - kill_wall) if took is not None else float("nan")
    first_result = (first_new[0] - kill_mono) if first_new else float("nan")
    return takeover, first_result, len(futures), lost


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=500, help="tasks submitted per second")
    parser.add_argument("--before", type=float, default=3.0, help="seconds before the kill")
    parser.add_argument("--after", type=float, default=5.0, help="seconds after the kill")
    parser.add_argument("--heartbeat", type=float, default=0.25)
    parser.add_argument("--liveness", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds every result may take after the stream ends")
    a = parser.parse_args(argv)
    if a.quick:
        a.runs, a.before, a.after, a.rate = 1, 1.0, 2.0, 100
    try:
        pg = PgServer.start(fast=False)
    except PgUnavailable as e:
        print(f"failover needs PostgreSQL: {e}", file=sys.stderr)
        return
    runs = []
    try:
        for k in range(a.runs):
            runs.append(one_run(pg, a))
            print(f"run {k + 1}: takeover {runs[-1][0]:.3f} s, first new result "
                  f"{runs[-1][1]:.3f} s, {runs[-1][2]} tasks, {runs[-1][3]} lost",
                  file=sys.stderr)
    finally:
        pg.stop()
    window = a.heartbeat * a.liveness
    rows = [["kill -9 of the active master", window,
             statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs),
             sum(r[2] for r in runs), sum(r[3] for r in runs)]]
    headers = ["case", "liveness window s", "takeover s (median)",
               "first new result s (median)", "tasks", "lost"]
    print_table(headers, rows)
    write_markdown(SCRIPT, headers, rows, [
        f"{a.runs} runs, {a.workers} thread workers, {a.rate:g} tasks/s submitted, kill "
        f"after {a.before:g} s, {a.after:g} s more submitted; each run: "
        + "; ".join(f"{r[0]:.3f} / {r[1]:.3f} s, {r[3]} lost of {r[2]}" for r in runs)])


if __name__ == "__main__":
    main()
