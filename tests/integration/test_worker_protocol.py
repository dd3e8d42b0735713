"""The real Worker against a fake master: a ROUTER on 127.0.0.1 that the test drives by
hand, checking the worker side of docs/PROTOCOL.md §4 and §6 message by message."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import zmq

from zq.config import WorkerConfig
from zq.core import codec, serde
from zq.core import messages as m
from zq.core.messages import Outcome, Role
from zq.worker import Worker

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.apps.worker_tasks"


def task(task_id: str, fn: str, *args: Any, timeout: float | None = None,
         attempt: int = 1) -> tuple:
    return (task_id, attempt, f"{APP}:{fn}", serde.encode_call(args, {}), timeout, None)


class FakeMaster:
    """A ROUTER the test drives: bounded receives, sends to the one worker it has seen."""

    def __init__(self, ctx: zmq.Context, port: int | None = None) -> None:
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if port is None:
            self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        else:  # the previous master's port; its close completes asynchronously
            deadline = time.monotonic() + 5.0
            while True:
                try:
                    self.sock.bind(f"tcp://127.0.0.1:{port}")
                    break
                except zmq.ZMQError:
                    if time.monotonic() > deadline:
                        raise
                    self.sock.poll(20)  # a bounded pause between bind attempts
            self.port = port
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.peer: bytes | None = None
        self.received: list[m.Message] = []

    def recv(self, timeout: float = 5.0) -> m.Message | None:
        if not self.sock.poll(int(timeout * 1000)):
            return None
        frames = self.sock.recv_multipart()
        self.peer = frames[0]
        role, msg = codec.decode(frames[1:])
        assert role is Role.WORKER
        self.received.append(msg)
        return msg

    def expect(self, kind: type, timeout: float = 5.0,
               skip: tuple[type, ...] = (m.Heartbeat, m.Progress)) -> Any:
        """The next message of type kind; messages of the `skip` types are passed over,
        anything else fails the test."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            msg = self.recv(max(0.0, left)) if left > 0 else None
            if msg is None:
                raise AssertionError(
                    f"no {getattr(kind, '__name__', kind)} within {timeout} s; got "
                    f"{[type(x).__name__ for x in self.received]}")
            if isinstance(msg, kind):
                return msg
            if not isinstance(msg, skip):
                raise AssertionError(f"expected {getattr(kind, '__name__', kind)}, got {msg!r}")

    def send(self, msg: m.Message) -> None:
        assert self.peer is not None, "no worker has spoken yet"
        self.sock.send_multipart([self.peer, *codec.encode(Role.MASTER, msg)])

    def send_raw(self, frames: list[bytes]) -> None:
        assert self.peer is not None
        self.sock.send_multipart([self.peer, *frames])

    def welcome(self, interval: float = 0.2, liveness: int = 3) -> None:
        self.send(m.Welcome(interval, liveness, 1 << 28, "fake-master"))

    def close(self) -> None:
        self.sock.close(linger=0)


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    c = zmq.Context()
    yield c
    c.term()


@pytest.fixture
def master(ctx: zmq.Context) -> Iterator[FakeMaster]:
    fm = FakeMaster(ctx)
    yield fm
    fm.close()


class WorkerThread:
    def __init__(self, config: WorkerConfig) -> None:
        self.worker = Worker(config)
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, name="worker-under-test", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.code = self.worker.run()

    def stop(self, timeout: float = 10.0) -> None:
        self.worker.stop(force=True)
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "worker did not stop"


@pytest.fixture
def start_worker() -> Iterator[Any]:
    started: list[WorkerThread] = []

    def start(endpoint: str, **fields: Any) -> WorkerThread:
        fields.setdefault("pool", "thread")
        fields.setdefault("concurrency", 2)
        cfg = WorkerConfig(connect=endpoint, apps=(APP,), name="w-test",
                           reconnect_min=0.05, reconnect_max=0.2, **fields)
        w = WorkerThread(cfg)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


