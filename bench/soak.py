"""Soak: a mixed workload on a master and four workers spread over three network
namespaces while a chaos loop kills, freezes and cuts them at random; at the end,
check the delivery invariants against what really ran.

    sudo python bench/soak.py --minutes 30 [--seed N]      # needs root (namespaces)

Hosts (zq/testing/netns.py): the master on its own host (SQLite store), a
process-pool and a thread-pool worker on host 1, an async-pool and a thread-pool worker
on host 2, the client here. Tasks (bench/soak_tasks.py, each run appends a line
to a run log): short, long (1-3 s), failing on their first attempt then succeeding,
streaming (generators), delayed (1-3 s), periodic (a schedule every 3 s) and cancelled
(cancelled 0.1-1 s after submission). Every 2-5 s the chaos loop does one of: kill -9
of the master (restarted 0.5-2 s later on its store), SIGSTOP of the master or of a
worker for 0.5-3 s, kill -9 of a worker (restarted 0.5-2 s later), or a cut of a worker
host's or the client's link for 0.5-4 s. The seed is printed; the same seed makes the
same workload and chaos (timing still differs).

At the end the chaos stops, everything heals, and it checks:
  1. every accepted task has exactly one final result (its future resolved once, and
     the master's record is final), with the right value where it succeeded;
  2. the master holds no task that was never accepted (only ours and the ticks);
  3. nothing ran after its final result except at-least-once reruns: a run never has a
     higher attempt than the final one (a new lease after the end), and runs that
     started after the result are counted (a worker frozen or cut off runs what it
     held when it comes back; the master tells it to stop);
  4. counts add up: every succeeded task ran, a failing-then-succeeding one succeeded
     on a later attempt, the runs of the log are the runs of accepted tasks (and of
     the schedule's ticks); extra runs counted.
Prints a summary; exits 1 on any violation, 2 if namespaces cannot be made here.

The master's CPU time (user + system, summed over its restarts) is printed at the end.
--dashboard also runs `zq dashboard` here, with three headless Chromium pages open on it
(the overview, the task list and the workers) for the whole run, and checks at the end
that it followed the master through its restarts (it answers, it is live, it shows the
current master's id): run the same seed with and without it to see its cost on the
master.

--local runs everything on 127.0.0.1 without namespaces (no root needed, nothing to
collide with other runs' 10.x addresses) and the chaos touches only the workers (kill -9,
SIGSTOP), never the master: one master process for the whole run, so its CPU% and RSS
over time say what the load (and the dashboard) cost it, and whether it leaks. Every
half second the master's (and the dashboard's) CPU time and RSS are sampled; the end
prints CPU% per WINDOW seconds (median, percentiles) and RSS (start, end, growth);
--samples FILE writes the samples as CSV.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import zq  # noqa: E402
from zq.testing import netns  # noqa: E402
from zq.testing.processes import Proc, free_port, query, wait_until  # noqa: E402

APP = "bench.soak_tasks"
RUN, STREAM, ARUN = f"{APP}:run", f"{APP}:stream", f"{APP}:arun"
HEARTBEAT, LIVENESS = 0.25, 4  # a 1 s liveness window: chaos every few seconds heals
MAX_IN_FLIGHT = 300
WORKERS = {  # name: (host, pool, queues)
    "h1-proc": (1, "process", "default"),
    "h1-thread": (1, "thread", "default"),
    "h2-async": (2, "async", "aio"),
    "h2-thread": (2, "thread", "default"),
}


FINAL = ("succeeded", "failed", "cancelled", "dead")
FINAL_WAIT = 60.0  # seconds the check waits for the master to record a cancelled task's end

WINDOW = 10.0  # seconds per CPU% figure in the cost summary
WARM_UP = 120.0  # seconds before the RSS baseline (imports, caches and windows fill first)


class LocalHosts:
    """netns.Hosts' interface on 127.0.0.1 (--local): no namespaces, no links to cut."""

    master_ns = ""
    worker_ns = ["", ""]
    master_addr = "127.0.0.1"

    def master_addr_for(self, k: int) -> str:
        return "127.0.0.1"

    def exec_prefix(self, ns: str) -> list[str]:
        return []

    def set_link(self, k: int, up: bool) -> None:
        pass

    def drop_to_test(self, on: bool = True) -> None:
        pass


