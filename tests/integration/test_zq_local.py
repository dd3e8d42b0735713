"""`zq local` (issue 10, finding 4): SIGTERM, SIGINT and SIGHUP stop the master, the
workers and everything they started, also when SIGINT was inherited as ignored (a
background job of a shell); and a `kill -9` of `zq local` still stops them (Linux)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

import zq
from tests.apps import e2e_tasks as t
from tests.integration.harness import ROOT, free_port, query, wait_until

APP = "tests.apps.e2e_tasks"


def children_of() -> dict[int, list[int]]:
    """ppid -> live (not zombie) child pids, from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # state ppid pgrp ...
        if fields[0] != "Z":
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def descendants(pid: int) -> set[int]:
    tree, out, todo = children_of(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def alive(pids: set[int]) -> set[int]:
    """Those of pids still running (zombies count as gone: they have exited)."""
    left = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if state[state.rindex(")") + 2] != "Z":
            left.add(pid)
    return left


class Local:
    """`zq local` with 2 workers of a process pool, its output in a file."""

    def __init__(self, tmp: Path, ignore_sigint: bool = False) -> None:
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.log = tmp / "local.log"
        self._out = open(self.log, "ab")

        def background_job() -> None:  # what a shell without job control does for `cmd &`
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "zq", "local", "--app", APP, "--workers", "2",
             "--concurrency", "1", "--bind", self.endpoint, "--store", "memory"],
            stdout=self._out, stderr=subprocess.STDOUT, cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1"),
            preexec_fn=background_job if ignore_sigint else None)
        self.started: set[int] = set()

    def output(self) -> str:
        self._out.flush()
        return self.log.read_text(errors="replace")

    def wait_up(self) -> set[int]:
        """Wait for the master and both workers (and their pools); their pids."""
        def up() -> bool:
            assert self.popen.poll() is None, self.output()
            st = query(self.endpoint, timeout=0.5)
            return st is not None and len(st["workers"]) == 2
        wait_until(up, 60, "zq local's master and 2 workers")
        with zq.Client(self.endpoint) as client:  # and they work
            assert client.submit(t.add, 40, 2).result(timeout=30) == 42
        # master, 2 workers, and at least a pool child of each
        self.started = wait_until(lambda: (d := descendants(self.popen.pid)) and len(d) >= 5
                                  and d, 30, "the workers' pools")
        return self.started

    def close(self) -> None:
        """Whatever is left, killed (a failed test must not leave processes behind)."""
        for pid in alive(self.started | descendants(self.popen.pid)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(10)
        self._out.close()


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Callable[..., Local]]:
    made: list[Local] = []

    def make(**kw: bool) -> Local:
        made.append(Local(tmp_path, **kw))
        return made[-1]
    yield make
    for one in made:
        one.close()


@pytest.mark.parametrize("ignore_sigint", [False, True], ids=["foreground", "background"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_stop_signal_stops_every_process_it_started(local, sig: int,
                                                      ignore_sigint: bool) -> None:
    cluster = local(ignore_sigint=ignore_sigint)
    started = cluster.wait_up()
    cluster.popen.send_signal(sig)
    assert cluster.popen.wait(60) == 0, cluster.output()
    wait_until(lambda: not alive(started), 30, "every process zq local started to exit")
    out = cluster.output()
    assert "zq.master: signal 15: stopping" in out  # stopped, not killed
    assert out.count("zq.worker: stopping:") == 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux")
def test_kill_9_of_zq_local_still_stops_every_process_it_started(local) -> None:
    cluster = local()
    started = cluster.wait_up()
    os.kill(cluster.popen.pid, signal.SIGKILL)  # zq local only: its children are on their own
    assert cluster.popen.wait(10) == -signal.SIGKILL
    wait_until(lambda: not alive(started), 60, "every process zq local started to exit")
    out = cluster.output()
    assert "zq.master: signal 15: stopping" in out  # told, not killed
    assert out.count("zq.worker: stopping:") == 2
