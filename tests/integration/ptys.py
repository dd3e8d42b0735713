"""A program run on a pseudo-terminal, as a person runs it: its screen read back with a
bounded os.read loop, keys sent to it, and the process always reaped."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from typing import Callable

from zq.testing.processes import ROOT

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]|\r")


def plain(raw: bytes) -> str:
    """What the screen shows, escape sequences and carriage returns removed."""
    return ANSI.sub("", raw.decode("utf-8", "replace"))


class PtyProc:
    """A process with stdin, stdout and stderr on a pseudo-terminal of `cols` x `rows`
    (stdout can be kept apart as a pipe, to read a result without the screen)."""

    def __init__(self, argv: list[str], cols: int = 160, rows: int = 40,
                 stdout_pipe: bool = False, env: dict | None = None) -> None:
        self.fd, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        full_env = dict(os.environ, PYTHONPATH=str(ROOT), TERM="xterm-256color",
                        COLUMNS=str(cols), LINES=str(rows), **(env or {}))
        full_env.pop("NO_COLOR", None)
        self.popen = subprocess.Popen(
            argv, stdin=slave, stdout=subprocess.PIPE if stdout_pipe else slave, stderr=slave,
            cwd=ROOT, env=full_env, start_new_session=True, close_fds=True)
        os.close(slave)
        self.raw = b""

    def read_for(self, seconds: float) -> None:
        """Read what the program draws for up to `seconds` (less if it closes the pty)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.fd], [], [], min(left, 0.1))
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:  # EIO: every process holding the pty has closed it
                    return
                if not chunk:
                    return
                self.raw += chunk

    def read_until(self, found: Callable[[str], bool], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while not found(plain(self.raw)):
            if time.monotonic() > deadline:
                raise AssertionError(f"the screen never showed {what}; it shows:\n"
                                     f"{plain(self.raw)[-3000:]}")
            self.read_for(0.2)
        return plain(self.raw)

    def send(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def wait(self, timeout: float) -> int:
        """Wait for the exit, draining the pty meanwhile (a full pty blocks the writer)."""
        deadline = time.monotonic() + timeout
        while self.popen.poll() is None and time.monotonic() < deadline:
            self.read_for(0.1)
        self.read_for(0.2)
        return self.popen.wait(max(0.1, deadline - time.monotonic()))

    def close(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(10)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        os.close(self.fd)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def zq_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "zq", *args]
