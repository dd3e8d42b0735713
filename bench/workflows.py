"""Workflows through zq next to Celery's canvas (Redis broker and result backend), in one
run: a chord of N tasks (N members, then a callback given the list of their results) and
a chain of M steps (each result the first argument of the next).

    python bench/workflows.py [--chord 10000] [--chain 1000] [--runs 3]
                              [--systems zq,celery] [--quick]

It sets itself up as bench/peers.py does, with its machinery: Celery runs from
bench/.peers-venv (made on the first run, zq installed there from this tree), against a
private redis-server on a free 127.0.0.1 port (installed with apt-get when missing), and
the script runs itself again inside that virtualenv. --quick (a smoke run: chord 300,
chain 30, one run) measures zq only, in the current interpreter, and says why Celery is
skipped: setting it up takes minutes and needs the package registries.

Each system gets one worker running two tasks at a time (zq: a process pool with
--prefetch 1000, master --store memory; Celery: prefork -c 2, Redis without persistence).
Each round starts each system's worker(s) afresh, then runs a fresh client
(bench/peer_systems/measure_flows.py) per workflow, which submits the whole workflow at
once and waits for its final result, timed from building the workflow to that result.
The rounds go round the systems in turn; reported are medians, tasks/s and the Celery/zq time ratio,
printed and written to bench/results/workflows.md (and .png).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import peers  # noqa: E402  (bench/ is on sys.path: the peers' machinery, reused)
from peers import Proc, RedisServer, free_port, wait_port  # noqa: E402

MEASURE = peers.TASKS / "measure_flows.py"
SYSTEMS = ("zq", "celery")
WORKLOADS = ("chord", "chain")
DEFAULTS = {"chord": 10_000, "chain": 1_000, "runs": 3}
QUICK = {"chord": 300, "chain": 30, "runs": 1}
QUICK_SKIP = ("Celery skipped: --quick measures zq only (Celery needs bench/.peers-venv "
              "and a redis-server, minutes of setup from the package registries); run "
              "without --quick for the comparison")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chord", type=int, help="tasks in the chord's group (10000)")
    parser.add_argument("--chain", type=int, help="steps in the chain (1000)")
    parser.add_argument("--runs", type=int, help="median of this many runs (3)")
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help="comma-separated, of zq, celery")
    parser.add_argument("--timeout", type=float, default=900,
                        help="seconds one workflow may take (900)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: chord 300, chain 30, 1 run, zq only")
    parser.add_argument("--venv", type=Path, default=peers.DEFAULT_VENV,
                        help="the peers' virtualenv (made if missing)")
    a = parser.parse_args(argv)
    for key, value in (QUICK if a.quick else DEFAULTS).items():
        if getattr(a, key) is None:
            setattr(a, key, value)
    a.systems = a.systems.split(",")
    if any(s not in SYSTEMS for s in a.systems):
        parser.error(f"--systems takes {', '.join(SYSTEMS)}")
    if a.quick and "celery" in a.systems:
        a.systems.remove("celery")
        a.skipped = QUICK_SKIP
    else:
        a.skipped = ""
    if min(a.chord, a.chain, a.runs) < 1 or not a.systems:
        parser.error("--chord, --chain and --runs must be at least 1, and --systems not empty")
    return a


def workers(system: str, python: str, env: dict, logdir: Path, endpoint: str) -> list[Proc]:
    if system == "zq":
        return [Proc("zq-worker", [python, "-m", "zq", "worker", "--connect", endpoint,
                                   "--app", "zq_flow_tasks", "--pool", "process",
                                   "--concurrency", "2", "--prefetch", "1000",
                                   "--log-level", "warning"], logdir, env, logdir)]
    return [Proc("celery-worker", [python, "-m", "celery", "-A", "celery_flow_tasks",
                                   "worker", "-P", "prefork", "-c", "2", "-l", "WARNING",
                                   "-n", f"flows{os.getpid()}@%h"], logdir, env, logdir)]


def run_round(system: str, a: argparse.Namespace, redis: RedisServer | None,
              logdir: Path) -> dict[str, dict]:
    """Start the system's worker (and zq's master), run one client per workload in turn,
    stop them all; each workload's measure_flows.py JSON."""
    env = peers.child_env(redis.url if redis else "redis://127.0.0.1:1")
    # zq from this tree, whichever interpreter runs (--quick: the current one)
    env["PYTHONPATH"] = os.pathsep.join([str(peers.ROOT), env["PYTHONPATH"]])
    python = sys.executable
    procs: list[Proc] = []
    endpoint = ""
    sizes = {"chord": a.chord, "chain": a.chain}
    try:
        if system == "zq":
            port = free_port()
            endpoint = f"tcp://127.0.0.1:{port}"
            procs.append(Proc("zq-master", [python, "-m", "zq", "master", "--bind", endpoint,
                                            "--store", "memory", "--log-level", "warning"],
                              logdir, env, logdir))
            wait_port(port, procs[0])
        elif redis is not None:
            redis.flush()
        procs += workers(system, python, env, logdir, endpoint)
        out = {}
        for workload in WORKLOADS:
            cmd = [python, str(MEASURE), system, workload, "--n", str(sizes[workload]),
                   "--timeout", str(a.timeout), "--zq", endpoint or "tcp://127.0.0.1:1"]
            out[workload] = peers.measure_once(cmd, env, logdir, a.timeout, procs)
        return out
    finally:
        for p in reversed(procs):
            p.stop()


