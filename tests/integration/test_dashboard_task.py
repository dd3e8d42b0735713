"""The dashboard's task page and /api/tasks/ID with the master's task detail (issue 15,
protocol 1.5): the arguments as a bounded preview (text, never the payload's bytes), the
tasks it waits for and those waiting for it, each linked, the latest streamed chunks and
their count, and every attempt with its worker and timing. Real master (SQLite) and
worker; the dashboard's app through Starlette's TestClient."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("starlette", reason="the dashboard needs the web extra: pip install 'zq[web]'")
pytest.importorskip("httpx", reason="starlette's TestClient needs httpx (the test extra)")

from starlette.testclient import TestClient  # noqa: E402

import zq  # noqa: E402
from tests.apps import e2e_tasks as apps  # noqa: E402
from tests.integration.harness import Cluster, wait_until  # noqa: E402
from zq.web import Settings, create_app  # noqa: E402

APP = "tests.apps.e2e_tasks"


@pytest.fixture
def dash(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[TestClient, zq.Client]]:
    cluster.start_master(str(tmp_path / "zq.db"))
    cluster.start_worker(APP, name="w1", pool="thread", concurrency=4)
    with zq.Client(cluster.endpoint) as client:
        app = create_app(client, Settings(endpoint=cluster.endpoint))
        with TestClient(app, base_url="http://127.0.0.1") as web:
            yield web, client


def test_a_streaming_task_shows_args_children_and_chunks(dash: Any, tmp_path: Path) -> None:
    web, client = dash
    gate = tmp_path / "gate"
    stream = client.submit(apps.stream_until, 25, str(gate), label="part")
    takes = client.submit(apps.add, stream, "!")  # its result is an argument
    try:
        def streamed() -> dict | None:
            info = web.get(f"/api/tasks/{stream.id}").json()
            return info if info.get("chunks_total") == 25 else None
        info = wait_until(streamed, 20, "the dashboard to show 25 chunks")
        assert info["detail"] is True and "args_head" not in info
        assert info["args_preview"] == f"(25, {str(gate)!r}, label='part')"
        assert [c["preview"] for c in info["chunks"]] == [repr(f"part {i}")
                                                          for i in range(5, 25)]
        assert all("head" not in c for c in info["chunks"])
        assert [c["id"] for c in info["children"]] == [takes.id]
        assert info["attempts"][0]["worker"] == "w1"
        assert info["attempts"][0]["outcome"] == "running"

        page = web.get(f"/tasks/{stream.id}").text
        assert "label=&#39;part&#39;" in page  # the preview, escaped
        assert f'href="/tasks/{takes.id}"' in page and "25 streamed, the latest 20" in page
        child = web.get(f"/api/tasks/{takes.id}").json()
        assert child["parents"] == [{"id": stream.id, "name": f"{APP}:stream_until",
                                     "state": "running", "input": True}]
        assert child["args_preview"] == f"(<result of task {stream.id}>, '!')"
        assert f'href="/tasks/{stream.id}"' in web.get(f"/tasks/{takes.id}").text
    finally:
        gate.touch()
    assert takes.result(timeout=20) == "done!"


def test_every_attempt_is_listed_with_its_worker_and_error(dash: Any, tmp_path: Path) -> None:
    web, client = dash
    f = client.options(retries=2, retry_backoff=0.01).submit(
        apps.flaky, str(tmp_path / "runs"), 2)
    assert f.result(timeout=20) == 3
    info = web.get(f"/api/tasks/{f.id}").json()
    assert [(a["attempt"], a["outcome"], a["worker"]) for a in info["attempts"]] == [
        (1, "failed", "w1"), (2, "failed", "w1"), (3, "succeeded", "w1")]
    assert info["attempts"][0]["error"] == {"type": "RuntimeError",
                                           "message": "failure 1 of 2"}
    assert info["args_preview"].startswith("(") and info["result_preview"] == "3"
    page = web.get(f"/tasks/{f.id}").text
    assert page.count('class="outcome state state-failed"') == 2
    assert "RuntimeError: failure 2 of 2" in page
