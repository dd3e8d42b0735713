"""Real zq processes for the bench scripts: a master and workers on a free 127.0.0.1 port,
started, waited for and always stopped; CPU time and memory of a process read from /proc.

Builds on zq.testing.processes (Proc, free_port, query, wait_until) but runs the
processes at log level warning with the default heartbeat, as a user would, and adds
what a benchmark needs: fake workers, a raw submitter and /proc readers. Linux only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import msgpack  # noqa: E402
import zmq  # noqa: E402

from zq.core import codec  # noqa: E402
from zq.core import messages as m  # noqa: E402
from zq.core.messages import Role  # noqa: E402
from zq.security import PeerKeys, configure_peer_socket, create_keys, load_peer_keys  # noqa: E402
from zq.testing.processes import Proc, free_port, query, wait_until  # noqa: E402,F401

APP = "bench.tasks"  # the --app of every bench worker
RESULTS = ROOT / "bench" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
_STARTED = (time.time(), os.getloadavg())  # when the script started, and the load then
FAKE_WORKER = ROOT / "bench" / "fake_worker.py"


# --- /proc ----------------------------------------------------------------------------------

def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/PID/stat from field 3 (state) on; the name in () may hold spaces."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2:].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (all its threads), in seconds."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def session_cpu_seconds(sid: int) -> float:
    """CPU seconds of every live process in session sid (a worker and its pool children:
    bench processes are started in a session of their own)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat_fields(int(entry))
        except (OSError, ValueError):
            continue  # gone meanwhile
        if int(fields[3]) == sid:
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB: resident now, and its peak."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def self_cpu_seconds() -> float:
    """CPU seconds of this process, all threads (the in-process client's I/O thread too)."""
    return time.process_time()


# --- processes ------------------------------------------------------------------------------

