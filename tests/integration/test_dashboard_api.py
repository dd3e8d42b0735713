"""The dashboard's JSON API and actions (issue 15), through Starlette's TestClient against
a real master and worker: the app is an ordinary zq client, its one event subscription
feeds what it shows, and every state-changing request needs the session's CSRF token
from our own origin (and the access token, when one is set)."""

from __future__ import annotations

from pathlib import Path
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
BASE = "http://127.0.0.1"  # a loopback Host: without a token only those are served
TOKEN = "a-token-of-24-characters"


@pytest.fixture
def dash(cluster: Cluster) -> Iterator[tuple[TestClient, zq.Client, Cluster]]:
    cluster.start_master()
    cluster.start_worker(APP, name="w1", pool="process", concurrency=2)
    with zq.Client(cluster.endpoint) as client:
        app = create_app(client, Settings(endpoint=cluster.endpoint),
                         lambda: EventStream(cluster.endpoint))
        with TestClient(app, base_url=BASE) as web:
            wait_until(lambda: app.state.live.subscribed, 10, "the dashboard to subscribe")
            yield web, client, cluster


def csrf(web: TestClient) -> dict[str, str]:
    """The header a page's script sends: the CSRF cookie the first page set."""
    if "zq_csrf" not in web.cookies:
        assert web.get("/").status_code == 200
    return {"X-ZQ-CSRF": web.cookies["zq_csrf"]}


def state_of(web: TestClient, task_id: str) -> str:
    return web.get(f"/api/tasks/{task_id}").json()["state"]


def test_workers_queues_and_status_come_from_the_master(dash: Any) -> None:
    web, client, cluster = dash
    workers = web.get("/api/workers").json()
    assert [w["name"] for w in workers] == ["w1"]
    assert workers[0]["pool"] == "process" and workers[0]["concurrency"] == 2
    assert workers[0]["tasks"] == []
    assert web.get("/api/queues").json() == [
        {"queue": "default", "waiting": 0, "running": 0, "workers": 1}]
    st = web.get("/api/status").json()
    assert st["master_id"] == cluster.status()["master_id"] and st["live"] is True
    assert st["subscribers"] == 1  # the dashboard's one subscription
    assert st["store"] == {"spec": "memory", "sync": "normal", "durable": False}  # 1.4
    assert "no: in memory, a restart loses every task" in web.get("/").text


def test_tasks_filter_and_page(dash: Any) -> None:
    web, client, _ = dash
    adds = [client.submit("tests.apps.e2e_tasks:add", i, 1) for i in range(5)]
    bad = client.submit("tests.apps.e2e_tasks:fail")
    assert [f.result(timeout=20) for f in adds] == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError):
        bad.result(timeout=20)
    first = web.get("/api/tasks", params={"state": "succeeded", "per_page": 2}).json()
    assert len(first["tasks"]) == 2 and first["more"] is True
    third = web.get("/api/tasks", params={"state": "succeeded", "per_page": 2,
                                          "page": 3}).json()
    assert len(third["tasks"]) == 1 and third["more"] is False
    ids = {t["id"] for p in (1, 2, 3) for t in web.get("/api/tasks", params={
        "state": "succeeded", "per_page": 2, "page": p}).json()["tasks"]}
    assert ids == {f.id for f in adds}  # every one, once, across the pages
    failed = web.get("/api/tasks", params={"name": "tests.apps.e2e_tasks:fail"}).json()
    assert [t["id"] for t in failed["tasks"]] == [bad.id]
    assert web.get("/api/tasks", params={"page": "x"}).status_code == 400


def test_one_task_shows_result_traceback_and_the_attempts_seen(dash: Any) -> None:
    web, client, _ = dash
    good = client.submit("tests.apps.e2e_tasks:add", 2, 3)
    bad = client.submit("tests.apps.e2e_tasks:fail", "ValueError", "no such thing")
    assert good.result(timeout=20) == 5
    with pytest.raises(ValueError):
        bad.result(timeout=20)
    assert web.get(f"/api/tasks/{good.id}").json()["result_preview"] == "5"
    info = wait_until(lambda: (i := web.get(f"/api/tasks/{bad.id}").json())
                      ["attempts_seen"][-1:] and i, 10, "the dashboard to see the failure")
    assert info["state"] == "failed"
    assert info["error"]["type"] == "ValueError"
    assert "ValueError: no such thing" in info["error"]["traceback"]
    seen = info["attempts_seen"]  # (a turn's events show the task as the turn ends it)
    assert [a["kind"] for a in seen] == ["submitted", "started", "failed"]
    assert seen[-1]["worker"] == "w1" and seen[-1]["attempt"] == 1
    assert web.get("/api/tasks/nope").status_code == 404


