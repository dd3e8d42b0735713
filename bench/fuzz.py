"""Live fuzzer: a real master (SQLite store) and real workers serve a real client while
fuzzing peers send it random and mutated messages, then check that nothing broke.

    python bench/fuzz.py --minutes 10 [--seed N] [--peers 6] [--rss-limit-mb 400]

The fuzzing peers (threads, one DEALER each, reopened now and then to get a new
identity) send: random frames; random headers for every command code and a few that
do not exist, under every signature; valid messages of both roles (HELLO, CREDIT,
RESULT, PARTIAL, PROGRESS, BYE, HEARTBEAT, SUBMIT, WATCH, CANCEL, QUERY of every kind)
with random field types and sizes, then mutated (a field replaced, bytes flipped, cut
short, padded); forged ids (results, partials and progress for the real client's tasks
from sessions that were never given them); replays of what other peers sent; oversized
and deeply nested headers; and peers that never read. Their HELLOs only name queues of
their own, so no real task is ever leased to them, and they never cancel or purge
(legal admin actions on loopback, not attacks).

Meanwhile a real zq.Client submits tasks (bench.soak_tasks.run) to two real
workers. At the end: the master is alive and answers, its RSS stays under
--rss-limit-mb (printed; the bound is documented in bench/README.md), every real task
has exactly one result, the right one, and ran at least once (counted from the workers'
own run log). Exits 1 on any violation. The seed is printed: the same seed sends the
same messages (timing still differs).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import msgpack  # noqa: E402
import zmq  # noqa: E402
from harness import Cluster, Proc, query  # noqa: E402
from tasks import ECHO  # noqa: E402

import zq  # noqa: E402
from zq.core import codec, serde  # noqa: E402
from zq.core import messages as m  # noqa: E402
from zq.core.messages import Cmd, Role  # noqa: E402

APP = "bench.soak_tasks"
LOG_RUN = f"{APP}:run"  # appends "tag attempt pid start" to its log for each run
SIGNATURES = [b"ZQW1", b"ZQC1", b"ZQM1", b"ZQW2", b"\x00\x00\x00\x00", b""]
QUERY_KINDS = ["status", "tasks", "get", "retry", "schedule_add", "schedule_list",
               "schedule_remove", "nope", ""]  # never purge: legal, and it forgets results
MAX_REAL_IN_FLIGHT = 200
HELLO_QUEUES = 4  # index of the queues in a HELLO header
OVERSIZED_EVERY = 2.0  # seconds between two oversized messages of one peer


# --- random values ------------------------------------------------------------------------

class Gen:
    """Random values of random types and sizes, from one seeded RNG per peer."""

    def __init__(self, rng: random.Random, real_ids: Callable[[], list[str]]) -> None:
        self.r = rng
        self.real_ids = real_ids

    def scalar(self) -> Any:
        r = self.r
        return r.choice([
            lambda: None, lambda: r.random() < 0.5, lambda: r.randint(-3, 3),
            lambda: r.randint(-2**63, 2**64 - 1), lambda: r.choice([0.0, -1.5, 1e308, -1e308,
                                                                      float("inf"),
                                                                      float("-inf"),
                                                                      float("nan")]),
            lambda: r.random() * 10 ** r.randint(-5, 12), self.text, self.blob, self.some_id,
        ])()

    def text(self) -> str:
        r = self.r
        n = r.choice([0, 1, 5, 20, 200, 600, 5000])
        alphabet = "abc:._-@ /\\\x00é€\U0001F600"
        return "".join(r.choice(alphabet) for _ in range(n))

    def blob(self) -> bytes:
        return self.r.randbytes(self.r.choice([0, 1, 16, 300, 70_000]))

    def some_id(self) -> str:
        r = self.r
        real = self.real_ids()
        if real and r.random() < 0.5:
            return r.choice(real)  # forged: a real task's id
        return r.choice(["t1", "x" * 128, "x" * 129, "beat@1", f"fz{r.randrange(10**6)}"])

    def value(self, depth: int = 0) -> Any:
        r = self.r
        if depth > 3 or r.random() < 0.6:
            return self.scalar()
        if r.random() < 0.5:
            return [self.value(depth + 1) for _ in range(r.randint(0, 6))]
        return {self.text()[:20]: self.value(depth + 1) for _ in range(r.randint(0, 4))}

    def ids(self) -> list[str]:
        return [self.some_id() for _ in range(self.r.randint(0, 5))]


# --- messages -------------------------------------------------------------------------------

class Messages:
    """Valid messages of both roles with random contents, and ways to break them."""

    def __init__(self, gen: Gen) -> None:
        self.g = gen
        self.r = gen.r

    def valid(self) -> tuple[Role, m.Message]:
        r, g = self.r, self.g
        kind = r.randrange(13)
        if kind == 0:
            return Role.WORKER, m.Hello(
                f"fz-{r.randrange(50)}", "fuzz", r.randrange(1 << 20),
                [f"fuzz-{r.randrange(5)}" for _ in range(r.randint(1, 3))],
                r.randint(0, 8), r.choice(["thread", "x"]), r.randint(0, 1 << 24),
                g.ids(), r.choice(["", os.urandom(8).hex(), "s" * 200]))
        if kind == 1:
            return Role.WORKER, m.Credit(r.randint(0, 1 << 24), g.ids())
        if kind == 2:
            return Role.WORKER, m.Result([(g.some_id(), r.randint(0, 3), r.randint(0, 3),
                                           r.choice([msgpack.packb("forged"), g.blob(),
                                                     serde.encode_error("X", "forged")]))
                                          for _ in range(r.randint(1, 4))])
        if kind == 3:
            return Role.WORKER, m.Partial([(g.some_id(), r.randint(0, 3), r.randint(0, 9),
                                            g.blob()) for _ in range(r.randint(1, 3))])
        if kind == 4:
            return Role.WORKER, m.Progress([(g.some_id(), r.randint(0, 3), r.random() * 10,
                                             r.choice([0.0, 10.0, -1.0]))
                                            for _ in range(r.randint(1, 3))])
        if kind == 5:
            return Role.WORKER, m.Bye(g.ids())
        if kind == 6:
            return r.choice([Role.WORKER, Role.CLIENT]), m.Heartbeat()
        if kind == 7:
            opts = r.choice([{}, {"queue": f"fuzz-{r.randrange(3)}"}, {"delay": 3600.0},
                             {"retries": r.randint(0, 2000)}, {"after": g.ids()},
                             {"key": g.text()[:50]}, {"rate_limit": r.choice(["1/s", "x",
                                                                             "nan/s"])},
                             {"priority": r.randint(-2**40, 2**40)},
                             {"timeout": r.choice([0.0, -1.0, 1e-9, 1e300])}])
            # Never the real tasks' name: a rate_limit on it would rightly slow them down.
            name = r.choice([ECHO, "os:system", f"{APP}:__class__", g.text()[:80]])
            return Role.CLIENT, m.Submit([(f"fz{r.randrange(10**9)}", name,
                                           serde.encode_call([g.scalar()], {}), dict(opts))
                                          for _ in range(r.randint(1, 5))])
        if kind == 8:
            return Role.CLIENT, m.Watch(g.ids())
        if kind == 9:
            # Only ids of its own: cancelling a real task would be a legal client action.
            return Role.CLIENT, m.Cancel([f"fz{r.randrange(10**9)}"])
        args: dict[str, Any] = {}
        kind_name = r.choice(QUERY_KINDS)
        for _ in range(r.randint(0, 4)):
            args[r.choice(["id", "state", "limit", "name", "task", "every", "cron", "queue",
                           "priority", "args", "kwargs", "timezone", "older_than",
                           g.text()[:10]])] = g.value()
        if kind_name == "schedule_add" and r.random() < 0.5:
            args = {"name": f"fz{r.randrange(5)}", "task": r.choice([ECHO, "a:b"]),
                    "every": r.choice([0.25, 1.0, 1e-300, float("inf")]),
                    "queue": f"fuzz-{r.randrange(3)}"}
        return Role.CLIENT, m.Query(r.randint(0, 2**62), kind_name, args)

    def random_frames(self) -> list[bytes]:
        """A header of a random command code under a random signature."""
        r, g = self.r, self.g
        cmd = r.choice([*map(int, Cmd), 0, 99, -1, 2**40])
        header = [cmd, *[g.value() for _ in range(r.randint(0, 10))]]
        try:
            packed = msgpack.packb(header, use_bin_type=True)
        except (OverflowError, ValueError, TypeError):
            packed = g.blob()
        frames = [r.choice(SIGNATURES), packed]
        frames += [g.blob() for _ in range(r.choice([0, 0, 0, 1, 3]))]
        return frames

    def mutate(self, frames: list[bytes]) -> list[bytes]:
        r = self.r
        frames = list(frames)
        what = r.randrange(6)
        i = r.randrange(len(frames))
        f = bytearray(frames[i])
        if what == 0 and f:  # flip bytes
            for _ in range(r.randint(1, 4)):
                f[r.randrange(len(f))] = r.randrange(256)
        elif what == 1:  # cut short
            del f[r.randrange(len(f) + 1):]
        elif what == 2:  # padded
            f += r.randbytes(r.randint(1, 100))
        elif what == 3:  # one field of the header replaced by a random value
            try:
                header = msgpack.unpackb(frames[1], raw=False, strict_map_key=False)
                if type(header) is list and len(header) > 1:
                    at = r.randrange(1, len(header))
                    if header[0] == Cmd.HELLO and at == HELLO_QUEUES:
                        at = 1  # no [] or "default": a fuzzing worker takes no real task
                    header[at] = self.g.value()
                f = bytearray(msgpack.packb(header, use_bin_type=True))
                i = 1
            except Exception:
                pass
        elif what == 4:  # a frame more or less
            return frames[:-1] if len(frames) > 2 and r.random() < 0.5 else frames + [b"x"]
        else:  # an entry of a batch repeated many times
            return frames
        frames[i] = bytes(f)
        return frames

    def oversized(self) -> list[bytes]:
        r = self.r
        kind = r.randrange(4)
        if kind == 0:  # deeply nested
            depth = r.choice([100, 1000, 100_000])
            packed = b"\x91" * depth + b"\xc0"
            return [b"ZQC1", bytes([0x92, int(Cmd.WATCH)]) + packed]
        if kind == 1:  # a big string field
            return [b"ZQW1", msgpack.packb([int(Cmd.HELLO), "n" * (r.randint(1, 8) << 20)])]
        if kind == 2:  # many ids, one repeated
            return codec.encode(Role.CLIENT, m.Watch([self.g.some_id()] * 50_000))
        return [b"ZQC1", msgpack.packb([int(Cmd.SUBMIT), [[]] * 200_000])]


# --- one fuzzing peer -------------------------------------------------------------------------

class Peer(threading.Thread):
    def __init__(self, n: int, endpoint: str, seed: int, deadline: float,
                 real_ids: Callable[[], list[str]], sent_log: list[list[bytes]]) -> None:
        super().__init__(name=f"fuzz-{n}", daemon=True)
        self.endpoint, self.deadline = endpoint, deadline
        self.rng = random.Random(seed)
        self.real_ids = real_ids
        self.msgs = Messages(Gen(self.rng, real_ids))
        self.sent_log = sent_log  # shared with the other peers: replays
        self.deaf = n == 0  # this one never reads: its queue on the master fills
        self.counts: Counter[str] = Counter()
        self.next_oversized = 0.0
        self.ctx = zmq.Context()
        self.sock: zmq.Socket | None = None

    def _reopen(self) -> None:
        if self.sock is not None:
            self.sock.close(0)
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 1000)
        self.sock.setsockopt(zmq.RCVHWM, 10 if self.deaf else 1000)
        self.sock.connect(self.endpoint)

    def _frames(self) -> tuple[str, list[bytes]]:
        r = self.rng
        roll = r.random()
        if roll < 0.2:
            return "random", self.msgs.random_frames()
        if roll < 0.25 and self.sent_log:
            return "replay", r.choice(self.sent_log)
        if roll < 0.27 and time.monotonic() >= self.next_oversized:
            self.next_oversized = time.monotonic() + OVERSIZED_EVERY  # probes, not a flood
            return "oversized", self.msgs.oversized()
        role, msg = self.msgs.valid()
        frames = [bytes(f) for f in codec.encode(role, msg)]
        if len(self.sent_log) < 2000:
            self.sent_log.append(frames)
        if roll < 0.6:
            return "valid", frames
        return "mutated", self.msgs.mutate(frames)

    def run(self) -> None:
        self._reopen()
        try:
            while time.monotonic() < self.deadline:
                if self.rng.random() < 0.02:
                    self._reopen()  # a new identity: a new session for the master
                kind, frames = self._frames()
                if self._cancels_real_work(frames):
                    self.counts["withheld"] += 1  # a legal cancel, not an attack
                    continue
                try:
                    self.sock.send_multipart(frames, zmq.DONTWAIT)  # type: ignore[union-attr]
                    self.counts[kind] += 1
                except zmq.Again:
                    self.counts["blocked"] += 1
                    time.sleep(0.01)
                except (zmq.ZMQError, TypeError, ValueError):
                    self.counts["unsendable"] += 1
                if not self.deaf:
                    self._drain()
                time.sleep(self.rng.choice([0, 0, 0.001, 0.005]))
        finally:
            self.sock.close(0)  # type: ignore[union-attr]
            self.ctx.term()

    def _cancels_real_work(self, frames: list[bytes]) -> bool:
        """A random or mutated message that came out a valid client CANCEL of a real
        task: any client may do that, so it would only make a real task end cancelled."""
        try:
            role, msg = codec.decode(frames)
        except Exception:  # noqa: BLE001 - malformed, which is the point
            return False
        real = set(self.real_ids())
        return isinstance(msg, m.Cancel) and role is Role.CLIENT and bool(real & set(msg.ids))

    def _drain(self) -> None:
        for _ in range(100):
            try:
                self.sock.recv_multipart(zmq.NOBLOCK)  # type: ignore[union-attr]
                self.counts["answers"] += 1
            except zmq.Again:
                return


class Prober(threading.Thread):
    """Asks the master for its status every half second: how long it kept us waiting."""

    def __init__(self, endpoint: str, deadline: float) -> None:
        super().__init__(name="prober", daemon=True)
        self.endpoint, self.deadline = endpoint, deadline
        self.worst = 0.0

    def run(self) -> None:
        while time.monotonic() < self.deadline:
            start = time.monotonic()
            query(self.endpoint, timeout=60)
            self.worst = max(self.worst, time.monotonic() - start)
            time.sleep(0.5)


# --- the run --------------------------------------------------------------------------------

def run(minutes: float, seed: int, peers: int, rss_limit_mb: float) -> int:
    print(f"fuzz: seed {seed}, {minutes} min, {peers} fuzzing peers, RSS limit {rss_limit_mb} MB",
          flush=True)
    violations: list[str] = []
    with Cluster(store="sqlite") as c:
        c.start_master()
        log = c.tmp / "runs"
        for name in ("real-1", "real-2"):
            proc = Proc(["worker", "--connect", c.endpoint, "--app", APP, "--app", "bench.tasks",
                         "--pool", "thread",
                         "--concurrency", "4", "--name", name, "--log-level", "warning"],
                        c.tmp / f"{name}.log")
            c.procs.append(proc)
            c.workers.append(proc)
        c.expected = 2
        c.wait_workers(60)
        futures: dict[str, Any] = {}
        real_ids = lambda: list(futures)  # noqa: E731
        deadline = time.monotonic() + minutes * 60
        sent_log: list[list[bytes]] = []
        fuzzers = [Peer(i, c.endpoint, seed * 1000 + i, deadline, real_ids, sent_log)
                   for i in range(peers)]
        peak_rss = 0.0
        prober = Prober(c.endpoint, deadline)
        prober.start()
        with zq.Client(c.endpoint) as client:
            for p in fuzzers:
                p.start()
            n = 0
            while time.monotonic() < deadline:
                pending = sum(1 for f, _ in futures.values() if not f.done())
                if pending < MAX_REAL_IN_FLIGHT:
                    for _ in range(20):
                        tag = f"real{n}"
                        f = client.submit(LOG_RUN, str(log), tag)
                        futures[f.id] = (f, tag)
                        n += 1
                peak_rss = max(peak_rss, c.master_memory()[0])
                if not c.master.alive():
                    break
                time.sleep(0.1)
            for p in fuzzers:
                p.join(30)
            prober.join(60)
            print(f"fuzz: the longest wait for the master to answer a status query was "
                  f"{prober.worst:.1f} s", flush=True)
            alive = c.master.alive()
            print(f"fuzz: {n} real tasks submitted; master {'alive' if alive else 'DEAD'}",
                  flush=True)
            if not alive:
                violations.append("the master died")
            else:
                violations += check_real_tasks(c, client, futures, log)
                peak_rss = max(peak_rss, c.master_memory()[1])  # its peak, VmHWM
        sent = Counter()
        for p in fuzzers:
            sent.update(p.counts)
        print(f"fuzz: sent {sum(v for k, v in sent.items() if k not in ('answers',))} "
              f"messages: {dict(sent)}")
        print(f"fuzz: master peak RSS {peak_rss:.0f} MB (limit {rss_limit_mb:.0f} MB)")
        if peak_rss > rss_limit_mb:
            violations.append(f"master RSS peaked at {peak_rss:.0f} MB > {rss_limit_mb} MB")
        if violations:
            print(c.logs()[-6000:])
    for v in violations:
        print(f"VIOLATION: {v}")
    print(f"fuzz: {'FAILED' if violations else 'ok'} (seed {seed})")
    return 1 if violations else 0


def check_real_tasks(c: Cluster, client: zq.Client, futures: dict[str, Any],
                     log: Path) -> list[str]:
    """Every real task has one result, its own, and ran at least once."""
    out: list[str] = []
    status = c.status(timeout=30)
    print(f"fuzz: master counted {status.get('dropped_messages')} dropped messages")
    wrong = []
    deadline = time.monotonic() + 60 + 0.01 * len(futures)  # all of them, together
    for tid, (f, tag) in futures.items():
        try:
            value = f.result(timeout=max(0.1, deadline - time.monotonic()))
        except Exception as e:  # noqa: BLE001 - reported, whatever it is
            try:
                record = client.get(tid)
                record = {k: record.get(k) for k in ("state", "attempt", "worker", "error")}
            except Exception as q:  # noqa: BLE001
                record = f"not known: {q}"
            wrong.append(f"{tid} ({tag}): {type(e).__name__}: {e}; master: {record}")
            continue
        if value != tag:
            wrong.append(f"{tid} ({tag}): result {value!r}")
    if wrong:
        out.append(f"{len(wrong)} real tasks without their own result, e.g. {wrong[:3]}")
    ran = Counter(line.split()[0] for line in log.read_text().splitlines()) \
        if log.exists() else Counter()
    never = [tag for _, tag in futures.values() if not ran[tag]]
    if never:
        out.append(f"{len(never)} real tasks never ran, e.g. {never[:3]}")
    states = Counter()
    for tid in list(futures)[-200:]:  # the master's own record, for the latest ones
        states[client.get(tid)["state"]] += 1
    if set(states) - {"succeeded"}:
        out.append(f"real tasks the master does not list as succeeded: {dict(states)}")
    extra = sum(n - 1 for tag, n in ran.items() if tag.startswith("real") and n > 1)
    print(f"fuzz: {len(futures)} real tasks, {len(futures) - len(wrong)} with their own "
          f"result; {extra} extra runs")
    return out


def _stop(signum: int, frame: object) -> None:
    sys.exit(f"stopped by signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=None, help="default: a random one")
    parser.add_argument("--peers", type=int, default=6, help="fuzzing peers (threads)")
    parser.add_argument("--rss-limit-mb", type=float, default=400.0,
                        help="the master's peak RSS above which the run fails")
    a = parser.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 31)
    # SIGTERM (a test's timeout) unwinds like Ctrl-C: every process started is stopped.
    signal.signal(signal.SIGTERM, _stop)
    return run(a.minutes, seed, a.peers, a.rss_limit_mb)


if __name__ == "__main__":
    sys.exit(main())