def ok(entry: tuple) -> Any:
    assert entry[2] == Outcome.OK, serde.decode_error(entry[3])
    return serde.decode_value(entry[3])


# --- tests ----------------------------------------------------------------------------

def test_hello_fields_then_task_result_ack(master: FakeMaster, start_worker: Any) -> None:
    start_worker(master.endpoint, concurrency=2, prefetch=1, queues=("default", "io"))
    hello = master.expect(m.Hello)
    assert (hello.name, hello.host, hello.pid) == ("w-test", socket.gethostname(), os.getpid())
    assert hello.queues == ["default", "io"]
    assert (hello.concurrency, hello.pool, hello.credit, hello.running) == (2, "thread", 3, [])
    master.welcome()
    master.send(m.Task([task("t1", "add", 1, 2), task("t2", "fail", "ValueError", "no")]))
    results: dict[str, tuple] = {}
    while len(results) < 2:
        for e in master.expect(m.Result).entries:
            results[e[0]] = e
    assert ok(results["t1"]) == 3 and results["t1"][1] == 1
    assert results["t2"][2] == Outcome.ERROR
    assert serde.decode_error(results["t2"][3])["type"] == "ValueError"
    master.send(m.Ack(["t1", "t2"]))
    master.expect(m.Heartbeat)  # acknowledged: nothing is sent again


def test_heartbeat_only_when_idle(master: FakeMaster, start_worker: Any,
                                  tmp_path: Path) -> None:
    """docs/PROTOCOL.md §6: HEARTBEAT only when the worker sent nothing for an interval.
    Idle, it heartbeats; streaming a chunk every 10 ms for several intervals, it does not
    (the test counts messages, it does not time them)."""
    start_worker(master.endpoint)
    master.expect(m.Hello)
    master.welcome(interval=0.3, liveness=20)
    master.expect(m.Heartbeat, skip=())  # idle: heartbeats come
    master.expect(m.Heartbeat, skip=())
    gate = tmp_path / "gate"
    master.send(m.Task([task("s", "stream_until_file", str(gate))]))
    chunks = 0
    while chunks == 0:  # the stream has begun
        chunks += sum(len(x.entries) for x in [master.expect(m.Partial)])
    busy: list[m.Message] = []
    while chunks < 200:  # 200 chunks: about 2 s, over six intervals, of steady traffic
        msg = master.recv(5.0)
        assert msg is not None, "the stream stopped"
        busy.append(msg)
        if isinstance(msg, m.Partial):
            chunks += len(msg.entries)
    gate.touch()
    (entry,) = master.expect(m.Result).entries
    assert ok(entry) >= 200
    beats = [x for x in busy if isinstance(x, m.Heartbeat)]
    # A correct worker sends none here; one is allowed for a stall of the task thread
    # longer than the interval on a loaded machine. A worker heartbeating regardless of
    # traffic would have sent about six.
    assert len(beats) <= 1, [type(x).__name__ for x in busy]
    master.send(m.Ack(["s"]))
    master.expect(m.Heartbeat, skip=())  # idle again