def wait_answer(endpoint: str, timeout: float, alive: Callable[[], bool] = lambda: True,
                reconnect_ms: int = 5, keys: PeerKeys | None = None) -> float:
    """Send one status QUERY at once and wait for the REPLY; returns when it came
    (time.monotonic()). zmq keeps the query queued and reconnects every reconnect_ms
    until the master binds, so the answer comes as soon as the master can give it."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RECONNECT_IVL, reconnect_ms)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, reconnect_ms)
    if keys is not None:
        configure_peer_socket(sock, keys)
    deadline = time.monotonic() + timeout
    try:
        sock.connect(endpoint)
        sock.send_multipart(codec.encode(Role.CLIENT, m.Query(1, "status", {})))
        while time.monotonic() < deadline:
            if sock.poll(50):
                at = time.monotonic()
                sock.recv_multipart()
                return at
            if not alive():
                raise RuntimeError("the master exited before it answered")
        raise TimeoutError(f"no answer from {endpoint} within {timeout} s")
    finally:
        sock.close(0)


class Cluster:
    """A master (and workers) for one measurement, on a fresh port and temp directory.

        with Cluster(store="sqlite") as c:
            c.start_master()
            c.start_workers(1, prefetch=1000)
            ...
    Every process is killed (its whole session) on close, whatever happened.
    """

    def __init__(self, store: str = "memory", heartbeat: float = 1.0,
                 log_level: str = "warning", keep_tmp: bool = False,
                 keys: bool = False, program: Sequence[str] | None = None) -> None:
        """keys: CurveZMQ (zq.security), with a key pair each for the master, the
        workers and the client, made in the temp directory. program: what runs the
        master's and the workers' `zq` arguments (default `python -m zq`;
        bench/round_trip_trace.py runs them through bench/trace_hook.py)."""
        self.tmp = Path(tempfile.mkdtemp(prefix="zq-bench-"))
        self.keys = self.tmp / "keys" if keys else None
        self.client_keys: PeerKeys | None = None
        if self.keys is not None:
            for name in ("master", "worker", "client"):
                create_keys(self.keys / name, name)
            self.client_keys = load_peer_keys(**self._key_files("client"))
        self.port = free_port()
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.store = str(self.tmp / "zq.db") if store == "sqlite" else store
        self.heartbeat, self.log_level, self.keep_tmp = heartbeat, log_level, keep_tmp
        self.program = list(program) if program is not None else None
        self.procs: list[Proc] = []
        self.master: Proc | None = None
        self.workers: list[Proc] = []
        self._names = 0
        self.expected = 0  # workers started (fake ones count one per socket)
        self.fake_stats: list[Path] = []  # each fake worker process's `tasks messages`

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _key_files(self, who: str) -> dict[str, str]:
        assert self.keys is not None
        return {"secret_key": str(self.keys / who / f"{who}.key_secret"),
                "master_key": str(self.keys / "master" / "master.key")}

    def client(self, **config: Any) -> Any:
        """A zq.Client of this cluster (with the client's keys, if any)."""
        import zq
        if self.keys is not None:
            config.update(self._key_files("client"))
        return zq.Client(self.endpoint, config=zq.ClientConfig(**config))

    def _log(self, name: str) -> Path:
        return self.tmp / f"{name}-{len(self.procs)}.log"

    # --- master ---

    def start_master(self, timeout: float = 120.0, extra: Sequence[str] = ()) -> float:
        """Start the master (extra: more `zq master` flags) and return the seconds from
        its start until it answered a status query (restoring its store included)."""
        args = ["master", "--bind", self.endpoint, "--store", self.store,
                "--heartbeat-interval", str(self.heartbeat), "--log-level", self.log_level,
                *extra]
        if self.keys is not None:
            args += ["--secret-key", str(self.keys / "master" / "master.key_secret"),
                     "--worker-keys", str(self.keys / "worker"),
                     "--client-keys", str(self.keys / "client")]
        start = time.monotonic()
        self.master = Proc(args, self._log("master"), program=self.program)
        self.procs.append(self.master)
        master = self.master
        try:
            answered = wait_answer(self.endpoint, timeout, master.alive,
                                   keys=self.client_keys)
        except (RuntimeError, TimeoutError) as e:
            raise RuntimeError(f"{e}; master output:\n{master.output()[-3000:]}") from None
        return answered - start

    def stop_master(self, timeout: float = 60.0) -> float:
        """SIGTERM the master (it commits and closes its store); kill it after timeout.
        Returns the seconds it took to exit."""
        master = self.master
        assert master is not None
        start = time.monotonic()
        master.signal(signal.SIGTERM)
        try:
            master.wait(timeout)
        except subprocess.TimeoutExpired:
            master.kill()
            raise RuntimeError(f"the master did not stop within {timeout} s; killed") from None
        return time.monotonic() - start

    def status(self, timeout: float = 10.0) -> Any:
        st = query(self.endpoint, timeout=timeout, keys=self.client_keys)
        if st is None:
            raise RuntimeError(f"no status from the master within {timeout} s")
        return st

    def master_cpu(self) -> float:
        assert self.master is not None
        return cpu_seconds(self.master.pid)

    def master_memory(self) -> tuple[float, float]:
        assert self.master is not None
        return memory_mb(self.master.pid)

    # --- workers ---

    def start_workers(self, count: int, *, pool: str = "thread", concurrency: int = 1,
                      prefetch: int = 1000, wait: float | None = 60.0,
                      extra: Sequence[str] = ()) -> list[Proc]:
        """`count` real `zq worker` processes with an explicit --prefetch (and `extra`
        flags); waits up to `wait` seconds until they registered (None: not at all, the
        master may not be up yet: workers connect as soon as it is)."""
        new = []
        for _ in range(count):
            self._names += 1
            name = f"bench-w{self._names}"
            args = ["worker", "--connect", self.endpoint, "--app", APP, "--pool", pool,
                    "--concurrency", str(concurrency), "--prefetch", str(prefetch),
                    "--name", name, "--log-level", self.log_level, *extra]
            if self.keys is not None:
                worker = self._key_files("worker")
                args += ["--secret-key", worker["secret_key"],
                         "--master-key", worker["master_key"]]
            proc = Proc(args, self._log(name), program=self.program)
            self.procs.append(proc)  # at once: killed on close even if a later one fails
            new.append(proc)
        return self._enlist(new, count, wait)

    def start_fake_workers(self, count: int, *, processes: int = 2, credit: int = 100,
                           concurrency: int | None = None, watch: bool = False,
                           wait: float | None = 60.0) -> list[Proc]:
        """`count` protocol-level workers (bench/fake_worker.py: one DEALER each, every
        TASK answered at once with OK results) spread over `processes` processes;
        concurrency: the slots each declares (None: its credit)."""
        processes = max(1, min(processes, count))
        new = []
        for i in range(processes):
            k = count // processes + (1 if i < count % processes else 0)
            self._names += 1
            stats = self.tmp / f"fake{self._names}.stats"
            self.fake_stats.append(stats)
            argv = ["--connect", self.endpoint, "--count", str(k),
                    "--credit", str(credit), "--name", f"fake{self._names}",
                    "--heartbeat", str(self.heartbeat), "--stats", str(stats)]
            if concurrency is not None:
                argv += ["--concurrency", str(concurrency)]
            if watch:  # reconnect when the link drops (a monitor per socket)
                argv.append("--watch")
            proc = Proc(argv, self._log(f"fake{self._names}"),
                        program=[sys.executable, str(FAKE_WORKER)])
            self.procs.append(proc)  # at once: killed on close even if a later one fails
            new.append(proc)
        return self._enlist(new, count, wait)

    def _enlist(self, new: list[Proc], count: int, wait: float | None) -> list[Proc]:
        """Count `new` processes holding `count` workers; wait until they registered
        (None: not at all)."""
        self.workers += new
        self.expected += count
        if wait is not None:
            self.wait_workers(wait)
        return new

    def fake_answered(self, at_least: int = 0, timeout: float = 10.0) -> tuple[int, int]:
        """(tasks, TASK messages) the fake workers answered, once they say at least
        `at_least` tasks (they write their counts every quarter heartbeat)."""
        def counts() -> tuple[int, int]:
            total = [0, 0]
            for path in self.fake_stats:
                if path.exists():
                    for j, v in enumerate(path.read_text().split()[:2]):
                        total[j] += int(v)
            return total[0], total[1]
        wait_until(lambda: counts()[0] >= at_least, timeout,
                   f"the fake workers to count {at_least} tasks", interval=0.05)
        return counts()

    def registered(self) -> int:
        return len(self.status()["workers"])

    def wait_workers(self, timeout: float = 60.0) -> None:
        """Until every worker started so far is registered with the master."""
        want = self.expected

        def ready() -> bool:
            for p in self.workers:
                if not p.alive():
                    raise RuntimeError(f"a worker exited:\n{p.output()[-3000:]}")
            return self.registered() >= want
        wait_until(ready, timeout, f"{want} workers to register", interval=0.05)

    def workers_cpu(self) -> float:
        """CPU seconds of every worker process and its pool children."""
        return sum(session_cpu_seconds(p.pid) for p in self.workers)

    # --- cleanup ---

    def logs(self) -> str:
        return "\n".join(f"==== {p.log.name}\n{p.output()[-3000:]}" for p in self.procs)

    def close(self) -> None:
        for p in reversed(self.procs):
            try:
                p.close()
            except Exception:  # one stuck process must not keep the others alive
                pass
        if not self.keep_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


# --- a raw submitter ------------------------------------------------------------------------

def raw_submit(endpoint: str, n: int, name: str, payload: bytes, *, batch: int = 1000,
               window: int = 20, timeout: float = 600.0,
               progress: Callable[[int], None] | None = None) -> float:
    """SUBMIT n tasks straight over a DEALER (what zq.Client sends, without its futures)
    and wait until all are ACCEPTED; returns the seconds that took. For filling a master
    with a million tasks without a million Futures in this process."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    prefix = os.urandom(8).hex()
    sent = accepted = in_flight = 0
    start = time.monotonic()
    deadline = start + timeout
    options: dict = {}
    try:
        sock.connect(endpoint)
        while accepted < n:
            while in_flight < window and sent < n:
                k = min(batch, n - sent)
                entries = [(prefix + str(i), name, payload, options)
                           for i in range(sent, sent + k)]
                sock.send_multipart(codec.encode(Role.CLIENT, m.Submit(entries)))
                sent += k
                in_flight += 1
            if time.monotonic() > deadline:
                raise TimeoutError(f"{accepted} of {n} tasks accepted within {timeout} s")
            if not sock.poll(1000):
                continue
            _, msg = codec.decode(sock.recv_multipart())
            if isinstance(msg, m.Accepted):
                accepted += len(msg.ids)
                in_flight -= 1
                if progress is not None:
                    progress(len(msg.ids))
            elif isinstance(msg, (m.Busy, m.RejectedEntries, m.Error)):
                raise RuntimeError(f"the master did not accept a SUBMIT: {msg}")
        return time.monotonic() - start
    finally:
        sock.close(0)


NONE = msgpack.packb(None)
ARGS_NOOP = msgpack.packb([[0], {}])


# --- command-line plumbing shared by the scripts ----------------------------------------

def results_path(name: str) -> Path:
    """Where a script writes its chart and table: bench/results/, or $ZQ_BENCH_RESULTS
    (the smoke test sends them to a temporary directory)."""
    folder = Path(os.environ.get("ZQ_BENCH_RESULTS") or RESULTS)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def write_markdown(script: str, headers: Sequence[str], rows: Sequence[Sequence[Any]],
                   notes: Sequence[str] = ()) -> Path:
    """bench/results/<script>.md: how it was made (command, date, machine, load), the
    table as markdown, and the notes under it."""
    from common import fmt  # bench/ is on sys.path when a script runs
    path = results_path(f"{script}.md")
    command = " ".join(["python", f"bench/{Path(sys.argv[0]).name}", *sys.argv[1:]])
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [f"`{command}`, {time.strftime('%Y-%m-%d %H:%M', time.localtime(_STARTED[0]))}, "
             f"took {time.time() - _STARTED[0]:.0f} s; {machine_line()}; load average "
             f"{' '.join(f'{x:.2f}' for x in _STARTED[1])} at the start, {load} at the end",
             "",
             "| " + " | ".join(headers) + " |",
             "|" + "|".join("---:" if _numeric(rows, i) else "---"
                            for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    path.write_text("\n".join(lines) + "\n")
    return path


def _numeric(rows: Sequence[Sequence[Any]], i: int) -> bool:
    return all(r[i] is None or isinstance(r[i], (int, float)) and not isinstance(r[i], bool)
               for r in rows)


def machine_line() -> str:
    """CPU model, cores, kernel, Python: the machine a result file comes from."""
    import platform
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.partition(":")[2].strip()
                    break
    except OSError:
        pass
    return (f"{model}, {os.cpu_count()} cores, Linux {platform.release()}, "
            f"{platform.python_implementation()} {platform.python_version()}")


def machine() -> str:
    import platform
    return (f"{platform.python_implementation()} {platform.python_version()}, pyzmq "
            f"{zmq.__version__} (libzmq {zmq.zmq_version()}), {os.cpu_count()} cores, "
            f"{time.strftime('%Y-%m-%d %H:%M')}")


def base_parser(doc: str) -> argparse.ArgumentParser:
    """--runs and --quick, which every script takes."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="median of this many runs")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: a smoke test, not a measurement")
    return parser


