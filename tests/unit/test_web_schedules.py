"""The dashboard's schedules against a master older than protocol 1.5 (issue 15): no
`paused` in its list, so the page offers no Pause/Resume and says they are not available
from this master; a pause sent anyway is a 501 saying so; Run now falls back to an
ordinary submission with the schedule's arguments, queue and priority."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("starlette", reason="the dashboard needs the web extra: pip install 'zq[web]'")
pytest.importorskip("httpx", reason="starlette's TestClient needs httpx (the test extra)")

from starlette.testclient import TestClient  # noqa: E402

from zq.errors import Rejected  # noqa: E402
from zq.web import Settings, create_app  # noqa: E402

SCHEDULE = {"name": "beat", "task": "m:f", "cron": None, "every": 60.0, "timezone": "UTC",
            "args": [1], "kwargs": {"k": 2}, "queue": "q", "priority": 3, "anchor": 1.0,
            "last_tick": None, "next_run": 61.0, "broken": None}  # a 1.4 schedule map


class Future:
    def __init__(self, task_id: str) -> None:
        self.id = task_id

    def done(self) -> bool:
        return False


class OlderMaster:
    """A client's answers from a 1.4 master: the 1.5 queries are unknown to it."""

    def __init__(self) -> None:
        self.submitted: list[tuple[dict[str, Any], str, tuple, dict]] = []
        self.opts: dict[str, Any] = {}

    def schedules(self) -> list[dict[str, Any]]:
        return [dict(SCHEDULE)]

    def _unknown(self, kind: str) -> Any:
        raise Rejected(f"unknown query {kind!r}; known: get, schedule_list, status")

    def pause_schedule(self, name: str) -> Any:
        return self._unknown("schedule_pause")

    def resume_schedule(self, name: str) -> Any:
        return self._unknown("schedule_resume")

    def run_schedule(self, name: str) -> Any:
        return self._unknown("schedule_run")

    def options(self, **opts: Any) -> OlderMaster:
        self.opts = opts
        return self

    def submit(self, task: str, *args: Any, **kwargs: Any) -> Future:
        self.submitted.append((self.opts, task, args, kwargs))
        return Future("submitted-1")

    def flush(self, timeout: float) -> bool:
        return True


def test_an_older_master_gets_no_pause_and_run_now_submits() -> None:
    master = OlderMaster()
    app = create_app(master, Settings(endpoint="tcp://127.0.0.1:1"))
    with TestClient(app, base_url="http://127.0.0.1") as web:
        page = web.get("/schedules")
        assert page.status_code == 200
        assert "Pause and resume: not available from this master" in page.text
        assert 'class="pause"' not in page.text and 'class="run"' in page.text
        assert web.get("/api/schedules").json()["pause_supported"] is False
        headers = {"X-ZQ-CSRF": web.cookies["zq_csrf"]}
        for action in ("pause", "resume"):
            refused = web.post(f"/api/schedules/beat/{action}", headers=headers)
            assert refused.status_code == 501, refused.text
            assert "not available from this master" in refused.json()["error"]
        ran = web.post("/api/schedules/beat/run", headers=headers)
        assert ran.status_code == 200 and ran.json() == {"id": "submitted-1"}
        assert master.submitted == [({"queue": "q", "priority": 3}, "m:f", (1,), {"k": 2})]