def test_results_resent_after_reconnect_until_acked(ctx: zmq.Context, start_worker: Any,
                                                    tmp_path: Path) -> None:
    gate = tmp_path / "gate"  # t2 runs until the test opens it: still running at the HELLO
    first = FakeMaster(ctx)
    port = first.port
    try:
        start_worker(first.endpoint)
        first.expect(m.Hello)
        # a 1 s window, not 0.2 s: the worker checks it before sending a turn's results,
        # so a loop turn late by the window would send its HELLO again (to this socket,
        # failing the expects below) before t1's result and t2's progress
        first.welcome(interval=0.1, liveness=10)
        first.send(m.Task([task("t1", "add", 1, 1), task("t2", "wait_for_file", str(gate))]))
        assert first.expect(m.Result).entries[0][0] == "t1"  # not ACKed: the master dies
        while not any(isinstance(x, m.Progress) for x in first.received):
            first.expect(m.Progress, skip=(m.Heartbeat,))  # t2 has started
    finally:
        first.close()

    second = FakeMaster(ctx, port)
    try:
        hello = second.expect(m.Hello)
        assert hello.running == ["t2"]  # still running: the master should adopt it
        assert hello.credit == 4
        second.welcome(interval=0.1, liveness=20)
        resent = {e[0]: e for e in second.expect(m.Result).entries}
        assert ok(resent["t1"]) == 2
        gate.touch()  # only now: a t2 done before the WELCOME would be resent with t1
        done = second.expect(m.Result, timeout=5.0).entries
        assert [e[0] for e in done] == ["t2"] and ok(done[0]) == "opened"
        second.send(m.Ack(["t1"]))  # t2 stays unacknowledged
        second.welcome(interval=0.1, liveness=2)  # a short window again: the master dies
        second.expect(m.Result)  # (t2 resent after this WELCOME, still not ACKed)
    finally:
        second.close()

    third = FakeMaster(ctx, port)
    try:
        assert third.expect(m.Hello).running == []
        third.welcome(interval=0.1, liveness=20)
        assert [e[0] for e in third.expect(m.Result).entries] == ["t2"]
        third.send(m.Ack(["t2"]))
        third.expect(m.Heartbeat, skip=())  # nothing left to resend
    finally:
        third.close()


def test_disconnect_is_answered_with_hello(master: FakeMaster, start_worker: Any) -> None:
    start_worker(master.endpoint)
    master.expect(m.Hello)
    master.welcome()
    master.send(m.Disconnect("who are you?"))
    assert master.expect(m.Hello).name == "w-test"


def test_credit_is_reported_and_freed_by_results(master: FakeMaster, start_worker: Any) -> None:
    start_worker(master.endpoint, concurrency=2, prefetch=1)
    credit = master.expect(m.Hello).credit
    assert credit == 3
    master.welcome(interval=0.2, liveness=20)
    todo = [task(f"t{i}", "sleep", 0.02) for i in range(12)]
    outstanding: set[str] = set()
    done: set[str] = set()
    deadline = time.monotonic() + 10
    while len(done) < 12 and time.monotonic() < deadline:
        room = credit - len(outstanding)  # a master never exceeds the credit
        if room and todo:
            batch, todo = todo[:room], todo[room:]
            outstanding.update(e[0] for e in batch)
            master.send(m.Task(batch))
        for e in master.expect(m.Result).entries:
            assert e[0] in outstanding, "a result for a task not outstanding"
            outstanding.discard(e[0])
            done.add(e[0])
        master.send(m.Ack([e for e in done]))
    assert len(done) == 12


def test_cancel_running_task(master: FakeMaster, start_worker: Any) -> None:
    start_worker(master.endpoint)
    master.expect(m.Hello)
    master.welcome(interval=0.2, liveness=20)
    master.send(m.Task([task("t1", "wait_cancelled", 10.0)]))
    master.expect(m.Progress, skip=(m.Heartbeat,))
    master.send(m.Cancel(["t1", "unknown-id"]))
    entries = master.expect(m.Result).entries
    assert [(e[0], e[2], e[3]) for e in entries] == [("t1", Outcome.CANCELLED, b"")]


def test_malformed_and_unexpected_messages_are_dropped(master: FakeMaster,
                                                       start_worker: Any) -> None:
    start_worker(master.endpoint)
    master.expect(m.Hello)
    master.welcome(interval=0.2, liveness=20)
    master.send_raw([b"junk"])
    master.send_raw([b"ZQM1", b"\xc1\xc1"])  # not msgpack
    master.send_raw([b"ZQM1", codec.encode(Role.MASTER, m.Ack(["x"]))[1][:-1]])  # cut short
    master.send(m.Accepted(["x"]))  # a client's message
    master.send_raw(codec.encode(Role.CLIENT, m.Cancel(["x"])))  # wrong role
    master.send(m.Task([task("t1", "add", 20, 22)]))
    assert ok(master.expect(m.Result).entries[0]) == 42