def interleaved(runs: int, cases: dict[str, Callable[[], Any]],
                progress: Any = None) -> dict[str, Any]:
    """Run every case once per round, `runs` rounds (so noise on a shared machine hits
    every case alike), and return each case's median (per column for tuples)."""
    from common import median_of
    results: dict[str, list[Any]] = {k: [] for k in cases}
    for _ in range(runs):
        for key, fn in cases.items():
            results[key].append(fn())
            if progress is not None:
                progress.step()
    return {k: median_of(len(v), iter(v).__next__) for k, v in results.items()}


def timed_map(cluster: Cluster, client: Any, name: str, args: Sequence[Any],
              warmup: int = 0) -> tuple[float, float, float, float]:
    """client.map(name, args) timed from the call to the last result, after `warmup`
    untimed tasks. Returns (tasks/s, master, workers, client CPU µs per task)."""
    if warmup:
        for _ in client.map(name, args[:warmup]):
            pass
    n = len(args)
    m0, w0, c0 = cluster.master_cpu(), cluster.workers_cpu(), self_cpu_seconds()
    start = time.perf_counter()
    done = 0
    for _ in client.map(name, args):
        done += 1
    elapsed = time.perf_counter() - start
    m1, w1, c1 = cluster.master_cpu(), cluster.workers_cpu(), self_cpu_seconds()
    if done != n:
        raise RuntimeError(f"{done} of {n} results")
    return n / elapsed, (m1 - m0) * 1e6 / n, (w1 - w0) * 1e6 / n, (c1 - c0) * 1e6 / n
