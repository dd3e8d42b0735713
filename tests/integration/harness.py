"""Real zq processes for integration tests: a Cluster of them, always cleaned up, on
zq.testing.processes (Proc, wait_until, query, free_port: re-exported here).

Every process runs in its own session so a whole process group (a worker and its pool
children) can be killed; every wait is bounded and fails with what the process said.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NoReturn

import pytest

import zq
from zq.security import PeerKeys
from zq.testing.processes import ROOT, Proc, free_port, query, wait_until  # noqa: F401


def skip_needing_root(reason: str) -> NoReturn:
    """Skip a test that needs powers this machine lacks (namespaces, mounts), saying why.
    A run that must prove those guarantees (.ci/run, as root, sets ZQ_TESTS_NEED_ROOT=1)
    fails instead, so CI never passes by skipping them."""
    if os.environ.get("ZQ_TESTS_NEED_ROOT") == "1":
        pytest.fail(f"ZQ_TESTS_NEED_ROOT=1, but this root-only test cannot run: {reason}")
    pytest.skip(reason)


class Cluster:
    """A master and workers on 127.0.0.1 (or in namespaces, via `prefix`)."""

    def __init__(self, tmp: Path, heartbeat: float = 0.25, liveness: int = 4) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.heartbeat, self.liveness = heartbeat, liveness
        self.procs: list[Proc] = []
        self.client_keys: PeerKeys | None = None  # for the harness's own queries
        self.master: Proc | None = None

    def _log(self, name: str) -> Path:
        return self.tmp / f"{name}-{len(self.procs)}.log"

    def start_master(self, store: str = "memory", *extra: str, bind: str | None = None,
                     prefix: list[str] | None = None, wait: bool = True) -> Proc:
        args = ["master", "--bind", bind or self.endpoint, "--store", store,
                "--heartbeat-interval", str(self.heartbeat),
                "--heartbeat-liveness", str(self.liveness), "--log-level", "debug", *extra]
        self.master = Proc(args, self._log("master"), prefix)
        self.procs.append(self.master)
        if wait:
            self.wait_master()
        return self.master

    def wait_master(self, timeout: float = 15.0) -> Any:
        master = self.master
        assert master is not None

        def up() -> Any:
            if not master.alive():
                raise AssertionError(f"master exited:\n{master.output()}")
            return query(self.endpoint, timeout=0.5, keys=self.client_keys)
        return wait_until(up, timeout, "the master to answer")

    def start_worker(self, *apps: str, name: str, pool: str = "process", concurrency: int = 2,
                     extra: tuple[str, ...] = (), connect: str | None = None,
                     prefix: list[str] | None = None, wait: bool = True) -> Proc:
        args = ["worker", "--connect", connect or self.endpoint, "--pool", pool,
                "--concurrency", str(concurrency), "--name", name, "--log-level", "debug",
                *[a for app in apps for a in ("--app", app)], *extra]
        proc = Proc(args, self._log(f"worker-{name}"), prefix)
        self.procs.append(proc)
        if wait:
            self.wait_workers({name})
        return proc

    def status(self) -> Any:
        return query(self.endpoint, keys=self.client_keys)

    def workers(self) -> set[str]:
        st = self.status()
        return {w["name"] for w in st["workers"]} if st else set()

    def wait_workers(self, names: set[str], timeout: float = 20.0) -> None:
        def registered() -> bool:
            for p in self.procs:
                if not p.alive() and p is not self.master and worker_name(p.args) in names:
                    raise AssertionError(f"a worker exited:\n{p.output()}")
            return names <= self.workers()
        wait_until(registered, timeout, f"workers {sorted(names)} to register")

    def logs(self) -> str:
        return "\n".join(f"==== {p.log.name}\n{p.output()[-4000:]}" for p in self.procs)

    def close(self) -> None:
        for p in reversed(self.procs):
            p.close()


def worker_name(args: list[str]) -> str | None:
    """The --name of a `zq worker` command line, else None. (Not a substring test: any
    argument, a temporary path under pytest-xdist's popen-gw1, may hold "w1".)"""
    if "worker" not in args or "--name" not in args[:-1]:
        return None
    return args[args.index("--name") + 1]


def forgotten(client: zq.Client, task_id: str) -> bool:
    """Whether the master no longer knows the task (its result outlived its ttl)."""
    try:
        client.get(task_id)
    except zq.Rejected:
        return True
    return False
