"""A master, a worker and `zq dashboard` as real processes on 127.0.0.1, for the browser
tests and docs/screenshots.py: every wait bounded, every process cleaned up."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.integration.harness import Cluster, Proc, free_port, wait_until

APP = "tests.apps.e2e_tasks"
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def chromium() -> str | None:
    """Debian's Chromium, or None (the tests never download a browser of their own)."""
    for path in CHROMIUM_PATHS:
        if Path(path).exists():
            return path
    return shutil.which("chromium") or shutil.which("chromium-browser")


def http_status(url: str, headers: dict[str, str] | None = None) -> int | None:
    """The status of a GET (None: nothing answered)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}),
                                    timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return None


class Stack:
    """Cluster + a dashboard process on `http` (default a free loopback port)."""

    def __init__(self, tmp: Path, workers: int = 1, store: str = "memory") -> None:
        # A 3 s liveness window: headless Chromium shares the 2 cores, and the pages'
        # one-shot reads (1 worker up, w1 connected) must not see a worker dropped by a
        # missed second of heartbeats.
        self.cluster = Cluster(tmp, liveness=12)
        self.workers, self.store = workers, store
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dashboard: Proc | None = None

    def start(self, *dashboard_args: str, wait: bool = True) -> Stack:
        c = self.cluster
        c.start_master(self.store)
        for i in range(self.workers):
            c.start_worker(APP, name=f"w{i + 1}", pool="process", concurrency=2)
        self.dashboard = self.start_dashboard(*dashboard_args, wait=wait)
        return self

    def start_dashboard(self, *args: str, wait: bool = True,
                        headers: dict[str, str] | None = None) -> Proc:
        http = ["--http", f"127.0.0.1:{self.port}"] if "--http" not in args else []
        proc = Proc(["dashboard", "--connect", self.cluster.endpoint, *http, *args],
                    self.cluster.tmp / f"dashboard-{len(self.cluster.procs)}.log")
        self.cluster.procs.append(proc)
        if wait:
            def up() -> bool:
                if not proc.alive():
                    raise AssertionError(f"the dashboard exited:\n{proc.output()}")
                return http_status(f"{self.url}/api/status", headers) == 200
            wait_until(up, 20, "the dashboard to answer")
        return proc

    def client(self) -> Any:
        import zq
        return zq.Client(self.cluster.endpoint)

    def logs(self) -> str:
        return self.cluster.logs()

    def close(self) -> None:
        self.cluster.close()
