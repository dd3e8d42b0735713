"""Many light zq workers in one process, for bench/scale.py: one DEALER per worker, each
registers (HELLO), answers every TASK at once with OK results of None, heartbeats, and
re-registers when the master asks (DISCONNECT), after a jittered backoff as zq's worker
waits before it reconnects, so a master restarted under 1,000 of them does not get
their HELLOs in one instant. No pool, no task code: what is measured is the master's
cost of serving many connected workers.

It answers every task at once, so everything it holds runs: it declares a concurrency
equal to its credit unless told otherwise (--concurrency 1 makes the master spread
tasks one per idle slot, as it must for single-slot workers, so a TASK message then
holds about one task; bench/scale.py --fake-concurrency).

    python bench/fake_worker.py --connect tcp://127.0.0.1:PORT --count 64 --credit 100
                                [--stats FILE]

--stats FILE: the tasks answered and the TASK messages they came in, written (as
`tasks messages`) at most every quarter heartbeat interval when they changed.
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import signal
import socket as _socket
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgpack  # noqa: E402
import zmq  # noqa: E402

from zq import transport  # noqa: E402
from zq.core import backoff, codec  # noqa: E402
from zq.core import messages as m  # noqa: E402
from zq.core.messages import Outcome, Role  # noqa: E402

NONE = msgpack.packb(None)
OK = int(Outcome.OK)
IDLE_EXIT = 60.0  # seconds without a word from the master before giving up
# The waits before a worker told DISCONNECT connects again on a fresh socket and sends
# HELLO (zq's worker: WorkerConfig's reconnect_min and jitter fraction): the first try
# 0.05-0.1 s, doubling with each try until a WELCOME, up to 2 s.
HELLO_BASE, HELLO_CAP, HELLO_JITTER = 0.1, 2.0, 0.5
RECONNECT_MAX_MS = 1000  # libzmq's reconnect interval at most (see _open)


class FakeWorkers:
    def __init__(self, connect: str, count: int, credit: int, name: str,
                 heartbeat: float, concurrency: int | None = None,
                 watch: bool = False) -> None:
        self.watch = watch
        self.monitors: dict[zmq.Socket, int] = {}  # --watch: monitor -> its worker
        self.monitor_of: dict[int, zmq.Socket] = {}
        self.connect, self.credit, self.heartbeat = connect, credit, heartbeat
        self.concurrency = credit if concurrency is None else concurrency
        self.log: Any = None  # a file: one line per task answered
        self.names = [f"{name}-{i}" for i in range(count)]
        self.ctx = zmq.Context()
        self.ctx.set(zmq.MAX_SOCKETS, 4 * count + 64)  # --watch: a monitor pair per socket
        self.poller = zmq.Poller()
        self.socks: list[zmq.Socket | None] = [None] * count
        self.index: dict[zmq.Socket, int] = {}
        self.stopping = False
        self.host = _socket.gethostname()
        self.last_sent = [0.0] * count  # monotonic time each worker last sent
        self.tasks = self.task_messages = 0  # tasks answered, TASK messages they came in
        self.stats: Path | None = None
        # Re-registration: (due, worker) reconnects waiting for their backoff (the
        # worker's socket is closed meanwhile), and each worker's tries since a WELCOME.
        self.reconnects: list[tuple[float, int]] = []
        self.tries = [0] * count
        self.rand = random.Random()
        for i in range(count):
            self._open(i)

    def _open(self, i: int) -> None:
        """A fresh socket for worker i, and its HELLO (queued until it connects)."""
        sock = transport.peer_socket(self.ctx, self.connect)
        # libzmq retries a lost connection at 0.1 s doubling (plus up to 0.1 s of jitter);
        # transport caps that at 5 s, which zq's worker never waits out: it sees the
        # link drop and opens a fresh socket after its own jittered backoff, retrying
        # from 0.1 s again. A fake worker keeps its socket, so it caps the retries at 1 s
        # to come back about as soon as zq's worker would.
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_MAX_MS)
        self.socks[i] = sock
        self.index[sock] = i
        self.poller.register(sock, zmq.POLLIN)
        if self.watch:  # as zq's worker: a dropped link is a lost master at once
            monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
            self.monitors[monitor] = i
            self.monitor_of[i] = monitor
            self.poller.register(monitor, zmq.POLLIN)
        hello = m.Hello(self.names[i], self.host, os.getpid(), ["default"], self.concurrency,
                        "fake", self.credit, [])
        sock.send_multipart(codec.encode(Role.WORKER, hello), zmq.DONTWAIT)
        self.last_sent[i] = time.monotonic()

    def _reconnect_later(self, i: int, now: float) -> None:
        """Close worker i's socket (nothing more goes to a master that forgot it) and
        open a fresh one after the backoff of its next try, as zq's worker does after
        losing its master: a fleet told at once does not come back at once."""
        sock = self.socks[i]
        if sock is not None:
            monitor = self.monitor_of.pop(i, None)
            if monitor is not None:
                self.poller.unregister(monitor)
                del self.monitors[monitor]
                sock.disable_monitor()
                monitor.close(0)
            self.poller.unregister(sock)
            del self.index[sock]
            sock.close(0)
            self.socks[i] = None
        delay = backoff.compute_backoff(self.tries[i], base=HELLO_BASE, cap=HELLO_CAP,
                                        rand=self.rand.random(), first=0,
                                        jitter=backoff.worker_jitter(HELLO_JITTER))
        self.tries[i] += 1
        heapq.heappush(self.reconnects, (now + delay, i))

    def _due_reconnects(self, now: float) -> None:
        while self.reconnects and self.reconnects[0][0] <= now:
            self._open(heapq.heappop(self.reconnects)[1])

    def _write_stats(self) -> None:
        if self.stats is not None:
            tmp = self.stats.with_suffix(".tmp")
            tmp.write_text(f"{self.tasks} {self.task_messages}\n")
            os.replace(tmp, self.stats)

    def run(self) -> int:
        """Serve until stopped. Like zq's worker (PROTOCOL §6), a worker sends HEARTBEAT
        only when it has sent nothing for a heartbeat interval (looked at every quarter
        of one)."""
        beat = codec.encode(Role.WORKER, m.Heartbeat())
        next_beat = time.monotonic() + self.heartbeat / 4
        last_heard = time.monotonic()
        written = (-1, -1)
        while not self.stopping:
            now = time.monotonic()
            if now - last_heard > IDLE_EXIT:
                print(f"nothing from the master for {IDLE_EXIT} s; exiting", flush=True)
                return 1
            self._due_reconnects(now)
            if now >= next_beat:
                if (self.tasks, self.task_messages) != written:
                    written = (self.tasks, self.task_messages)
                    self._write_stats()
                last_sent = self.last_sent
                for i, sock in enumerate(self.socks):
                    if sock is None or now - last_sent[i] < self.heartbeat:
                        continue
                    last_sent[i] = now
                    try:
                        sock.send_multipart(beat, zmq.DONTWAIT)  # type: ignore[union-attr]
                    except zmq.Again:
                        pass
                next_beat = now + self.heartbeat / 4
            wake = min(next_beat, self.reconnects[0][0]) if self.reconnects else next_beat
            events = self.poller.poll(max(1, int((wake - now) * 1000)))
            if events:
                last_heard = time.monotonic()
            for sock, _ in events:
                i = self.monitors.get(sock)
                if i is None:
                    self._drain(sock)
                elif self.socks[i] is not None:  # the link dropped (the master died)
                    self._reconnect_later(i, time.monotonic())
        return 0

    def _drain(self, sock: zmq.Socket) -> None:
        encode = codec.encode
        for _ in range(1000):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            _, msg = codec.decode(frames)
            if type(msg) is m.Task:
                self.tasks += len(msg.entries)
                self.task_messages += 1
                results = m.Result([(e[0], e[1], OK, NONE) for e in msg.entries])
                if self.log is not None:  # what "ran", for fault tests to count
                    now = time.time()
                    self.log.write("".join(f"{e[0]} {e[1]} {now:.6f}\n" for e in msg.entries))
                    self.log.flush()
                sock.send_multipart(encode(Role.WORKER, results))
                self.last_sent[self.index[sock]] = time.monotonic()
            elif type(msg) is m.Welcome:
                self.tries[self.index[sock]] = 0
            elif type(msg) is m.Disconnect:  # unknown to the master (it restarted)
                self._reconnect_later(self.index[sock], time.monotonic())
                return  # that socket is closed now

    def close(self) -> None:
        for monitor in self.monitors:
            monitor.close(0)
        for sock in self.socks:
            if sock is not None:
                sock.close(0)
        self.ctx.term()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connect", required=True)
    parser.add_argument("--count", type=int, default=1, help="workers (sockets)")
    parser.add_argument("--credit", type=int, default=100, help="tasks held per worker")
    parser.add_argument("--name", default=f"fake{os.getpid()}")
    parser.add_argument("--concurrency", type=int,
                        help="slots declared in HELLO (default: --credit)")
    parser.add_argument("--heartbeat", type=float, default=1.0, help="the master's interval")
    parser.add_argument("--log", help="append `task_id attempt time` per task answered")
    parser.add_argument("--stats", help="keep `tasks messages` answered in this file")
    parser.add_argument("--watch", action="store_true",
                        help="watch each socket (a monitor) and reconnect as soon as its "
                             "link drops, as zq's worker does, instead of when a HEARTBEAT "
                             "is answered with DISCONNECT")
    a = parser.parse_args()
    fakes = FakeWorkers(a.connect, a.count, a.credit, a.name, a.heartbeat, a.concurrency,
                        a.watch)
    fakes.log = open(a.log, "a") if a.log else None
    fakes.stats = Path(a.stats) if a.stats else None

    def stop(signum: int, frame: object) -> None:
        fakes.stopping = True
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        return fakes.run()
    finally:
        fakes.close()


if __name__ == "__main__":
    sys.exit(main())
