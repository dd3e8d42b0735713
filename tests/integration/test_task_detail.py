"""The `get` query in detail against a real master (SQLite store) and worker (issue 15):
a task's arguments previewed from the bytes the master sends back, its parents and
children, the latest chunks of a running stream, and its attempts with their worker."""

from __future__ import annotations

import json

import pytest

import zq
from tests.apps import e2e_tasks as t
from tests.integration.harness import wait_until
from zq.preview import preview_payload

APP = "tests.apps.e2e_tasks"


@pytest.fixture
def running(cluster, tmp_path):
    cluster.start_master(str(tmp_path / "zq.db"))
    cluster.start_worker(APP, name="w1", pool="thread", concurrency=4)
    return cluster


def test_get_shows_args_dependencies_chunks_and_attempts(running, tmp_path):
    gate = tmp_path / "gate"
    with zq.Client(running.endpoint) as client:
        stream = client.submit(t.stream_until, 25, str(gate), label="part")
        after = client.options(after=[stream]).submit(t.add, 1, 2)
        takes = client.submit(t.add, stream, "!")  # its result as an input

        def streamed() -> dict | None:
            info = client.get(stream.id)
            return info if info["chunks_total"] == 25 else None
        info = wait_until(streamed, 20, "the 25 chunks to reach the master")
        assert info["state"] == "running"
        assert preview_payload(info["args_head"], info["args_size"]) == (
            f"(25, {str(gate)!r}, label='part')")
        assert [c["seq"] for c in info["chunks"]] == list(range(5, 25))
        assert [preview_payload(c["head"], c["size"], call=False) for c in info["chunks"]] \
            == [repr(f"part {i}") for i in range(5, 25)]
        assert info["parents"] == [] and info["children_total"] == 2
        assert {c["id"] for c in info["children"]} == {after.id, takes.id}
        assert [a["worker"] for a in info["attempts"]] == ["w1"]
        assert info["attempts"][0]["outcome"] == "running"

        child = client.get(takes.id)
        assert child["parents"] == [{"id": stream.id, "name": f"{APP}:stream_until",
                                     "state": "running", "input": True}]
        assert preview_payload(child["args_head"], child["args_size"]) == (
            f"(<result of task {stream.id}>, '!')")

        gate.touch()
        assert takes.result(timeout=20) == "done!" and after.result(timeout=20) == 3
        done = client.get(stream.id)  # arguments freed in memory: read back from the store
        assert done["state"] == "succeeded"
        assert preview_payload(done["args_head"], done["args_size"]).startswith("(25, ")
        assert {c["id"] for c in done["children"]} == {after.id, takes.id}
        assert done["attempts"][-1]["outcome"] == "succeeded"


def test_get_lists_each_attempt_with_its_outcome(running, tmp_path):
    with zq.Client(running.endpoint) as client:
        f = client.options(retries=2, retry_backoff=0.01).submit(
            t.flaky, str(tmp_path / "runs"), 2)
        assert f.result(timeout=20) == 3
        attempts = client.get(f.id)["attempts"]
        assert [(a["attempt"], a["outcome"], a["worker"]) for a in attempts] == [
            (1, "failed", "w1"), (2, "failed", "w1"), (3, "succeeded", "w1")]
        assert attempts[0]["error"] == {"type": "RuntimeError", "message": "failure 1 of 2"}
        assert all(a["started"] <= a["finished"] for a in attempts)


def test_zq_result_detail_and_json_show_previews(running, tmp_path):
    from tests.integration.test_cli_inspect import zq_cli
    runs = str(tmp_path / "runs")
    with zq.Client(running.endpoint) as client:
        ok = client.options(retries=1, retry_backoff=0.01).submit(t.flaky, runs, 1)
        assert ok.result(timeout=20) == 2
        (tmp_path / "runs").unlink()
        bad = client.submit(t.flaky, runs, 1)
        with pytest.raises(RuntimeError):
            bad.result(timeout=20)
    shown = zq_cli(running.endpoint, "result", ok.id, "--detail")
    assert shown.returncode == 0 and shown.stdout.strip() == "2"
    assert f"arguments: ({runs!r}, 1)" in shown.stderr
    assert "attempt 1 on w1: failed: RuntimeError: failure 1 of 1" in shown.stderr
    assert "attempt 2 on w1: succeeded" in shown.stderr
    as_json = zq_cli(running.endpoint, "result", bad.id, "--json")
    assert as_json.returncode == 1
    info = json.loads(as_json.stdout)
    assert info["args_preview"] == f"({runs!r}, 1)" and "args_head" not in info
    assert info["attempts"][0]["error"]["type"] == "RuntimeError"
