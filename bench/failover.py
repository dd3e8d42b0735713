"""Failover: two `zq master` processes on one PostgreSQL store (zq.testing.pgserver, a
throwaway server with its default fsyncs), `zq worker` processes and a client given
both masters, a durable stream of tasks, then kill -9 of the active master. Measured
per run: the seconds from the kill to the standby's takeover (its log line "took the
store's lease", wall clock), from the kill to the first result of a task submitted
after the kill (served by the new master, end to end: the client moved, the workers
re-registered), and the tasks lost (accepted or submitted, and no result within the
timeout: must be 0). The workers are registered with the first master before the
stream starts (on a loaded machine a worker may take seconds to start: started late,
it would meet the dead master, not a failover). Medians of --runs runs.

With --cut (root: network namespaces, zq.testing.netns.Lan), each master and worker
runs on a host of its own and the active master's host is cut off (unplugged from the
hosts' switch: its database connection and its peers go dark, no reset sent) instead of
killed: the standby takes over once the lease expires, the workers move after a
liveness window of silence, the client after its own.

    .venv/bin/python bench/failover.py [--runs 3] [--workers 2] [--rate 500]
                                       [--heartbeat 0.25] [--liveness 4] [--cut]
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
from contextlib import ExitStack
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import print_table  # noqa: E402
from harness import base_parser, write_markdown  # noqa: E402
from tasks import NOOP  # noqa: E402

import zq  # noqa: E402
from zq.testing.netns import Lan, unavailable_reason  # noqa: E402
from zq.testing.pgserver import PgServer, PgUnavailable  # noqa: E402
from zq.testing.processes import Proc, free_port, query, wait_until  # noqa: E402

SCRIPT = "failover"
APP = "bench.tasks"
TOOK = re.compile(r"^(\S+ \S+) INFO zq\.master: took the store's lease", re.M)


def took_at(log: str) -> float | None:
    """Wall-clock time of the takeover line, from the log's own timestamp."""
    found = TOOK.search(log)
    if found is None:
        return None
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def registered(endpoint: str) -> set[str]:
    """The workers registered with the master at endpoint."""
    status = query(endpoint)
    return {w["name"] for w in status["workers"]} if status else set()


def one_run(pg: PgServer, a, lan: Lan | None = None) -> tuple[float, float, int, int]:
    """(takeover s, first new result s, tasks submitted, tasks lost). With `lan`, each
    master and worker on a host of its own, and the first master's host cut off instead
    of the master killed."""
    url = pg.create_database("zq_" + uuid.uuid4().hex[:12])
    tmp = Path(tempfile.mkdtemp(prefix="zq-failover-"))
    where = (lambda host: "127.0.0.1") if lan is None else lan.addr
    prefix = (lambda host: None) if lan is None else lan.exec_prefix
    ends = [f"tcp://{where(m)}:{free_port()}" for m in ("a", "b")]
    both = ",".join(ends)
    common = ["--store", url, "--heartbeat-interval", str(a.heartbeat),
              "--heartbeat-liveness", str(a.liveness), "--log-level", "info",
              *(["--insecure"] if lan is not None else [])]
    procs: list[Proc] = []
    try:
        first = Proc(["master", "--bind", ends[0], *common], tmp / "a.log", prefix("a"))
        procs.append(first)
        wait_until(lambda: took_at(first.output()), 60, "the first master to serve")
        second = Proc(["master", "--bind", ends[1], *common], tmp / "b.log", prefix("b"))
        procs.append(second)
        wait_until(lambda: "standby:" in second.output(), 60, "the standby")
        for k in range(a.workers):
            procs.append(Proc(["worker", "--connect", both, "--app", APP, "--pool", "thread",
                               "--concurrency", "4", "--name", f"w{k}", "--log-level",
                               "warning"], tmp / f"w{k}.log", prefix(f"w{k}")))
        names = {f"w{k}" for k in range(a.workers)}
        wait_until(lambda: names <= registered(ends[0]), 60, "the workers to register")
        fail = first.kill if lan is None else partial(lan.cut, "a")
        return storm(a, ends, fail, second)
    finally:
        if lan is not None:
            lan.cut("a", off=False)
        for p in reversed(procs):
            p.close()


def storm(a, ends: list[str], fail: Callable[[], None],
          second: Proc) -> tuple[float, float, int, int]:
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
                fail()
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
    parser.add_argument("--cut", action="store_true",
                        help="cut the active master's host off instead of killing it: "
                        "masters and workers in network namespaces (root)")
    a = parser.parse_args(argv)
    if a.quick:
        a.runs, a.before, a.after, a.rate = 1, 1.0, 2.0, 100
    with ExitStack() as stack:
        lan = None
        if a.cut:
            why = unavailable_reason()
            if why is not None:
                print(f"failover --cut needs network namespaces: {why}", file=sys.stderr)
                return
            lan = stack.enter_context(Lan(["a", "b", *(f"w{k}" for k in range(a.workers))]))
        try:
            pg = (PgServer.start(fast=False) if lan is None else
                  PgServer.start(fast=False, listen=(lan.root_addr,), trust=(lan.subnet,)))
        except PgUnavailable as e:
            print(f"failover needs PostgreSQL: {e}", file=sys.stderr)
            return
        runs = measure(a, pg, lan)
    report(a, runs)


def measure(a, pg: PgServer, lan: Lan | None) -> list[tuple[float, float, int, int]]:
    runs = []
    try:
        for k in range(a.runs):
            runs.append(one_run(pg, a, lan))
            print(f"run {k + 1}: takeover {runs[-1][0]:.3f} s, first new result "
                  f"{runs[-1][1]:.3f} s, {runs[-1][2]} tasks, {runs[-1][3]} lost",
                  file=sys.stderr)
    finally:
        pg.stop()
    return runs


def report(a, runs: list[tuple[float, float, int, int]]) -> None:
    window = a.heartbeat * a.liveness
    case = "active master's host cut off" if a.cut else "kill -9 of the active master"
    rows = [[case, window,
             statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs),
             sum(r[2] for r in runs), sum(r[3] for r in runs)]]
    headers = ["case", "liveness window s", "takeover s (median)",
               "first new result s (median)", "tasks", "lost"]
    print_table(headers, rows)
    write_markdown(SCRIPT + ("-cut" if a.cut else ""), headers, rows, [
        f"{a.runs} runs, {a.workers} thread workers, {a.rate:g} tasks/s submitted, "
        f"{'cut' if a.cut else 'kill'} "
        f"after {a.before:g} s, {a.after:g} s more submitted; each run: "
        + "; ".join(f"{r[0]:.3f} / {r[1]:.3f} s, {r[3]} lost of {r[2]}" for r in runs)])


if __name__ == "__main__":
    main()
