"""Real zq processes for tests and benchmarks: start one (`Proc`, in its own session,
output to a log file), wait for a condition (bounded), ask a master a QUERY, find a free
port. tests/integration/harness.py and bench/harness.py build on these.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import zmq

from zq.core import codec
from zq.core import messages as m
from zq.core.messages import Role
from zq.security import PeerKeys, configure_peer_socket

# The checkout zq runs from: processes start there, with it on PYTHONPATH.
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition",
               interval: float = 0.02) -> Any:
    """Poll predicate until it is truthy; AssertionError after timeout. Bounded."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def query(endpoint: str, kind: str = "status", args: dict | None = None,
          timeout: float = 2.0, keys: PeerKeys | None = None) -> Any:
    """One QUERY over a throwaway raw socket (CURVE with keys); None if the master does
    not answer."""
    ctx: zmq.Context = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if keys is not None:
        configure_peer_socket(sock, keys)
    try:
        sock.connect(endpoint)
        sock.send_multipart(codec.encode(Role.CLIENT, m.Query(1, kind, args or {})))
        if not sock.poll(timeout * 1000):
            return None
        _, reply = codec.decode(sock.recv_multipart())
        assert isinstance(reply, m.Reply), reply
        return reply.body if reply.ok else None
    finally:
        sock.close(0)


class Proc:
    """One zq process with its output in a log file."""

    def __init__(self, args: list[str], log: Path, prefix: list[str] | None = None,
                 env: dict | None = None, program: list[str] | None = None) -> None:
        """program: what runs with args; `python -m zq` unless given."""
        self.args, self.log = args, log
        self._out = open(log, "ab")
        full_env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **(env or {}))
        program = program or [sys.executable, "-m", "zq"]
        self.popen = subprocess.Popen((prefix or []) + program + list(args),
                                      stdout=self._out, stderr=subprocess.STDOUT, cwd=ROOT,
                                      env=full_env, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.killpg(self.popen.pid, sig) if sig == signal.SIGKILL else self.popen.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL the whole group (the process and its pool children) and reap it."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(10)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def output(self) -> str:
        self._out.flush()
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        if self.alive():
            self.kill()
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)  # stray children of the group
        except (ProcessLookupError, PermissionError):
            pass
        self._out.close()
