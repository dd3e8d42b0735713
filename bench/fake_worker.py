"""Many light zq workers in one process, for bench/scale.py: one DEALER per worker, each
registers (HELLO), answers every TASK at once with OK results of None, heartbeats, and
re-registers when the master asks (DISCONNECT). No pool, no task code: what is measured
is the master's cost of serving many connected workers.

    python bench/fake_worker.py --connect tcp://127.0.0.1:PORT --count 64 --credit 100
"""

from __future__ import annotations

import argparse
import os
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
from zq.core import codec  # noqa: E402
from zq.core import messages as m  # noqa: E402
from zq.core.messages import Outcome, Role  # noqa: E402

NONE = msgpack.packb(None)
OK = int(Outcome.OK)
IDLE_EXIT = 60.0  # seconds without a word from the master before giving up


class FakeWorkers:
    def __init__(self, connect: str, count: int, credit: int, name: str,
                 heartbeat: float) -> None:
        self.connect, self.credit, self.heartbeat = connect, credit, heartbeat
        self.log: Any = None  # a file: one line per task answered
        self.names = [f"{name}-{i}" for i in range(count)]
        self.ctx = zmq.Context()
        self.poller = zmq.Poller()
        self.socks: list[zmq.Socket | None] = [None] * count
        self.index: dict[zmq.Socket, int] = {}
        self.stopping = False
        self.host = _socket.gethostname()
        self.last_sent = [0.0] * count  # monotonic time each worker last sent
        for i in range(count):
            self._open(i)

    def _open(self, i: int) -> None:
        old = self.socks[i]
        if old is not None:
            self.poller.unregister(old)
            del self.index[old]
            old.close(0)
        sock = transport.peer_socket(self.ctx, self.connect)
        self.socks[i] = sock
        self.index[sock] = i
        self.poller.register(sock, zmq.POLLIN)
        hello = m.Hello(self.names[i], self.host, os.getpid(), ["default"], 1, "fake",
                        self.credit, [])
        sock.send_multipart(codec.encode(Role.WORKER, hello), zmq.DONTWAIT)
        self.last_sent[i] = time.monotonic()

    def run(self) -> int:
        """Serve until stopped. Like zq's worker (PROTOCOL §6), a worker sends HEARTBEAT
        only when it has sent nothing for a heartbeat interval (looked at every quarter
        of one)."""
        beat = codec.encode(Role.WORKER, m.Heartbeat())
        next_beat = time.monotonic() + self.heartbeat / 4
        last_heard = time.monotonic()
        while not self.stopping:
            now = time.monotonic()
            if now - last_heard > IDLE_EXIT:
                print(f"nothing from the master for {IDLE_EXIT} s; exiting", flush=True)
                return 1
            if now >= next_beat:
                last_sent = self.last_sent
                for i, sock in enumerate(self.socks):
                    if now - last_sent[i] < self.heartbeat:
                        continue
                    last_sent[i] = now
                    try:
                        sock.send_multipart(beat, zmq.DONTWAIT)  # type: ignore[union-attr]
                    except zmq.Again:
                        pass
                next_beat = now + self.heartbeat / 4
            events = self.poller.poll(max(1, int((next_beat - now) * 1000)))
            if events:
                last_heard = time.monotonic()
            for sock, _ in events:
                self._drain(sock)
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
                results = m.Result([(e[0], e[1], OK, NONE) for e in msg.entries])
                if self.log is not None:  # what "ran", for fault tests to count
                    now = time.time()
                    self.log.write("".join(f"{e[0]} {e[1]} {now:.6f}\n" for e in msg.entries))
                    self.log.flush()
                sock.send_multipart(encode(Role.WORKER, results))
                self.last_sent[self.index[sock]] = time.monotonic()
            elif type(msg) is m.Disconnect:
                self._open(self.index[sock])
                return  # that socket is closed now

    def close(self) -> None:
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
    parser.add_argument("--heartbeat", type=float, default=1.0, help="the master's interval")
    parser.add_argument("--log", help="append `task_id attempt time` per task answered")
    a = parser.parse_args()
    fakes = FakeWorkers(a.connect, a.count, a.credit, a.name, a.heartbeat)
    fakes.log = open(a.log, "a") if a.log else None

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
