"""zq next to Celery, RQ, Dramatiq, Huey and arq: the same no-op workload through each, in
one run, on the same machine, so the ratios are honest.

    python bench/peers.py [--config recommended|equal] [--n 2000] [--zq-n 20000]
                          [--pings 200] [--runs 3] [--quick]
                          [--systems zq,celery,rq,dramatiq,huey,arq]   (also: zq-map, rq-simple)

It sets itself up. The peers are not zq's dependencies, so they go into a virtualenv of
their own, bench/.peers-venv (celery[redis], rq, dramatiq[redis], huey, arq, redis, and zq
itself with `pip install -e .[bench]` for matplotlib), made on the first run; the script
then runs itself again inside it. When redis-server is not on PATH it is installed with
apt-get (root only). A private redis-server is started on a free 127.0.0.1 port
(--save '' --appendonly no) and is always stopped, as is every worker.

Two configurations (SYSTEMS has both for each system; the report says which ran):

--config recommended (the default; results/peers.md): each system as its own docs
recommend for throughput on this machine (CORES = os.cpu_count()):
- zq: one `zq worker` with its defaults (process pool, concurrency = cores, adaptive
  prefetch).
- Celery: `celery worker -P prefork`, -c left at its default, the number of CPUs. Celery's
  docs: prefork "is well-suited for many scenarios and generally recommended"
  (docs.celeryq.dev, User Guide > Concurrency) and "-c, --concurrency: Number of child
  processes processing the queue. The default is the number of CPUs available on your
  system" (celery worker reference).
- RQ: one `rq worker -w rq.SimpleWorker` process per core. RQ runs one job at a time per
  worker process; its docs/benchmark.md measure SimpleWorker (no fork per job) about 6x
  faster than the default Worker and name it for jobs "extremely short-lived (single
  digit milliseconds)", which a no-op is. (RQ's docs advise the forking Worker in
  production for isolation; --config equal still measures it.)
- Dramatiq: `dramatiq --processes CORES --threads 8`, the CLI's defaults (`dramatiq
  --help`: processes default to the CPU count, "2" here, threads per process to 8;
  Worker(worker_threads=8) in its API docs).
- Huey: `huey_consumer -k thread -w 8`, RedisHuey with its result store and
  notify_result=True (results are awaited with a BLPOP, not polled). `huey_consumer
  --help` (and its docs, docs/consumer.rst): -w "number of worker threads/processes
  (default=1)"; -k "Use process for CPU-intensive workloads, and greenlet for IO-heavy
  workloads. When in doubt, thread is the safest choice." No number is recommended; 8
  threads, as Dramatiq's default, since a no-op is all Redis round trips.
- arq: `arq arq_tasks.WorkerSettings`, one asyncio process with max_jobs at its default
  (10; arq's Worker docs). poll_delay is lowered from 0.5 s to 10 ms (arq_tasks.py says
  why): the generous choice for the peer.

--config equal (results/peers-equal.md; the configuration of the earlier numbers): one
worker that runs two tasks at a time in each system: `zq worker --pool process
--concurrency 2 --prefetch 1000`, `celery worker -P prefork -c 2`, 2 `rq worker`
processes (forking Worker; rq-simple: SimpleWorker), `dramatiq --processes 1 --threads 2`,
`huey_consumer -k thread -w 2`, arq with max_jobs 2.

A run starts the system's worker(s) afresh and a fresh client
(bench/peer_systems/measure.py, task modules next to it), which measures (a) throughput:
N no-op tasks enqueued with the system's bulk API, then every result awaited, timed from
the first enqueue to the last result, and (b) the round-trip latency of one task at a
time, p50/p99. The runs go round the systems in turn; reported is the median of --runs
runs and the zq/peer ratios, printed and written to bench/results/peers.md and peers.png
(peers-equal.md and .png for --config equal).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TASKS = HERE / "peer_systems"  # the task modules and measure.py; on the workers' PYTHONPATH
RESULTS = HERE / "results"
DEFAULT_VENV = HERE / ".peers-venv"
PEER_PACKAGES = ["celery[redis]", "rq", "dramatiq[redis]", "redis", "huey", "arq"]
IMPORT_CHECK = ("import celery, rq, dramatiq, huey, arq, redis, matplotlib, zq, sys; "
                "sys.exit(0 if zq.__file__.startswith(sys.argv[1]) else 3)")
REEXEC_MARK = "ZQ_PEERS_BENCH_IN_VENV"


def say(*parts: Any) -> None:
    print("peers:", *parts, file=sys.stderr, flush=True)


# --- setting up: the virtualenv and redis-server --------------------------------------------

def _run_setup(cmd: list[str], timeout: float, env: dict | None = None) -> None:
    say("$", shlex.join(cmd))
    try:
        subprocess.run(cmd, check=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"peers: `{shlex.join(cmd)}` took more than {timeout:.0f} s") from None
    except subprocess.CalledProcessError as e:
        raise SystemExit(
            f"peers: `{shlex.join(cmd)}` failed with exit status {e.returncode}") from None


def venv_ready(venv: Path) -> bool:
    python = venv / "bin" / "python"
    if not python.exists():
        return False
    # -I and cwd="/": zq must come from the virtualenv, not from the current directory
    check = subprocess.run([str(python), "-I", "-c", IMPORT_CHECK, str(ROOT)], timeout=120,
                           cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return check.returncode == 0


def ensure_venv(venv: Path) -> Path:
    """bench/.peers-venv with the peers, zq (editable, from this tree) and matplotlib."""
    python = venv / "bin" / "python"
    if venv_ready(venv):
        return python
    say(f"setting up {venv} (once): the peers are installed there, not into zq's "
        "environment")
    if not python.exists():
        _run_setup([sys.executable, "-m", "venv", str(venv)], 300)
    _run_setup([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], 600)
    _run_setup([str(python), "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[bench]",
                *PEER_PACKAGES], 1800)
    if not venv_ready(venv):
        raise SystemExit(f"peers: {venv} still cannot import celery, rq, dramatiq, huey, arq, "
                         "redis, matplotlib and this tree's zq; delete it and run again")
    return python


def ensure_redis_server() -> str:
    """The path of redis-server, installed with apt-get when it is not on PATH."""
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit("peers: redis-server is not on PATH and cannot be installed from "
                         "here (needs root and apt-get); install it (e.g. `apt-get install "
                         "redis-server`) and run again")
    say("redis-server is not on PATH; installing it with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "redis-server"]
    say("$", shlex.join(cmd))
    try:
        failed = subprocess.run(cmd, env=env, timeout=900).returncode != 0
    except subprocess.TimeoutExpired:
        raise SystemExit(f"peers: `{shlex.join(cmd)}` took more than 900 s") from None
    if failed:
        say("apt-get install failed; updating the package lists and trying again")
        _run_setup(["apt-get", "update"], 900, env)
        _run_setup(cmd, 900, env)
    found = shutil.which("redis-server") or ("/usr/bin/redis-server"
                                             if os.path.exists("/usr/bin/redis-server") else None)
    if not found:
        raise SystemExit("peers: apt-get installed redis-server but it is not on PATH")
    return found


def run_inside_venv(venv: Path, script: Path, argv: list[str] | None) -> None:
    """Return when this process runs inside venv; otherwise make venv (ensure_venv) and
    run script again inside it with the same arguments (this process is replaced)."""
    if Path(sys.prefix).resolve() == venv:
        return
    if os.environ.get(REEXEC_MARK):
        raise SystemExit(f"peers: {venv}/bin/python runs with sys.prefix {sys.prefix}; "
                         "not a virtualenv at that path?")
    python = ensure_venv(venv)
    say(f"running again inside {venv}")
    sys.stdout.flush()
    env = dict(os.environ, **{REEXEC_MARK: "1"})
    os.execve(str(python), [str(python), str(script.resolve()),
                            *(sys.argv[1:] if argv is None else argv)], env)


# --- processes ----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A background process in its own session (so its children die with it), output to a
    log file. stop(): SIGTERM to the group, SIGKILL after `grace` seconds; bounded."""

    def __init__(self, name: str, argv: list[str], logdir: Path, env: dict, cwd: Path) -> None:
        self.name = name
        self.log = logdir / f"{name}.log"
        self._out = open(self.log, "ab")
        self.popen = subprocess.Popen(argv, stdout=self._out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                      start_new_session=True)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, chars: int = 2000) -> str:
        self._out.flush()
        return self.log.read_text(errors="replace")[-chars:]

    def _killpg(self, sig: int) -> None:
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, grace: float = 10.0) -> None:
        if self.alive():
            self._killpg(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                say(f"{self.name} did not stop within {grace:.0f} s of SIGTERM; killing it")
        self._killpg(signal.SIGKILL)  # the process if still there, and any stray children
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            say(f"{self.name} (pid {self.popen.pid}) could not be reaped")
        self._out.close()


def wait_port(port: int, proc: Proc, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not listen on port {port} within {timeout:.0f} s")


def redis_command(port: int, *words: str, timeout: float = 5.0) -> bytes:
    """One command over RESP, the first line of the reply (enough for PING, FLUSHALL)."""
    parts = [f"*{len(words)}\r\n".encode()]
    for w in words:
        parts.append(f"${len(w.encode())}\r\n{w}\r\n".encode())
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"".join(parts))
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.strip()


class RedisServer:
    def __init__(self, binary: str, logdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.proc = Proc("redis-server", [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(logdir), "--daemonize", "no",
        ], logdir, dict(os.environ), logdir)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if redis_command(self.port, "PING", timeout=1) == b"+PONG":
                        break
                except OSError:
                    pass
                if not self.proc.alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start:\n{self.proc.tail()}")
                time.sleep(0.05)
            self.version = subprocess.run([binary, "--version"], capture_output=True,
                                          text=True, timeout=10).stdout.strip()
        except BaseException:
            self.proc.stop()
            raise

    def flush(self) -> None:
        reply = redis_command(self.port, "FLUSHALL")
        if reply != b"+OK":
            raise RuntimeError(f"redis FLUSHALL answered {reply!r}")

    def stop(self) -> None:
        self.proc.stop(grace=5)


# --- the systems --------------------------------------------------------------------------

Workers = Callable[["Env"], list[tuple[str, list[str]]]]


@dataclass
class Config:
    setup: str  # how its worker runs, for the report
    workers: Workers
    label: str | None = None  # the table's, when not the system's own


@dataclass
class System:
    key: str  # the --systems name
    label: str  # the table's
    measure: str  # measure.py's system
    equal: Config  # --config equal: one worker running two tasks at a time
    recommended: Config  # --config recommended: what the system's docs recommend
    measure_args: list[str] = field(default_factory=list)
    zq: bool = False  # needs a zq master

    def config(self, name: str) -> Config:
        return self.recommended if name == "recommended" else self.equal

    def label_in(self, name: str) -> str:
        return self.config(name).label or self.label


@dataclass
class Env:
    python: str
    bin: Path
    redis_url: str
    zq_endpoint: str


CORES = os.cpu_count() or 1


def zq_worker(*flags: str) -> Workers:
    return lambda e: [("zq-worker", [e.python, "-m", "zq", "worker", "--connect", e.zq_endpoint,
                                     "--app", "zq_tasks", *flags, "--log-level", "warning"])]


def celery_worker(*flags: str) -> Workers:
    return lambda e: [("celery-worker", [e.python, "-m", "celery", "-A", "celery_tasks",
                                         "worker", "-P", "prefork", *flags, "-l", "WARNING",
                                         "-n", "bench@%h"])]


def rq_workers(count: int, *flags: str) -> Workers:
    """`count` rq worker processes (RQ runs one job at a time per process)."""
    return lambda e: [(f"rq-worker-{i}", [str(e.bin / "rq"), "worker", "bench", "--url",
                                          e.redis_url + "/0", "--logging_level", "WARNING",
                                          *flags, "-n", f"bench-{i}-{os.getpid()}"])
                      for i in range(1, count + 1)]


def dramatiq_worker(processes: int, threads: int) -> Workers:
    return lambda e: [("dramatiq-worker", [str(e.bin / "dramatiq"), "dramatiq_tasks",
                                           "--processes", str(processes),
                                           "--threads", str(threads)])]


def huey_consumer(workers: int) -> Workers:
    return lambda e: [("huey-consumer", [str(e.bin / "huey_consumer"), "huey_tasks.huey",
                                         "-k", "thread", "-w", str(workers), "-n", "-q"])]


def arq_worker(settings: str) -> Workers:
    return lambda e: [("arq-worker", [str(e.bin / "arq"), f"arq_tasks.{settings}",
                                        "--custom-log-dict", "arq_tasks.WARNINGS_ONLY"])]


RQ_CLIENT = ("client: Queue.enqueue_many() / enqueue(), Job.latest_result(timeout=...) (a "
             "blocking XREAD on the result stream, no polling)")
DRAMATIQ_CLIENT = ("Redis broker (its consumer polls Redis with a backoff when idle), Results "
                   "middleware with the Redis backend; client: group(...).run() / "
                   "actor.send(), message.get_result(block=True)")
HUEY_CLIENT = ("RedisHuey (blocking BRPOP dequeue), result store with notify_result=True; "
               "client: noop.map(range(N)) / noop(i), Result.get(blocking=True) (a BLPOP on "
               "the task's notification key, no polling)")
ARQ_CLIENT = ("poll_delay 10 ms (default 0.5 s: arq's worker polls its queue); client: "
              "ArqRedis.enqueue_job() each (arq has no bulk enqueue), Job.result(poll_delay="
              "0.005) (arq has no result notification)")

SYSTEMS: dict[str, System] = {s.key: s for s in [
    System("zq", "zq", "zq",
           Config("zq master --store memory; one `zq worker --pool process --concurrency 2 "
                  "--prefetch 1000`; client: submit() each task, then Future.result() each",
                  zq_worker("--pool", "process", "--concurrency", "2", "--prefetch", "1000")),
           Config("zq master --store memory; one `zq worker` with its defaults (process "
                  f"pool, concurrency = CPU count = {CORES}, adaptive prefetch); client: "
                  "submit() each task, then Future.result() each", zq_worker()),
           zq=True),
    System("zq-map", "zq (Client.map)", "zq",
           Config("as zq, but throughput through Client.map (windowed submission)",
                  zq_worker("--pool", "process", "--concurrency", "2", "--prefetch", "1000")),
           Config("as zq, but throughput through Client.map (windowed submission)",
                  zq_worker()),
           ["--zq-map"], zq=True),
    System("celery", "Celery", "celery",
           Config("`celery worker -P prefork -c 2` (default prefetch multiplier 4), Redis broker "
                  "and Redis result backend; client: group(...).apply_async(), "
                  "GroupResult.get() / AsyncResult.get() (pub/sub, no polling)",
                  celery_worker("-c", "2")),
           Config(f"`celery worker -P prefork` with -c at its default, the CPU count ({CORES}) "
                  "(prefork is the pool Celery's docs recommend; default prefetch multiplier "
                  "4), Redis broker and Redis result backend; client: group(...).apply_async(), "
                  "GroupResult.get() / AsyncResult.get() (pub/sub, no polling)",
                  celery_worker())),
    System("rq", "RQ", "rq",
           Config("2 `rq worker` processes, default rq.Worker class, which forks a work horse "
                  "per job; " + RQ_CLIENT, rq_workers(2)),
           Config(f"{CORES} `rq worker -w rq.SimpleWorker` processes, one per core (RQ runs one "
                  "job at a time per process; SimpleWorker runs the job in the worker "
                  "process, no fork per job, the class RQ's docs name for jobs of a few ms); "
                  + RQ_CLIENT, rq_workers(CORES, "-w", "rq.SimpleWorker"),
                  "RQ (SimpleWorker)")),
    System("rq-simple", "RQ (SimpleWorker)", "rq",
           Config("as RQ, but `rq worker -w rq.SimpleWorker` (runs the job in the worker "
                  "process, no fork)", rq_workers(2, "-w", "rq.SimpleWorker")),
           Config("the same as RQ in this config", rq_workers(CORES, "-w", "rq.SimpleWorker"))),
    System("dramatiq", "Dramatiq", "dramatiq",
           Config("`dramatiq --processes 1 --threads 2`, " + DRAMATIQ_CLIENT,
                  dramatiq_worker(1, 2)),
           Config(f"`dramatiq --processes {CORES} --threads 8`: its CLI's defaults (processes "
                  "= CPU count, 8 threads each), " + DRAMATIQ_CLIENT,
                  dramatiq_worker(CORES, 8))),
    System("huey", "Huey", "huey",
           Config("`huey_consumer -k thread -w 2`, " + HUEY_CLIENT, huey_consumer(2)),
           Config("`huey_consumer -k thread -w 8` (Huey's default is 1 worker; its docs "
                  "suggest threads for I/O-bound work and give no number, so 8 threads as "
                  "Dramatiq's default), " + HUEY_CLIENT, huey_consumer(8))),
    System("arq", "arq", "arq",
           Config("`arq arq_tasks.TwoAtATime` (max_jobs 2), " + ARQ_CLIENT,
                  arq_worker("TwoAtATime")),
           Config("`arq arq_tasks.WorkerSettings` (one asyncio process, max_jobs at its "
                  "default 10), " + ARQ_CLIENT, arq_worker("WorkerSettings"))),
]}
DEFAULT_SYSTEMS = {"recommended": "zq,celery,rq,dramatiq,huey,arq",
                   "equal": "zq,celery,rq,rq-simple,dramatiq,huey,arq"}


@dataclass
class Outcome:
    system: System
    n: int
    label: str  # the table's, in the run's config
    setup: str  # how the system ran, in the run's config
    tasks_per_s: float | None = None
    p50: float | None = None
    p99: float | None = None
    versions: dict = field(default_factory=dict)
    error: str | None = None
    runs: list = field(default_factory=list)  # (tasks/s, p50, p99, seconds, enqueue s)


def child_env(redis_url: str) -> dict:
    path = os.pathsep.join(p for p in [str(TASKS), os.environ.get("PYTHONPATH", "")] if p)
    return dict(os.environ, PYTHONPATH=path, BENCH_REDIS_URL=redis_url, PYTHONUNBUFFERED="1")


def run_once(system: System, a: argparse.Namespace, redis: RedisServer,
             logdir: Path) -> dict:
    """Start the system's worker(s) (and master), run one client, stop them all.
    The measure.py JSON; RuntimeError (after showing the workers' last lines) on failure."""
    n = a.zq_n if system.zq else a.n
    env = child_env(redis.url)
    e = Env(sys.executable, Path(sys.executable).parent, redis.url, "")
    procs: list[Proc] = []
    # generous by default: a 10 tasks/s peer still finishes
    timeout = a.timeout or 120 + n / 10 + a.pings * 1.0
    try:
        if system.zq:
            port = free_port()
            e.zq_endpoint = f"tcp://127.0.0.1:{port}"
            master = Proc(f"{system.key}-master", [
                sys.executable, "-m", "zq", "master", "--bind", e.zq_endpoint, "--store",
                "memory", "--log-level", "warning"], logdir, env, logdir)
            procs.append(master)
            wait_port(port, master)
        for name, argv in system.config(a.config).workers(e):
            procs.append(Proc(name, argv, logdir, env, logdir))
        cmd = [sys.executable, str(TASKS / "measure.py"), system.measure, "--n", str(n),
               "--pings", str(a.pings), "--warmup", str(a.warmup), "--timeout", str(timeout),
               "--zq", e.zq_endpoint or "tcp://127.0.0.1:5555", *system.measure_args]
        try:
            return measure_once(cmd, env, logdir, timeout, procs)
        except Exception as ex:
            say(f"{system.label_in(a.config)} FAILED: {str(ex).strip()}")
            for p in procs:
                say(f"--- last lines of {p.name} ({'running' if p.alive() else 'exited'}):"
                    f"\n{p.tail(1500)}")
            raise
    finally:
        for p in reversed(procs):
            p.stop()


def run_all(systems: list[System], a: argparse.Namespace, redis: RedisServer,
            logdir: Path, bar: Any) -> list[Outcome]:
    """Round r runs every system once, so slow drifts of a shared machine's load touch
    them all alike; each run starts the workers afresh. A system that fails once is
    reported as failed and not run again."""
    outcomes = {s.key: Outcome(s, a.zq_n if s.zq else a.n, s.label_in(a.config),
                               s.config(a.config).setup) for s in systems}
    runs: dict[str, list[dict]] = {s.key: [] for s in systems}
    for _ in range(a.runs):
        for system in systems:
            out = outcomes[system.key]
            if out.error is None:
                redis.flush()
                try:
                    runs[system.key].append(run_once(system, a, redis, logdir))
                except Exception as ex:  # one peer failing must not hide the others
                    out.error = str(ex).strip() or type(ex).__name__
            bar.step()
    for key, out in outcomes.items():
        if out.error is None:
            rs = runs[key]
            out.tasks_per_s = statistics.median(r["tasks_per_s"] for r in rs)
            out.p50 = statistics.median(r["p50_s"] for r in rs)
            out.p99 = statistics.median(r["p99_s"] for r in rs)
            out.runs = [(r["tasks_per_s"], r["p50_s"], r["p99_s"], r["seconds"],
                         r.get("enqueue_s")) for r in rs]
            for r in rs:
                out.versions.update(r["versions"])
    return list(outcomes.values())


def measure_once(cmd: list[str], env: dict, logdir: Path, timeout: float,
                 procs: list[Proc]) -> dict:
    """One client run; fails fast when a worker (or the master) exits under it."""
    client = subprocess.Popen(cmd, env=env, cwd=logdir, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + timeout + 30  # measure.py bounds itself; a backstop
    out, err = "", ""
    try:
        while True:
            try:
                out, err = client.communicate(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                pass
            dead = [f"{p.name} (exit {p.popen.returncode})" for p in procs if not p.alive()]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited during the run:\n"
                                   + "\n".join(f"--- {p.name}:\n{p.tail(800)}"
                                               for p in procs if not p.alive()))
            if time.monotonic() > deadline:
                raise RuntimeError(f"the client did not finish within {timeout + 30:.0f} s")
    finally:
        if client.poll() is None:
            client.kill()
            client.communicate(timeout=10)
    done = subprocess.CompletedProcess(cmd, client.returncode, out, err)
    if done.returncode != 0:
        err = done.stderr.strip()
        heads = [line for line in err.splitlines() if line.startswith("measure.py: ")]
        head = heads[-1][len("measure.py: "):] if heads else \
            f"the client exited with status {done.returncode}"
        dead = [f"{p.name} (exit {p.popen.returncode})" for p in procs if not p.alive()]
        if dead:
            head += f"; worker process(es) gone before: {', '.join(dead)}"
        raise RuntimeError(f"{head}\n\nthe client's stderr, last lines:\n{err[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the report ---------------------------------------------------------------------------

HEADERS = ["system", "tasks", "tasks/s", "p50 ms", "p99 ms", "zq/peer tasks/s",
           "zq/peer p50", "zq/peer p99"]


def table_rows(outcomes: list[Outcome]) -> list[list[Any]]:
    ref = next((o for o in outcomes if o.system.key == "zq" and o.error is None), None)
    rows = []
    for o in outcomes:
        if o.error is not None:
            rows.append([o.label, o.n, "failed", "-", "-", "-", "-", "-"])
            continue
        ratio = (lambda mine, theirs: round(mine / theirs, 3)) if ref else (lambda *_: "-")
        rows.append([o.label, o.n, round(o.tasks_per_s), round(o.p50 * 1e3, 3),
                     round(o.p99 * 1e3, 3),
                     ratio(ref.tasks_per_s, o.tasks_per_s) if ref else "-",
                     ratio(ref.p50, o.p50) if ref else "-",
                     ratio(ref.p99, o.p99) if ref else "-"])
    return rows


def save_chart(path: Path, outcomes: list[Outcome], title: str) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        say(f"matplotlib is not installed; {path} not written")
        return False
    ok = [o for o in outcomes if o.error is None]
    if not ok:
        return False
    labels = [o.label.replace(" (", "\n(") for o in ok]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    try:
        from common import fmt
        xs = range(len(ok))
        bars = left.bar(xs, [o.tasks_per_s for o in ok],
                        color=["tab:green" if o.system.zq else "tab:blue" for o in ok])
        left.bar_label(bars, labels=[fmt(o.tasks_per_s) for o in ok], fontsize=8)
        left.set_yscale("log")
        left.set_ylabel("tasks/s (log scale)")
        left.set_title("throughput: N no-op tasks, enqueue all, await all")
        width = 0.38
        p50 = right.bar([x - width / 2 for x in xs], [o.p50 * 1e3 for o in ok], width,
                        label="p50")
        p99 = right.bar([x + width / 2 for x in xs], [o.p99 * 1e3 for o in ok], width,
                        label="p99")
        right.bar_label(p50, labels=[fmt(o.p50 * 1e3) for o in ok], fontsize=7)
        right.bar_label(p99, labels=[fmt(o.p99 * 1e3) for o in ok], fontsize=7)
        right.set_yscale("log")
        right.set_ylabel("ms (log scale)")
        right.set_title("round trip of one task at a time")
        right.legend()
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
        for ax in (left, right):
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v)))
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_xticks(list(xs), labels, fontsize=8)
            ax.grid(True, axis="y", alpha=0.3)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return True


def machine_note() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}; load average at the start {load} "
            "(a shared machine: other work may have run at the same time)")


