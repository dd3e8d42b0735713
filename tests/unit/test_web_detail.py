"""The dashboard's view of a task's detail (issue 15): payload heads from the master
become bounded text previews and no bytes reach the page or the JSON; a master older than
protocol 1.5 (no detail fields) gets "not available from this master" on the page."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

pytest.importorskip("starlette", reason="the dashboard needs the web extra: pip install 'zq[web]'")
pytest.importorskip("httpx", reason="starlette's TestClient needs httpx (the test extra)")

from starlette.testclient import TestClient  # noqa: E402

from zq.web import Settings, create_app  # noqa: E402
from zq.web.detail import ARGS_SHOWN, task_view  # noqa: E402

RECORD = {"id": "t1", "name": "m:f", "queue": "default", "priority": 0, "state": "running",
          "attempt": 1, "retries": 0, "worker": "w1", "created": 1.0, "updated": 2.0,
          "started": 1.5, "finished": None, "runtime": None, "queue_wait": 0.5,
          "progress": None, "error": None}


def detailed(**over: Any) -> dict[str, Any]:
    args = msgpack.packb([[1, "x" * 3_000], {"k": 2}])  # shown cut to ARGS_SHOWN
    d = {**RECORD, "args_head": args[:4096], "args_size": len(args),
         "parents": [{"id": "p1", "name": "m:g", "state": "succeeded", "input": True}],
         "parents_total": 1, "children": [], "children_total": 0, "children_partial": False,
         "chunks": [{"attempt": 1, "seq": 0, "size": 4, "head": msgpack.packb("abc")}],
         "chunks_total": 1,
         "attempts": [{"attempt": 1, "worker": "w1", "started": 1.5, "finished": None,
                       "outcome": "running", "error": None}]}
    d.update(over)
    return d


def no_bytes(value: Any) -> bool:
    if isinstance(value, dict):
        return all(no_bytes(v) for v in value.values())
    if isinstance(value, list):
        return all(no_bytes(v) for v in value)
    return not isinstance(value, (bytes, bytearray))


def test_payload_heads_become_bounded_previews() -> None:
    view = task_view(detailed())
    assert view["detail"] is True and no_bytes(view)
    assert view["args_preview"].startswith("(1, 'xxx")
    assert len(view["args_preview"]) == ARGS_SHOWN and view["args_preview"].endswith("…")
    assert view["chunks"] == [{"attempt": 1, "seq": 0, "size": 4, "preview": "'abc'"}]
    assert view["parents"][0]["id"] == "p1"


def test_arguments_the_master_did_not_keep_and_an_older_master() -> None:
    assert task_view(detailed(args_head=None, args_size=None))["args_preview"] is None
    older = task_view(dict(RECORD))
    assert older["detail"] is False and "args_preview" not in older
    partial = task_view({**RECORD, "args_head": b"\x90", "chunks": []})  # not all of 1.5
    assert partial["detail"] is False and no_bytes(partial)


class FakeClient:
    """A connected client's answers as a 1.4 master (get: no detail) gives them."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    def get(self, task_id: str) -> dict[str, Any]:
        return dict(self.record, id=task_id)


@pytest.mark.parametrize("record, shown", [
    (RECORD, "not available from this master"),
    (detailed(), "(1, &#39;xxx"),
])
def test_the_task_page_with_and_without_the_detail(record: dict, shown: str) -> None:
    app = create_app(FakeClient(record), Settings(endpoint="tcp://127.0.0.1:1"))
    with TestClient(app, base_url="http://127.0.0.1") as web:
        page = web.get("/tasks/t1")
        assert page.status_code == 200 and shown in page.text
        assert web.get("/api/tasks/t1").json()["detail"] is (record is not RECORD)
        if record is RECORD:  # each part the older master cannot give says so
            assert page.text.count("not available from this master") == 4
        else:
            assert 'href="/tasks/p1"' in page.text
