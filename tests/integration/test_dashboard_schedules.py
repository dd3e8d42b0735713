"""The dashboard's schedule actions (issue 15, protocol 1.5): Pause and Resume are POSTs
protected like every action (the session's CSRF token), reach the master and show its
state (paused, no next run; resumed, a next run); Run now runs the schedule's task once
through the master (id NAME@now-TIME); an unknown schedule is a 404. Real master and
worker; the dashboard's app through Starlette's TestClient."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("starlette", reason="the dashboard needs the web extra: pip install 'zq[web]'")
pytest.importorskip("httpx", reason="starlette's TestClient needs httpx (the test extra)")

from starlette.testclient import TestClient  # noqa: E402

import zq  # noqa: E402
from tests.integration.harness import Cluster  # noqa: E402
from zq.web import Settings, create_app  # noqa: E402

APP = "tests.apps.e2e_tasks"


@pytest.fixture
def dash(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[TestClient, zq.Client, Path]]:
    cluster.start_master(str(tmp_path / "zq.db"))
    cluster.start_worker(APP, name="w1", pool="thread", concurrency=2)
    runs = tmp_path / "runs"
    with zq.Client(cluster.endpoint) as client:
        client.schedule("beat", f"{APP}:record", str(runs), "tick", every=3600)
        app = create_app(client, Settings(endpoint=cluster.endpoint))
        with TestClient(app, base_url="http://127.0.0.1") as web:
            yield web, client, runs


def csrf(web: TestClient) -> dict[str, str]:
    if "zq_csrf" not in web.cookies:
        assert web.get("/schedules").status_code == 200
    return {"X-ZQ-CSRF": web.cookies["zq_csrf"]}


def listed(web: TestClient) -> dict[str, Any]:
    body = web.get("/api/schedules").json()
    assert body["pause_supported"] is True
    return next(s for s in body["schedules"] if s["name"] == "beat")


def test_pause_and_resume_reach_the_master_and_show(dash: Any) -> None:
    web, client, _ = dash
    assert listed(web)["paused"] is False and listed(web)["next_run"] is not None
    assert web.post("/api/schedules/beat/pause").status_code == 403  # no CSRF token
    assert client.schedules()[0]["paused"] is False
    paused = web.post("/api/schedules/beat/pause", headers=csrf(web))
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"] is True and paused.json()["next_run"] is None
    assert client.schedules()[0]["paused"] is True  # the master's own state
    assert listed(web)["paused"] is True
    page = web.get("/schedules").text
    assert 'data-schedule="beat" data-paused="yes"' in page and 'class="resume"' in page
    resumed = web.post("/api/schedules/beat/resume", headers=csrf(web))
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["paused"] is False and resumed.json()["next_run"] is not None
    assert client.schedules()[0]["paused"] is False
    assert 'data-schedule="beat" data-paused="no"' in web.get("/schedules").text


def test_run_now_goes_through_the_master_and_unknown_is_404(dash: Any) -> None:
    web, client, runs = dash
    ran = web.post("/api/schedules/beat/run", headers=csrf(web))
    assert ran.status_code == 200, ran.text
    run_id = ran.json()["id"]
    assert run_id.startswith("beat@now-")  # the master's schedule_run, not a submission
    assert client.future(run_id).result(timeout=20) == "tick"
    assert [line.split()[0] for line in runs.read_text().splitlines()] == ["tick"]  # once
    for action in ("pause", "resume", "run"):
        missing = web.post(f"/api/schedules/nope/{action}", headers=csrf(web))
        assert missing.status_code == 404 and "nope" in missing.json()["error"], action