def write_markdown(path: Path, outcomes: list[Outcome], a: argparse.Namespace,
                   command: str, machine: str, redis_version: str, started: str,
                   seconds: float) -> None:
    from common import fmt
    rows = table_rows(outcomes)
    lines = [
        "# zq next to Celery, RQ, Dramatiq, Huey and arq",
        "",
        f"- config: `--config {a.config}`: {CONFIG_NOTE[a.config]} (see How each system ran)",
        f"- date: {started}, took {seconds:.0f} s",
        f"- machine: {machine}; at the end "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        f"- command: `{command}`",
        f"- workload: no-op tasks (`noop(x)` returns x); throughput over N = {a.n} tasks "
        f"per peer and {a.zq_n} for zq; latency over {a.pings} round trips one at a time "
        f"(after {a.warmup} untimed ones); median of {a.runs} run(s). Each run starts the "
        "system's worker(s) (and zq's master) afresh and measures with a fresh client "
        "process; the runs go round the systems in turn, so a shared machine's changing "
        "load touches them all alike",
        "- zq/peer: tasks/s above 1 = zq moves more tasks per second; p50/p99 below 1 = "
        "zq's round trip is shorter",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(HEADERS))) + "|",
    ]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    lines += ["", "Each run: tasks/s (seconds for the N tasks, of which enqueueing them "
              "all), p50 ms, p99 ms:", ""]
    lines += [f"- {o.label}: " + "; ".join(
        f"{fmt(t)} ({secs:.2f} s" + (f", enqueue {enq:.2f} s" if enq is not None else "")
        + f"), {fmt(p50 * 1e3)}, {fmt(p99 * 1e3)}" for t, p50, p99, secs, enq in o.runs)
        for o in outcomes if o.error is None]
    versions: dict[str, str] = {}
    for o in outcomes:
        versions.update(o.versions)
    lines += ["", "## Versions", ""]
    lines += [f"- {k} {v}" for k, v in sorted(versions.items())]
    lines += [f"- {redis_version}" if redis_version else "- redis-server: not started"]
    lines += ["", "## How each system ran", ""]
    lines += [f"- **{o.label}**: {o.setup}" for o in outcomes]
    lines += ["", "Every worker logs at WARNING (no per-task log lines). Redis runs on "
              "127.0.0.1 with `--save '' --appendonly no`; it is flushed between systems. "
              "The zq master keeps its state in memory (`--store memory`).", ""]
    failed = [o for o in outcomes if o.error is not None]
    if failed:
        lines += ["## Failures", ""]
        for o in failed:
            lines += [f"- **{o.label}**: no number, because:", "", "```",
                      o.error[-2000:], "```", ""]
    path.write_text("\n".join(lines))