class Soak:
    def __init__(self, hosts: netns.Hosts | LocalHosts, tmp: Path, seed: int) -> None:
        self.hosts, self.tmp = hosts, tmp
        self.rng = random.Random(seed)  # the workload's
        self.chaos_rng = random.Random(seed + 1)
        self.port = free_port()
        self.endpoint = f"tcp://{hosts.master_addr}:{self.port}"
        self.store = str(tmp / "zq.db")
        self.log = tmp / "runs"
        self.procs: dict[str, Proc] = {}
        self.all_procs: list[Proc] = []
        self.lock = threading.Lock()  # the process table, between chaos and main thread
        self.stop = threading.Event()
        self.actions: Counter[str] = Counter()
        self.tasks: dict[str, dict[str, Any]] = {}  # task id -> what we expect
        self.finished_at: dict[str, float] = {}  # task id -> wall time its future ended
        self.master_kills: list[float] = []  # wall times
        self.beat: dict[str, Any] = {}  # the schedule as the master shows it
        self.master_cpu: dict[int, float] = {}  # master pid -> CPU seconds, last seen
        self.dashboard_port = 0  # with --dashboard: where it listens
        self.dashboard_proc: Proc | None = None
        self.local = isinstance(hosts, LocalHosts)
        # (wall, master pid, its CPU s, its RSS kB, dashboard CPU s, dashboard RSS kB)
        self.samples: list[tuple[float, int, float, int, float, int]] = []

    # --- processes ---

    def _master_args(self) -> list[str]:
        if self.local:  # loopback peers are admitted without --insecure
            bind = f"tcp://127.0.0.1:{self.port}"
            return ["master", "--bind", bind, "--store", self.store, "--heartbeat-interval",
                    str(HEARTBEAT), "--heartbeat-liveness", str(LIVENESS), "--log-level",
                    "info"]
        return ["master", "--bind", f"tcp://*:{self.port}", "--store", self.store,
                "--heartbeat-interval", str(HEARTBEAT), "--heartbeat-liveness",
                str(LIVENESS), "--log-level", "info",
                "--insecure"]  # its peers are on other hosts: our own namespaces only

    def start_master(self) -> None:
        proc = Proc(self._master_args(), self.tmp / f"master-{len(self.all_procs)}.log",
                    self.hosts.exec_prefix(self.hosts.master_ns))
        self.procs["master"] = proc
        self.all_procs.append(proc)

    def start_worker(self, name: str) -> None:
        host, pool, queues = WORKERS[name]
        args = ["worker", "--connect", f"tcp://{self.hosts.master_addr_for(host)}:{self.port}",
                "--app", APP, "--pool", pool, "--concurrency", "3", "--queues", queues,
                "--name", name, "--log-level", "info", "--shutdown-timeout", "5"]
        proc = Proc(args, self.tmp / f"{name}-{len(self.all_procs)}.log",
                    self.hosts.exec_prefix(self.hosts.worker_ns[host - 1]))
        self.procs[name] = proc
        self.all_procs.append(proc)

    def status(self) -> Any:
        return query(self.endpoint, timeout=2.0)

    def start_dashboard(self) -> None:
        """`zq dashboard` on loopback here (the client's host) and three headless Chromium
        pages on it, for the whole run (Debian's Chromium; each page keeps its event
        stream open and reloads its live part as tasks move)."""
        from tests.browser.stack import chromium, http_status
        self.dashboard_port = free_port()
        url = f"http://127.0.0.1:{self.dashboard_port}"
        proc = Proc(["dashboard", "--connect", self.endpoint, "--http",
                     f"127.0.0.1:{self.dashboard_port}", "--timeout", "2s"],
                    self.tmp / "dashboard.log")
        self.all_procs.append(proc)
        self.dashboard_proc = proc
        wait_until(lambda: http_status(url + "/api/status") == 200, 30, "the dashboard")
        browser = chromium()
        if browser is None:
            raise SystemExit("soak --dashboard: Chromium is not installed (apt-get install "
                             "chromium)")
        for i, path in enumerate(("/", "/tasks", "/workers")):
            self.all_procs.append(Proc(
                ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--user-data-dir={self.tmp / f'chromium-{i}'}", url + path],
                self.tmp / f"chromium-{i}.log", program=[browser]))

    def dashboard_followed(self) -> list[str]:
        """The dashboard answers, is live, and shows the master running now."""
        import urllib.request
        url = f"http://127.0.0.1:{self.dashboard_port}/api/status"

        def current() -> Any:
            st, ours = self.status(), None
            try:
                with urllib.request.urlopen(url, timeout=3) as r:
                    ours = json.load(r)
            except OSError:
                return None
            return st and ours["live"] and ours["master_id"] == st["master_id"] and ours
        try:
            wait_until(current, 30, "the dashboard to show the current master, live")
        except AssertionError as e:
            return [f"dashboard: {e}"]
        return []

    def sample_master_cpu(self) -> None:
        """The master's (and the dashboard's) CPU seconds and RSS, read every half second
        (kept per process: a killed master's last reading stays counted)."""
        while not self.stop.wait(0.5):
            with self.lock:
                proc = self.procs.get("master")
            if proc is None:
                continue
            cpu, rss = _cpu_rss(proc.pid)
            if cpu is None:
                continue
            self.master_cpu[proc.pid] = cpu
            dash_cpu, dash_rss = (_cpu_rss(self.dashboard_proc.pid) if self.dashboard_proc
                                  else (None, None))
            self.samples.append((time.time(), proc.pid, cpu, rss or 0, dash_cpu or 0.0,
                                 dash_rss or 0))

    def dashboard_dropped(self) -> Any:
        """Events the master left out for the dashboard (it fell behind), as it counts."""
        import urllib.request
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.dashboard_port}/api/throughput", timeout=3) as r:
                return json.load(r).get("dropped")
        except OSError as e:
            return f"unknown ({e})"

    def write_samples(self, path: Path) -> None:
        lines = ["time,master_pid,master_cpu_s,master_rss_kb,dashboard_cpu_s,dashboard_rss_kb"]
        lines += [",".join(str(v) for v in row) for row in self.samples]
        path.write_text("\n".join(lines) + "\n")

    # --- chaos ---

    def chaos(self) -> None:
        r = self.chaos_rng
        victims = (list(WORKERS) if self.local
                   else ["master", "master", *WORKERS, "link1", "link2", "client-link"])
        while not self.stop.wait(r.uniform(2.0, 5.0)):
            victim = r.choice(victims)
            action = "cut" if "link" in victim else r.choice(["kill", "stop"])
            pause = r.uniform(0.5, 3.0)
            self.actions[f"{action} {victim}"] += 1
            print(f"[{time.strftime('%H:%M:%S')}] chaos: {action} {victim} ({pause:.1f} s)",
                  flush=True)
            try:
                self._inflict(victim, action, pause)
            except Exception as e:  # noqa: BLE001 - chaos must go on; say what failed
                print(f"chaos: {action} {victim} failed: {e}", flush=True)

    def _inflict(self, victim: str, action: str, pause: float) -> None:
        if action == "cut":
            if victim == "client-link":
                self.hosts.drop_to_test(True)
                try:
                    time.sleep(pause)  # the fault itself: this long
                finally:
                    self.hosts.drop_to_test(False)
            else:
                k = int(victim[-1])
                self.hosts.set_link(k, up=False)
                try:
                    time.sleep(pause)
                finally:
                    self.hosts.set_link(k, up=True)
            return
        with self.lock:
            proc = self.procs[victim]
        if action == "stop":
            proc.signal(signal.SIGSTOP)
            try:
                time.sleep(pause)
            finally:
                proc.signal(signal.SIGCONT)
            return
        proc.kill()
        if victim == "master":
            self.master_kills.append(time.time())
        time.sleep(pause)
        with self.lock:
            if victim == "master":
                self.start_master()
            else:
                self.start_worker(victim)

    # --- workload ---

    def submit_some(self, client: zq.Client) -> None:
        r, log = self.rng, str(self.log)
        for _ in range(r.randint(1, 5)):
            kind = r.choice(["short", "short", "short", "long", "flaky", "stream", "delayed",
                             "async", "cancel"])
            tag = f"{kind}-{len(self.tasks)}"
            expect: dict[str, Any] = {"kind": kind, "tag": tag, "value": tag}
            if kind == "short":
                f = client.submit(RUN, log, tag)
            elif kind == "long":
                f = client.submit(RUN, log, tag, r.uniform(1.0, 3.0))
            elif kind == "flaky":  # at least two runs: the first fails
                f = client.options(retries=3, retry_backoff=0.2).submit(RUN, log, tag, 0.0, 1)
            elif kind == "stream":
                f = client.submit(STREAM, log, tag, r.randint(1, 20))
            elif kind == "delayed":
                f = client.options(delay=r.uniform(1.0, 3.0)).submit(RUN, log, tag)
            elif kind == "async":
                f = client.options(queue="aio").submit(ARUN, log, tag, r.uniform(0.0, 0.5))
            else:
                f = client.submit(RUN, log, tag, 5.0)
                threading.Timer(r.uniform(0.1, 1.0), f.cancel).start()
            expect["future"] = f
            self.tasks[f.id] = expect
            f.add_done_callback(lambda fut, tid=f.id: self.finished_at.setdefault(tid, time.time()))

    def in_flight(self) -> int:
        return sum(1 for e in self.tasks.values() if not e["future"].done())

    # --- the run ---

    def run(self, minutes: float, dashboard: bool = False) -> list[str]:
        self.start_master()
        wait_until(self.status, 30, "the master to answer")
        for name in WORKERS:
            self.start_worker(name)
        wait_until(lambda: len((self.status() or {}).get("workers", ())) == len(WORKERS), 60,
                   "the workers to register")
        if dashboard:
            self.start_dashboard()
        threading.Thread(target=self.sample_master_cpu, name="cpu", daemon=True).start()
        chaos = threading.Thread(target=self.chaos, name="chaos", daemon=True)
        with zq.Client(self.endpoint) as client:
            client.schedule("soak-beat", RUN, str(self.log), "beat", every=3.0)
            chaos.start()
            deadline = time.monotonic() + minutes * 60
            next_note = time.monotonic() + 60
            while time.monotonic() < deadline:
                if self.in_flight() < MAX_IN_FLIGHT:
                    self.submit_some(client)
                time.sleep(self.rng.uniform(0.05, 0.3))
                if time.monotonic() >= next_note:
                    next_note += 60
                    print(f"[{time.strftime('%H:%M:%S')}] soak: {len(self.tasks)} tasks "
                          f"submitted, {self.in_flight()} in flight", flush=True)
            self.stop.set()
            chaos.join(30)
            self.heal()
            cpu = sum(self.master_cpu.values())
            print(f"soak: master CPU {cpu:.1f} s over {len(self.master_cpu)} master "
                  f"processes, {len(self.tasks)} tasks submitted"
                  + (" (zq dashboard and three browser pages open)" if dashboard else ""),
                  flush=True)
            print("soak: cost " + json.dumps(cost_summary(self.samples)), flush=True)
            if dashboard:
                print(f"soak: events the master left out for the dashboard: "
                      f"{self.dashboard_dropped()}", flush=True)
            followed = self.dashboard_followed() if dashboard else []
            self.beat = next(s for s in client.schedules() if s["name"] == "soak-beat")
            client.unschedule("soak-beat")
            return followed + self.check(client)

    def heal(self) -> None:
        """Everything up and running again, for the end of the run."""
        for k in (1, 2):
            try:
                self.hosts.set_link(k, up=True)
            except Exception:  # noqa: BLE001 - already up
                pass
        try:
            self.hosts.drop_to_test(False)
        except Exception:  # noqa: BLE001 - no such route: already healed
            pass
        with self.lock:
            for name, proc in list(self.procs.items()):
                proc.signal(signal.SIGCONT)
                if not proc.alive():
                    self.start_master() if name == "master" else self.start_worker(name)
        wait_until(self.status, 60, "the master to answer after the chaos")

    # --- the invariants ---

    def check(self, client: zq.Client) -> list[str]:
        violations: list[str] = []
        outcome: Counter[str] = Counter()
        deadline = time.monotonic() + 180
        for tid, e in self.tasks.items():
            f = e["future"]
            try:
                value = f.result(timeout=max(0.1, deadline - time.monotonic()))
                e["outcome"] = "succeeded"
                if value != e["value"]:
                    violations.append(f"{e['tag']}: result {value!r}")
            except BaseException as exc:  # noqa: BLE001 - what it is decides (a cancel too)
                e["outcome"] = _outcome(exc)
            outcome[e["outcome"]] += 1
            if e["outcome"] == "no result":
                violations.append(f"1: {e['tag']} ({tid}) has no final result")
        records, lost = self.final_records(client)
        violations += [f"1: the master lost accepted task {self.tasks[tid]['tag']} ({tid})"
                       for tid in lost]
        raced = 0
        for tid, rec in records.items():
            e = self.tasks[tid]
            if rec["state"] not in FINAL:
                violations.append(f"1: {e['tag']} is {rec['state']} at the master")
            elif e["kind"] == "cancel" and e["outcome"] == "cancelled":
                raced += rec["state"] != "cancelled"  # documented: cancel() settles at once
            elif (rec["state"] == "succeeded") != (e["outcome"] == "succeeded"):
                violations.append(f"1: {e['tag']}: the client saw {e['outcome']}, the master "
                                  f"says {rec['state']}")
            if e["kind"] != "cancel" and e["kind"] != "flaky" and rec["state"] == "failed":
                violations.append(f"{e['tag']} failed: {rec.get('error')}")
        ticks = self.ticks(client)
        held = sum(client.status()["counts"].values())
        if held != len(self.tasks) + len(ticks):
            violations.append(f"2: the master holds {held} tasks; {len(self.tasks)} were "
                              f"accepted and {len(ticks)} ticks fired")
        violations += self.check_runs(records, ticks)
        print(f"soak: {len(self.tasks)} tasks: {dict(outcome)}; {len(ticks)} schedule ticks; "
              f"{raced} cancels came after the task had finished (the future says cancelled, "
              f"as documented)")
        print(f"soak: chaos: {dict(self.actions)}")
        return violations

    def final_records(self, client: zq.Client) -> tuple[dict[str, dict], list[str]]:
        """The master's record of every task, waiting (bounded) until each is final. A
        cancelled future settles at once (concurrent.futures), while its task may still
        be running: a thread-pool task stops only at its next check, and a worker that
        was frozen or cut off reports back late. So a record still running when the
        future settled is asked again until FINAL_WAIT seconds have passed."""
        records: dict[str, dict] = {}
        lost: list[str] = []
        pending = list(self.tasks)
        deadline = time.monotonic() + FINAL_WAIT
        while pending:
            still = []
            for tid in pending:
                try:
                    records[tid] = rec = client.get(tid)
                except zq.Rejected:
                    lost.append(tid)
                    continue
                if rec["state"] not in FINAL:
                    still.append(tid)
            pending = still
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # bounded by FINAL_WAIT: the master finishing the last tasks
        return records, lost

    def ticks(self, client: zq.Client) -> list[str]:
        """The ids of the schedule's ticks the master holds: NAME@TICK for each tick
        anchor + k * every up to now (a tick missed while the master was down is not
        there: only the latest missed one fires)."""
        anchor, every, found, k = self.beat["anchor"], self.beat["every"], [], 1
        while anchor + k * every <= time.time():
            tid = "soak-beat@" + f"{anchor + k * every:.6f}".rstrip("0").rstrip(".")
            try:
                client.get(tid)
                found.append(tid)
            except zq.Rejected:
                pass
            k += 1
        return found

    def _near_a_master_kill(self, runs: list[tuple[int, float]]) -> bool:
        if not runs:
            return False
        first, last = min(t for _, t in runs), max(t for _, t in runs)
        return any(first - 10 <= k <= last + 10 for k in self.master_kills)

    def check_runs(self, records: dict[str, dict], ticks: list[str]) -> list[str]:
        violations = []
        runs: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for line in self.log.read_text().splitlines() if self.log.exists() else []:
            tag, attempt, _pid, started = line.split()
            runs[tag].append((int(attempt), float(started)))
        by_tag = {e["tag"]: tid for tid, e in self.tasks.items()}
        unknown = set(runs) - set(by_tag) - {"beat"}
        if unknown:
            violations.append(f"4: runs of tasks never submitted: {sorted(unknown)[:5]}")
        extra = late = 0
        for tag, tid in by_tag.items():
            e, rec, mine = self.tasks[tid], records.get(tid), runs.get(tag, [])
            if rec is None:
                continue
            if rec["state"] == "succeeded" and not mine:
                violations.append(f"4: {tag} succeeded without a run")
            # After a master restart the record may show a lower attempt than ran: the
            # attempt is not stored when a task is leased (issue 10, crash consistency).
            restart = (" (a master was killed meanwhile: the attempt was not stored at "
                       "lease)" if self._near_a_master_kill(mine) else "")
            if e["kind"] == "flaky" and rec["state"] == "succeeded" and rec["attempt"] < 2:
                violations.append(f"4: {tag} fails its first attempt, yet succeeded on it"
                                  f"{restart}")
            final_attempt = rec["attempt"]
            higher = [a for a, _ in mine if a > final_attempt]
            if higher and rec["state"] != "cancelled":
                violations.append(f"3: {tag} ran with attempt {max(higher)} after its final "
                                  f"attempt {final_attempt}{restart}")
            done = self.finished_at.get(tid)
            late += sum(1 for _, started in mine if done is not None and started > done + 0.5)
            extra += max(0, len(mine) - 1 - (1 if e["kind"] == "flaky" else 0))
        beats = len(runs.get("beat", []))
        print(f"soak: runs: {sum(len(v) for v in runs.values())} in all, {extra} extra "
              f"(at-least-once reruns), {late} started after their task's result; "
              f"{beats} runs of {len(ticks)} ticks")
        return violations

    def close(self) -> None:
        self.stop.set()
        for p in reversed(self.all_procs):
            try:
                p.signal(signal.SIGCONT)
                p.close()
            except Exception:  # noqa: BLE001 - one stuck process must not keep the others
                pass


