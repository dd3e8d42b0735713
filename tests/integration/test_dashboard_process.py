"""`zq dashboard` as a process (issue 15): SIGTERM with browsers' event streams open ends
those streams (each reader sees its end) and the process exits without a traceback,
rather than waiting on the browsers until uvicorn gives up on them."""

from __future__ import annotations

import signal
import threading
import urllib.request

import pytest

pytest.importorskip("starlette", reason="the dashboard needs the web extra: pip install 'zq[web]'")

from tests.integration.harness import Cluster, Proc, free_port, wait_until  # noqa: E402


def test_sigterm_ends_the_event_streams_and_exits_cleanly(cluster: Cluster) -> None:
    cluster.start_master()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = Proc(["dashboard", "--connect", cluster.endpoint, "--http", f"127.0.0.1:{port}"],
                cluster.tmp / "dashboard.log")
    cluster.procs.append(proc)

    def answers() -> bool:
        assert proc.alive(), proc.output()
        try:
            with urllib.request.urlopen(url + "/api/status", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False
    wait_until(answers, 20, "the dashboard to answer")
    ended: list[bytes] = []
    opened: list[int] = []

    def read_stream() -> None:
        with urllib.request.urlopen(url + "/api/events", timeout=30) as r:
            opened.append(r.status)  # the headers came: the stream is open
            ended.append(r.read())  # returns at the stream's end
    readers = [threading.Thread(target=read_stream, daemon=True) for _ in range(2)]
    for t in readers:
        t.start()
    wait_until(lambda: len(opened) == 2, 10, "both event streams to open")
    proc.signal(signal.SIGTERM)
    proc.wait(15)
    for t in readers:
        t.join(15)
        assert not t.is_alive(), "an event stream was not ended"
    assert len(ended) == 2 and all(b"event: hello" in body for body in ended)
    log = proc.output()
    assert "Traceback" not in log and "graceful shutdown exceeded" not in log, log
