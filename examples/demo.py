"""`make demo`: a local master on the embedded SQLite store, two workers, a real workload.

Starts everything as real processes on 127.0.0.1, prints what happened and the
throughput, and stops everything again (also on Ctrl-C or an error). ``--quick`` runs
the same steps on less work (the test suite runs it so).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import demo_tasks as tasks  # noqa: E402

import zq  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=f"{HERE}{os.pathsep}{HERE.parent}")
    return subprocess.Popen([sys.executable, "-m", "zq", *args], cwd=HERE, env=env,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_for_workers(client: zq.Client, n: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while len(client.status()["workers"]) < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"workers did not register within {timeout}s; see the logs")
        time.sleep(0.1)


def section(title: str) -> None:
    print(f"\n== {title}")


def run(client: zq.Client, scratch: Path, workers: list[subprocess.Popen],
        quick: bool = False) -> None:
    noops, primes_below = (2_000, 40_000) if quick else (50_000, 400_000)
    section(f"throughput: {noops:,} no-op tasks through client.map")
    t0 = time.perf_counter()
    n = sum(1 for _ in client.map(tasks.noop, range(noops)))
    elapsed = time.perf_counter() - t0
    print(f"{n:,} tasks in {elapsed:.2f}s = {n / elapsed:,.0f} tasks/s "
          "(durable: every submission committed to SQLite before it was acknowledged)")

    section(f"CPU work spread over the workers: primes below {primes_below:,} in 40 chunks")
    t0 = time.perf_counter()
    step = primes_below // 40
    bounds = [(i * step, (i + 1) * step) for i in range(40)]
    total = sum(client.map(tasks.count_primes, *zip(*bounds)))
    print(f"{total:,} primes, {time.perf_counter() - t0:.2f}s")

    section("word counts of README.md, one task per line")
    lines = [ln for ln in (HERE.parent / "README.md").read_text().splitlines() if ln.strip()]
    counts: dict[str, int] = {}
    for part in client.map(tasks.word_count, lines):
        for word, c in part.items():
            counts[word] = counts.get(word, 0) + c
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:5]
    print(f"{len(lines)} lines; most common words: " + ", ".join(f"{w} ({c})" for w, c in top))

    section("retries: a task that fails twice, then succeeds")
    print(client.submit(tasks.flaky, str(scratch / "flaky-marker"), 2).result(timeout=30))

    section("streaming: a generator task's values arrive while it runs")
    f = client.submit(tasks.countdown, 5)
    print("chunks:", list(f.stream(timeout=30)), "->", f.result(timeout=30))

    section("errors come back as themselves")
    try:
        client.submit(tasks.divide, 1, 0).result(timeout=30)
    except ZeroDivisionError as e:
        last = e.__cause__.traceback.strip().splitlines()[-1]  # type: ignore[union-attr]
        print(f"ZeroDivisionError raised in the client; remote traceback ends: {last!r}")

    section("nothing lost: kill -9 a worker while 12 slow tasks run")
    futures = [client.submit(tasks.slow_square, i) for i in range(12)]
    deadline = time.monotonic() + 20
    while sum(w["running"] for w in client.status()["workers"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(workers[0].pid, signal.SIGKILL)
    print(f"killed worker pid {workers[0].pid}")
    values = [fut.result(timeout=60)["value"] for fut in futures]
    ok = values == [i * i for i in range(12)]
    print(f"all 12 results arrived: {ok}; the survivor ran the lost tasks again")

    section("the master's view (zq status)")
    st = client.status()
    for w in st["workers"]:
        print(f"worker {w['name']}: pool={w['pool']} concurrency={w['concurrency']}")
    print("tasks: " + ", ".join(f"{k}={v}" for k, v in st["counts"].items() if v))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the same steps, less work")
    quick = parser.parse_args().quick
    scratch = Path(tempfile.mkdtemp(prefix="zq-demo-"))
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    print(f"zq demo: master on {endpoint}, store {scratch / 'zq.db'}, 2 workers "
          f"(logs in {scratch})")
    procs = [start(["master", "--bind", endpoint, "--store", str(scratch / "zq.db"),
                    "--log-level", "warning"], scratch / "master.log")]
    workers = [start(["worker", "--connect", endpoint, "--app", "demo_tasks", "--name",
                      f"demo-{i}", "--concurrency", "2", "--log-level", "warning"],
                     scratch / f"worker-{i}.log") for i in range(2)]
    procs += workers
    try:
        with zq.Client(endpoint) as client:
            wait_for_workers(client, 2)
            run(client, scratch, workers, quick)
        print("\ndone.")
        return 0
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


if __name__ == "__main__":
    sys.exit(main())