# --- main ---------------------------------------------------------------------------------

CONFIG_NOTE = {"recommended": "each system as its docs recommend for throughput",
               "equal": "one worker running 2 at a time per system"}
DEFAULTS = {"n": 2000, "zq_n": 20000, "pings": 200, "warmup": 20, "runs": 3}
QUICK = {"n": 200, "zq_n": 2000, "pings": 30, "warmup": 5, "runs": 1}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, help="throughput tasks per peer (default 2000)")
    parser.add_argument("--zq-n", type=int, help="throughput tasks for zq (default 20000)")
    parser.add_argument("--pings", type=int, help="round trips for latency (default 200)")
    parser.add_argument("--warmup", type=int, help="untimed round trips first (default 20)")
    parser.add_argument("--runs", type=int, help="median of this many runs (default 3)")
    parser.add_argument("--config", choices=["recommended", "equal"], default="recommended",
                        help="recommended (default): each system as its docs recommend for "
                             "throughput; equal: one worker running two tasks at a time each "
                             "(the configuration of the earlier results)")
    parser.add_argument("--systems", help="comma-separated, of "
                        f"{', '.join(SYSTEMS)} (default: {DEFAULT_SYSTEMS['recommended']}; "
                        f"with --config equal: {DEFAULT_SYSTEMS['equal']})")
    parser.add_argument("--timeout", type=float, default=0,
                        help="seconds one run of one system may take (default: 120 + "
                             "N/10 + 1 per round trip)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: n=200, zq-n=2000, 30 pings, 5 warm-up, 1 run "
                             "(each overridable)")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV,
                        help="the peers' virtualenv (made if missing)")
    a = parser.parse_args(argv)
    for key, value in (QUICK if a.quick else DEFAULTS).items():
        if getattr(a, key) is None:
            setattr(a, key, value)
    a.systems = a.systems or DEFAULT_SYSTEMS[a.config]
    unknown = [s for s in a.systems.split(",") if s not in SYSTEMS]
    if unknown:
        parser.error(f"unknown system(s) {', '.join(unknown)}; known: {', '.join(SYSTEMS)}")
    if min(a.n, a.zq_n, a.pings, a.runs) < 1 or a.warmup < 1:
        parser.error("--n, --zq-n, --pings, --runs and --warmup must be at least 1")
    return a


