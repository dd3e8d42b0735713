"""A scripted zq master for client tests: a ROUTER on 127.0.0.1 in a thread that speaks the
client side of docs/PROTOCOL.md through zq.core.codec, and can run tasks in-process."""

from __future__ import annotations

import queue
import threading
import time
import traceback
from typing import Any, Callable

import zmq

from zq.core import codec, serde
from zq.core import messages as m
from zq.core.messages import Cmd, Role, State
from zq.registry import Registry

APPS = ["tests.apps.client_tasks"]


class FakeMaster:
    """accept: answer every SUBMIT with ACCEPTED. run: also run the tasks (registry of
    tests.apps.client_tasks, except "slow") and push PARTIAL/RESULT. same_as: id -> existing
    id for ACCEPTED. replies: QUERY kind -> (ok, body)."""

    def __init__(self, port: int | None = None, *, accept: bool = True, run: bool = False,
                 heartbeat: bool = True, reverse: bool = False) -> None:
        self.accept, self.run, self.heartbeat = accept, run, heartbeat
        self.reverse = reverse  # answer each SUBMIT's results last first, in one RESULT
        self.same_as: dict[str, str] = {}
        self.replies: dict[str, tuple[bool, Any]] = {}
        self.registry = Registry(APPS)
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if port is None:
            self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        else:
            self.sock.bind(f"tcp://127.0.0.1:{port}")
            self.port = port
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.peer: bytes | None = None
        self.log: list[m.Message] = []  # every message received, in order
        self.cond = threading.Condition()
        self.outq: queue.Queue[tuple[bytes | None, m.Message]] = queue.Queue()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="fake-master", daemon=True)
        self.thread.start()

    # --- test side ---

    def send(self, msg: m.Message, peer: bytes | None = None) -> None:
        self.outq.put((peer, msg))

    def wait_for(self, pred: Callable[[list[m.Message]], Any], timeout: float = 5.0) -> Any:
        """Wait until pred(log) is truthy; return its value. AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                value = pred(self.log)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"fake master: condition not met in {timeout} s; "
                                         f"got {[type(x).__name__ for x in self.log]}")
                self.cond.wait(left)

    def of(self, cls: type) -> list[Any]:
        with self.cond:
            return [x for x in self.log if isinstance(x, cls)]

    def submitted(self) -> list[m.SubmitEntry]:
        return [e for s in self.of(m.Submit) for e in s.entries]

    def wait_submitted(self, n: int, timeout: float = 5.0) -> list[m.SubmitEntry]:
        self.wait_for(lambda log: sum(len(x.entries) for x in log
                                      if isinstance(x, m.Submit)) >= n, timeout)
        return self.submitted()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(5.0)
        self.sock.close(linger=0)
        self.ctx.term()

    # --- master thread ---

    def _loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while not self.stopping.is_set():
            if poller.poll(5):  # a short poll so queued test messages go out promptly
                for _ in range(10_000):
                    try:
                        frames = self.sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self._handle(frames[0], frames[1:])
            while True:
                try:
                    peer, msg = self.outq.get_nowait()
                except queue.Empty:
                    break
                self._send(peer or self.peer, msg)

    def _send(self, peer: bytes | None, msg: m.Message) -> None:
        if peer is not None:
            self.sock.send_multipart([peer, *codec.encode(Role.MASTER, msg)])

    def _handle(self, peer: bytes, frames: list[bytes]) -> None:
        role, msg = codec.decode(frames)
        assert role is Role.CLIENT  # test-only code: a bad message should fail loudly
        self.peer = peer
        with self.cond:
            self.log.append(msg)
            self.cond.notify_all()
        if msg.cmd is Cmd.HEARTBEAT and self.heartbeat:
            self._send(peer, m.Heartbeat())
        elif msg.cmd is Cmd.SUBMIT and self.accept:
            ids = [e[0] for e in msg.entries]
            same = {i: self.same_as[i] for i in ids if i in self.same_as}
            self._send(peer, m.Accepted(ids, same))
            if self.run:
                results = [self._run(peer, e) for e in msg.entries if e[0] not in same]
                results = [r for r in results if r is not None]
                if results:
                    self._send(peer, m.Result(results[::-1] if self.reverse else results))
        elif msg.cmd is Cmd.QUERY and msg.kind in self.replies:
            ok, body = self.replies[msg.kind]
            self._send(peer, m.Reply(msg.request_id, ok, body))
        elif msg.cmd is Cmd.QUERY and msg.kind in ("cancel_unstarted", "cancel_inputs"):
            # protocol 1.5's kinds, answered as a 1.4 master does: the client falls back
            self._send(peer, m.Reply(msg.request_id, False, f"unknown query {msg.kind!r}"))

    def _run(self, peer: bytes, entry: m.SubmitEntry) -> tuple | None:
        tid, name, payload, _ = entry
        if name.endswith(":slow"):
            return None
        args, kwargs = serde.decode_call(payload)
        try:
            value = self.registry.resolve(name)(*args, **kwargs)
            if hasattr(value, "__next__"):
                value = self._stream(peer, tid, value)
            state, out = State.SUCCEEDED, serde.encode_value(value)
        except Exception as e:
            state = State.FAILED
            out = serde.encode_error(type(e).__name__, str(e), traceback.format_exc())
        return (tid, int(state), out)

    def _stream(self, peer: bytes, tid: str, gen: Any) -> Any:
        seq = 0
        while True:
            try:
                chunk = next(gen)
            except StopIteration as stop:
                return stop.value
            self._send(peer, m.Partial([(tid, 1, seq, serde.encode_value(chunk))]))
            seq += 1