def measure_all(a: argparse.Namespace, redis: RedisServer | None, logdir: Path
                ) -> dict[tuple[str, str], list[dict]]:
    """Round r runs every system once, each system's worker started afresh and given
    both workloads in turn (so a shared machine's drifting load touches them alike)."""
    from common import Progress
    runs: dict[tuple[str, str], list[dict]] = {(s, w): [] for s in a.systems
                                               for w in WORKLOADS}
    with Progress(total=a.runs * len(a.systems), label="workflow rounds", after=0) as bar:
        for _ in range(a.runs):
            for system in a.systems:
                for workload, result in run_round(system, a, redis, logdir).items():
                    runs[(system, workload)].append(result)
                bar.step()
    return runs


HEADERS = ["workflow", "system", "tasks", "seconds", "tasks/s", "celery/zq time"]


def table(runs: dict[tuple[str, str], list[dict]], a: argparse.Namespace) -> list[list]:
    medians = {k: statistics.median(r["seconds"] for r in rs) for k, rs in runs.items()}
    rows = []
    for workload in WORKLOADS:
        label = (f"chord of {a.chord:,}" if workload == "chord" else f"chain of {a.chain:,}")
        zq_s = medians.get(("zq", workload))
        for system in a.systems:
            secs = medians[(system, workload)]
            tasks = runs[(system, workload)][0]["tasks"]
            ratio = round(secs / zq_s, 2) if zq_s and system != "zq" else None
            rows.append([label, system, tasks, round(secs, 3), round(tasks / secs), ratio])
    return rows


def main(argv: list[str] | None = None) -> None:
    a = parse(argv)
    if not a.quick and "celery" in a.systems:
        peers.run_inside_venv(a.venv.resolve(), Path(__file__), argv)
    from common import print_table, save_chart
    from harness import results_path, write_markdown

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    redis: RedisServer | None = None
    logdir = Path(tempfile.mkdtemp(prefix="zq-workflows-"))
    try:
        if "celery" in a.systems:
            redis = RedisServer(peers.ensure_redis_server(), logdir)
        runs = measure_all(a, redis, logdir)
    except BaseException:
        print(f"workflows: stopped; the logs are in {logdir}", file=sys.stderr)
        raise
    finally:
        if redis is not None:
            redis.stop()
    shutil.rmtree(logdir, ignore_errors=True)
    rows = table(runs, a)
    versions: dict[str, str] = {}
    for rs in runs.values():
        for r in rs:
            versions.update(r["versions"])
    if redis is not None:
        versions["redis-server"] = redis.version.split(" sha=")[0]
    print(f"workflows, one worker running 2 tasks at a time per system; median of "
          f"{a.runs} run(s); {os.cpu_count()} cores")
    print_table(HEADERS, rows)
    notes = ["seconds: from building the workflow to its final result in the client, "
             "the whole workflow submitted at once; medians of the runs",
             "tasks: a chord runs its members and the callback; a chain, its steps",
             "celery/zq time: above 1, zq finished first",
             "zq: master --store memory, one worker --pool process --concurrency 2 "
             "--prefetch 1000; Celery: prefork -c 2, Redis broker and result backend "
             "(no persistence)",
             "each run: " + "; ".join(f"{s} {w} " + ", ".join(f"{r['seconds']:.2f}s"
                                                             for r in rs)
                                       for (s, w), rs in runs.items()),
             "versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))]
    if a.skipped:
        print(a.skipped)
        notes.append(a.skipped)
    path = write_markdown("workflows", HEADERS, rows, notes)
    print(f"wrote {path}")
    save_chart(str(results_path("workflows.png")),
               {f"{r[0]}\n{r[1]}": r[4] for r in rows}, kind="bar",
               title="workflows: tasks/s (higher is better)", ylabel="tasks/s")


if __name__ == "__main__":
    main()
