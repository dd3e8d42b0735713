"""The dashboard keeps a worker that leaves in sight (issue 15): killed with -9 it is
listed as lost, with when, instead of vanishing; stopped cleanly it is listed as left;
back on its connection it is connected again and no longer listed as gone. Real master
and workers, the dashboard's app through Starlette's TestClient."""

from __future__ import annotations

import signal
import time
from typing import Any, Iterator

import pytest

pytest.importorskip("starlette", reason="the dashboard needs the web extra: pip install 'zq[web]'")
pytest.importorskip("httpx", reason="starlette's TestClient needs httpx (the test extra)")

from starlette.testclient import TestClient  # noqa: E402

import zq  # noqa: E402
from tests.integration.harness import Cluster, wait_until  # noqa: E402
from zq.event_stream import EventStream  # noqa: E402
from zq.web import Settings, create_app  # noqa: E402

APP = "tests.apps.e2e_tasks"


@pytest.fixture
def dash(cluster: Cluster) -> Iterator[tuple[TestClient, Cluster, Any]]:
    cluster.start_master()
    cluster.start_worker(APP, name="w1", pool="thread", concurrency=1)
    w2 = cluster.start_worker(APP, name="w2", pool="thread", concurrency=1)
    with zq.Client(cluster.endpoint) as client:
        app = create_app(client, Settings(endpoint=cluster.endpoint),
                         lambda: EventStream(cluster.endpoint))
        with TestClient(app, base_url="http://127.0.0.1") as web:
            wait_until(lambda: app.state.live.subscribed, 10, "the dashboard to subscribe")
            yield web, cluster, w2


def listed(web: TestClient) -> dict[str, list[dict[str, Any]]]:
    """Worker name -> its rows in /api/workers (a name may be connected and gone)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for w in web.get("/api/workers").json():
        rows.setdefault(w["name"], []).append(w)
    return rows


def gone(web: TestClient, name: str, status: str) -> dict[str, Any] | None:
    return next((w for w in listed(web).get(name, []) if w["status"] == status), None)


def test_a_killed_worker_stays_listed_as_lost_with_when(dash: Any) -> None:
    web, cluster, w2 = dash
    pid, before = w2.pid, time.time()
    w2.kill()  # SIGKILL: no goodbye, the master finds it out
    row = wait_until(lambda: gone(web, "w2", "lost"), 20, "the dashboard to list w2 as lost")
    assert row["pid"] == pid and row["host"] and row["queues"] == ["default"]
    assert before <= row["gone_at"] <= time.time()
    assert row["tasks"] == []
    rows = listed(web)
    assert [w["status"] for w in rows["w1"]] == ["connected"]
    assert [w["status"] for w in rows["w2"]] == ["lost"]  # not connected any more
    page = web.get("/workers").text
    assert 'data-worker="w2" data-status="lost"' in page
    assert 'data-worker="w1" data-status="connected"' in page
    assert "1 connected, 1 gone in the last 10 minutes" in page


def test_a_worker_stopped_cleanly_is_listed_as_left(dash: Any) -> None:
    web, cluster, w2 = dash
    w2.signal(signal.SIGTERM)  # a graceful stop: it says BYE
    assert w2.wait(20) == 0
    row = wait_until(lambda: gone(web, "w2", "left"), 20, "the dashboard to list w2 as left")
    assert row["pid"] == w2.pid
    assert gone(web, "w2", "lost") is None


def test_a_worker_back_on_its_connection_is_no_longer_listed_as_gone(dash: Any) -> None:
    web, cluster, w2 = dash
    w2.signal(signal.SIGSTOP)  # silent past the liveness window: the master drops it
    try:
        wait_until(lambda: gone(web, "w2", "lost"), 20, "the dashboard to list w2 as lost")
    finally:
        w2.signal(signal.SIGCONT)
    # It registers again (same name, host and pid): connected, and the lost row is gone.
    wait_until(lambda: [w["status"] for w in listed(web).get("w2", [])] == ["connected"],
               20, "w2 to be connected again and not listed as lost")