def main(argv: list[str] | None = None) -> None:
    a = parse(argv)
    run_inside_venv(a.venv.resolve(), Path(__file__), argv)
    sys.path.insert(0, str(HERE))
    from common import Progress, print_table

    # SIGTERM (and SIGINT, even where a shell left it ignored) unwind through the finally
    # blocks, which stop redis-server and every worker.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)

    command = shlex.join(["python", "bench/peers.py",
                          *(sys.argv[1:] if argv is None else argv)])
    redis_server = ensure_redis_server()
    machine = machine_note()
    started = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    t0 = time.monotonic()
    systems = [SYSTEMS[k] for k in a.systems.split(",")]
    logdir = Path(tempfile.mkdtemp(prefix="zq-peers-"))
    outcomes: list[Outcome] = []
    redis: RedisServer | None = None
    try:
        redis = RedisServer(redis_server, logdir)
        say(f"{redis.version.split(' sha=')[0]} on {redis.url}; logs in {logdir}")
        with Progress(total=len(systems) * a.runs, label="peer runs", after=0) as bar:
            outcomes = run_all(systems, a, redis, logdir, bar)
        redis_version = redis.version.split(" sha=")[0]
    except BaseException:
        say(f"stopped; the logs are in {logdir}")
        raise
    finally:
        if redis is not None:
            redis.stop()
    seconds = time.monotonic() - t0

    print(f"no-op tasks, {CONFIG_NOTE[a.config]}; throughput over "
          f"{a.n} tasks per peer, {a.zq_n} for zq; latency over {a.pings} round trips; "
          f"median of {a.runs} run(s); {os.cpu_count()} cores")
    print_table(HEADERS, table_rows(outcomes))
    print("zq/peer: tasks/s above 1 = zq faster; p50/p99 below 1 = zq's round trip shorter")
    for o in outcomes:
        if o.error is not None:
            print(f"{o.label}: FAILED, no number: {o.error.splitlines()[0]}")
    RESULTS.mkdir(exist_ok=True)
    title = (f"no-op tasks, {CONFIG_NOTE[a.config]}, {os.cpu_count()} cores, median of "
             f"{a.runs} run(s), {started}")
    stem = "peers" if a.config == "recommended" else "peers-equal"
    if save_chart(RESULTS / f"{stem}.png", outcomes, title):
        print(f"wrote {RESULTS / f'{stem}.png'}")
    write_markdown(RESULTS / f"{stem}.md", outcomes, a, command, machine, redis_version,
                   started, seconds)
    print(f"wrote {RESULTS / f'{stem}.md'}")
    if all(o.error is None for o in outcomes):
        shutil.rmtree(logdir, ignore_errors=True)
    else:
        print(f"logs of the failed run(s) kept in {logdir}")


if __name__ == "__main__":
    main()