# --- signals: a real worker process ---------------------------------------------------

def spawn_worker(endpoint: str, tmp_path: Path, **fields: Any) -> subprocess.Popen:
    fields.setdefault("shutdown_timeout", 10.0)
    cfg = dict(connect=endpoint, apps=(APP,), name="w-proc", pool="process",
               concurrency=1, prefetch=2, **fields)
    code = ("import logging, sys\n"
            "logging.basicConfig(level=logging.INFO)\n"
            "from zq.config import WorkerConfig\n"
            "from zq.worker import run_worker\n"
            f"sys.exit(run_worker(WorkerConfig(**{cfg!r})))\n")
    log = open(tmp_path / "worker.log", "wb")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        log.close()


@pytest.fixture
def worker_proc(master: FakeMaster, tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen] = []

    def start(**fields: Any) -> subprocess.Popen:
        p = spawn_worker(master.endpoint, tmp_path, **fields)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(10)
        try:
            os.killpg(p.pid, signal.SIGKILL)  # pool children left in its session
        except ProcessLookupError:
            pass
    log = tmp_path / "worker.log"
    if log.exists():
        print(log.read_text(errors="replace"))


def test_sigterm_returns_unstarted_finishes_running_then_bye(master: FakeMaster,
                                                             worker_proc: Any,
                                                             tmp_path: Path) -> None:
    gate = tmp_path / "gate"  # t1 runs until the worker has handled SIGTERM
    proc = worker_proc()
    hello = master.expect(m.Hello, timeout=30)
    assert (hello.pool, hello.credit, hello.pid) == ("process", 3, proc.pid)
    master.welcome(interval=0.2, liveness=20)
    master.send(m.Task([task("t1", "wait_for_file", str(gate)),
                        task("t2", "add", 1, 1), task("t3", "add", 2, 2)]))
    master.expect(m.Progress, skip=(m.Heartbeat,))  # t1 runs; t2, t3 wait their turn
    proc.send_signal(signal.SIGTERM)
    credit = master.expect(m.Credit, skip=(m.Heartbeat, m.Progress, m.Result))
    assert credit.credit == 0
    gate.touch()
    returned = set(credit.returned)
    results: dict[str, tuple] = {e[0]: e for e in m_results(master)}
    while "t1" not in results:
        msg = master.expect((m.Result, m.Credit))  # type: ignore[arg-type]
        if isinstance(msg, m.Credit):
            assert msg.credit == 0
            returned.update(msg.returned)
        else:
            results.update({e[0]: e for e in msg.entries})
    assert ok(results["t1"]) == "opened"
    assert returned | set(results) == {"t1", "t2", "t3"} and not returned & set(results)
    assert returned  # the single child was busy with t1
    master.send(m.Ack(list(results)))
    bye = master.expect(m.Bye, skip=(m.Heartbeat,))
    assert bye.returned == []
    assert proc.wait(10) == 0


def m_results(master: FakeMaster) -> list[tuple]:
    return [e for x in master.received if isinstance(x, m.Result) for e in x.entries]


def test_second_signal_stops_at_once(master: FakeMaster, worker_proc: Any) -> None:
    proc = worker_proc(shutdown_timeout=120.0)  # the first signal alone waits 60 s here
    master.expect(m.Hello, timeout=30)
    master.welcome(interval=0.2, liveness=20)
    master.send(m.Task([task("t1", "sleep_then_add", 60, 1, 2)]))
    master.expect(m.Progress, skip=(m.Heartbeat,))
    proc.send_signal(signal.SIGTERM)
    assert master.expect(m.Credit).credit == 0
    proc.send_signal(signal.SIGTERM)
    master.expect(m.Bye)
    assert proc.wait(10) == 1  # the 60 s task did not hold it