def test_retry_needs_csrf_and_runs_the_task_again(dash: Any, tmp_path: Path) -> None:
    web, client, _ = dash
    f = client.submit("tests.apps.e2e_tasks:flaky", str(tmp_path / "runs"), 1)
    with pytest.raises(RuntimeError):
        f.result(timeout=20)
    url = f"/api/tasks/{f.id}/retry"
    assert web.post(url).status_code == 403  # no CSRF token: refused before the master
    assert state_of(web, f.id) == "failed"
    evil = web.post(url, headers={**csrf(web), "Origin": "http://evil.example"})
    assert evil.status_code == 403 and "another origin" in evil.text
    assert state_of(web, f.id) == "failed"
    ok = web.post(url, headers={**csrf(web), "Origin": BASE})
    assert ok.status_code == 200, ok.text
    wait_until(lambda: state_of(web, f.id) == "succeeded", 20, "the retried task to succeed")
    again = web.post(url, headers=csrf(web))  # a succeeded task cannot be retried
    assert again.status_code == 409 and "error" in again.json()


def test_cancel_stops_a_running_task(dash: Any, tmp_path: Path) -> None:
    web, client, _ = dash
    mark = tmp_path / "started"
    f = client.submit("tests.apps.e2e_tasks:touch_then_sleep", str(mark), 60)
    wait_until(mark.exists, 20, "the task to start")
    assert f.id in web.get("/api/workers").json()[0]["tasks"] or wait_until(
        lambda: f.id in web.get("/api/workers").json()[0]["tasks"], 5, "w1 to list it")
    out = web.post(f"/api/tasks/{f.id}/cancel", headers=csrf(web))
    assert out.status_code == 200, out.text
    wait_until(lambda: state_of(web, f.id) == "cancelled", 20, "the task to be cancelled")


def test_bulk_retry_and_purge(dash: Any) -> None:
    web, client, _ = dash
    fails = [client.options(retries=0).submit("tests.apps.e2e_tasks:fail") for _ in range(3)]
    other = client.submit("tests.apps.e2e_tasks:add", 1, 1)
    for f in fails:
        with pytest.raises(ValueError):
            f.result(timeout=20)
    assert other.result(timeout=20) == 2
    bad = web.post("/api/bulk/retry", json={"state": "running"}, headers=csrf(web))
    assert bad.status_code == 400
    out = web.post("/api/bulk/retry", json={"state": "failed", "name":
                                            "tests.apps.e2e_tasks:fail"}, headers=csrf(web))
    assert out.status_code == 200 and sorted(out.json()["retried"]) == sorted(
        f.id for f in fails)
    wait_until(lambda: len(web.get("/api/tasks", params={"state": "failed"}).json()["tasks"])
               == 3, 20, "the retried tasks to fail again")
    purged = web.post("/api/bulk/purge", json={"state": "succeeded", "older_than": 0},
                      headers=csrf(web))
    assert purged.status_code == 200 and purged.json() == {"purged": 1}
    assert web.get(f"/api/tasks/{other.id}").status_code == 404


def test_pages_render(dash: Any) -> None:
    web, client, _ = dash
    f = client.submit("tests.apps.e2e_tasks:fail", "KeyError", "k")
    with pytest.raises(KeyError):
        f.result(timeout=20)
    for path in ("/", "/workers", "/tasks", f"/tasks/{f.id}", "/schedules",
                 "/?partial=1", f"/tasks/{f.id}?partial=1"):
        page = web.get(path)
        assert page.status_code == 200, (path, page.text)
    assert "KeyError" in web.get(f"/tasks/{f.id}").text
    hostile = "<img src=x onerror=alert(1)>"  # a task's own text is shown, never run
    g = client.submit("tests.apps.e2e_tasks:fail", "ValueError", hostile)
    with pytest.raises(ValueError):
        g.result(timeout=20)
    for path in (f"/tasks/{g.id}", "/tasks?state=failed"):
        text = web.get(path).text
        assert hostile not in text and "&lt;img src=x onerror=alert(1)&gt;" in text, path
    assert web.get("/tasks/unknown-id").status_code == 404


def test_host_header_must_be_loopback_without_a_token(dash: Any) -> None:
    web, _, _ = dash  # a page at a rebinding attacker's name is refused
    assert web.get("/api/workers", headers={"Host": "evil.example"}).status_code == 403
    assert web.get("/api/workers", headers={"Host": "localhost:8080"}).status_code == 200


def test_a_token_is_checked_on_every_request(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_master(str(tmp_path / "zq.db"), "--store-sync", "full")
    with zq.Client(cluster.endpoint) as client:
        app = create_app(client, Settings(endpoint=cluster.endpoint, token=TOKEN),
                         lambda: EventStream(cluster.endpoint))
        with TestClient(app, base_url="http://10.1.2.3:8080") as web:
            for path in ("/", "/api/workers", "/api/events", "/static/dash.js"):
                assert web.get(path).status_code == 401, path
            assert web.get("/api/workers", params={"token": TOKEN + "x"}).status_code == 401
            st = web.get("/api/status", headers={"Authorization": f"Bearer {TOKEN}"})
            assert st.status_code == 200
            assert st.json()["store"] == {"spec": str(tmp_path / "zq.db"), "sync": "full",
                                          "durable": True}
            moved = web.get("/workers", params={"token": TOKEN, "x": "1"},
                            follow_redirects=False)
            assert moved.status_code == 303 and moved.headers["location"] == "/workers?x=1"
            assert web.get("/workers").status_code == 200  # the cookie it set
            assert TOKEN not in web.cookies["zq_token"]  # a digest, not the token
            web.cookies.clear()
            assert web.get("/workers").status_code == 401