def _cpu_rss(pid: int) -> tuple[float | None, int | None]:
    """A process's CPU seconds (user + system) and RSS in kB, or Nones when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None, None
    rss = next((int(line.split()[1]) for line in status.splitlines()
                if line.startswith("VmRSS:")), None)
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK"), rss


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    q = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else \
        values * 99
    return {"p50": round(statistics.median(values), 1), "p90": round(q[89], 1),
            "p99": round(q[98], 1), "max": round(max(values), 1), "n": len(values)}


def cost_summary(samples: list[tuple[float, int, float, int, float, int]],
                 window: float = WINDOW) -> dict[str, Any]:
    """CPU% of a core per `window` seconds (windows within one master process only) and
    RSS over the run: the median of the first two minutes after WARM_UP, of the last two,
    and the largest; the same for the dashboard when it ran."""
    if len(samples) < 2:
        return {}
    out: dict[str, Any] = {}
    for name, cpu_i, rss_i in (("master", 2, 3), ("dashboard", 4, 5)):
        if not any(row[rss_i] for row in samples):
            continue
        cpu_pct, start = [], samples[0]
        for row in samples[1:]:
            if row[1] != start[1]:  # a new master process: its CPU time starts again
                start = row
            elif row[0] - start[0] >= window:
                cpu_pct.append(100.0 * (row[cpu_i] - start[cpu_i]) / (row[0] - start[0]))
                start = row
        t0, t1 = samples[0][0], samples[-1][0]
        early = [r[rss_i] for r in samples if t0 + WARM_UP <= r[0] < t0 + WARM_UP + 120]
        late = [r[rss_i] for r in samples if r[0] >= t1 - 120]
        rss = {"after_warm_up_mb": round(statistics.median(early) / 1024, 1) if early else None,
               "end_mb": round(statistics.median(late) / 1024, 1) if late else None,
               "max_mb": round(max(r[rss_i] for r in samples) / 1024, 1)}
        if early and late:
            rss["growth_mb"] = round((statistics.median(late) - statistics.median(early))
                                     / 1024, 1)
        out[name] = {"cpu_pct_per_window": _percentiles(cpu_pct),
                     "cpu_s": round(samples[-1][cpu_i] - samples[0][cpu_i], 1)
                     if samples[-1][1] == samples[0][1] else None,
                     "rss": rss}
    out["window_s"], out["seconds"] = window, round(samples[-1][0] - samples[0][0], 1)
    return out


def _outcome(exc: BaseException) -> str:
    name = type(exc).__name__
    if "Cancel" in name:
        return "cancelled"
    if isinstance(exc, TimeoutError) or name == "TimeoutError":
        return "no result"
    return f"error {name}"


def _stop(signum: int, frame: object) -> None:
    sys.exit(f"stopped by signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=None, help="default: a random one")
    parser.add_argument("--keep", action="store_true", help="keep the logs' directory")
    parser.add_argument("--dashboard", action="store_true",
                        help="run zq dashboard with three Chromium pages open on it")
    parser.add_argument("--local", action="store_true",
                        help="everything on 127.0.0.1, no namespaces; chaos on workers only")
    parser.add_argument("--samples", type=Path, default=None,
                        help="write the master's CPU/RSS samples here (CSV)")
    a = parser.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 31)
    # SIGTERM (a test's timeout) unwinds like Ctrl-C: every process started is stopped.
    signal.signal(signal.SIGTERM, _stop)
    reason = None if a.local else netns.unavailable_reason()
    if reason is not None:
        print(f"soak: cannot run here: it needs network namespaces ({reason}); run it as root"
              " or with --local")
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="zq-soak-"))
    print(f"soak: seed {seed}, {a.minutes} min, logs in {tmp}", flush=True)
    hosts_cm: Any = contextlib.nullcontext(LocalHosts()) if a.local else netns.Hosts(workers=2)
    with hosts_cm as hosts:
        soak = Soak(hosts, tmp, seed)
        try:
            violations = soak.run(a.minutes, a.dashboard)
        finally:
            soak.close()
            if a.samples is not None:
                soak.write_samples(a.samples)
    for v in violations:
        print(f"VIOLATION: {v}")
    print(f"soak: {'FAILED' if violations else 'ok'}: {len(violations)} violations (seed {seed})")
    if not a.keep and not violations:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
