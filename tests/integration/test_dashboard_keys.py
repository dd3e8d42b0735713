"""`zq dashboard --keys DIR` (issue 15): the folder's key decides what the dashboard
offers. With only a client key it reads (status, tasks, the live stream) and offers no
Retry, and the master refuses a retry sent anyway; with the folder's admin key Retry is
offered and works. Real master, worker and dashboard processes."""

from __future__ import annotations

import http.cookiejar
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the dashboard needs the web extra: pip install 'zq[web]'")

import zq  # noqa: E402
from tests.integration.harness import Cluster, Proc, free_port, wait_until  # noqa: E402
from tests.integration.test_keys_folder import client_only, zq_cli  # noqa: E402
from zq.security import load_keys_folder  # noqa: E402

APP = "tests.apps.e2e_tasks"


class Browser:
    """urllib with cookies: what a page's script sends (the CSRF header from the cookie)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> tuple[int, str]:
        try:
            with self.opener.open(self.base + path, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return 0, ""

    def post(self, path: str) -> tuple[int, Any]:
        csrf = next(c.value for c in self.jar if c.name == "zq_csrf")
        request = urllib.request.Request(self.base + path, data=b"{}", method="POST", headers={
            "X-ZQ-CSRF": csrf, "Content-Type": "application/json"})
        try:
            with self.opener.open(request, timeout=10) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)


def start_dashboard(cluster: Cluster, keys: Path) -> Browser:
    port = free_port()
    proc = Proc(["dashboard", "--connect", cluster.endpoint, "--http", f"127.0.0.1:{port}",
                 "--keys", str(keys)], cluster.tmp / f"dashboard-{port}.log")
    cluster.procs.append(proc)
    web = Browser(f"http://127.0.0.1:{port}")

    def live() -> bool:
        if not proc.alive():
            raise AssertionError(f"the dashboard exited:\n{proc.output()}")
        status, body = web.get("/api/status")
        return status == 200 and json.loads(body)["live"] is True
    wait_until(live, 20, "the dashboard to answer, subscribed")
    return web


def test_the_key_decides_what_is_offered_and_the_master_enforces_it(
        cluster: Cluster, tmp_path: Path) -> None:
    done = zq_cli("keys", "init", str(tmp_path / "zq-keys"))
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "zq-keys"
    cluster.client_keys = load_keys_folder(str(folder), "client")
    cluster.start_master("memory", "--keys", str(folder))
    cluster.start_worker(APP, name="w1", pool="thread", extra=("--keys", str(folder)))
    with zq.Client(cluster.endpoint, keys=folder) as client:
        f = client.submit(f"{APP}:flaky", str(tmp_path / "runs"), 1)
        with pytest.raises(RuntimeError):
            f.result(timeout=20)

    reader = start_dashboard(cluster, client_only(folder, tmp_path))
    status, page = reader.get(f"/tasks/{f.id}")
    assert status == 200 and "RuntimeError: failure 1 of 1" in page
    assert 'id="retry"' not in page and "read-only (client key)" in page
    refused = reader.post(f"/api/tasks/{f.id}/retry")  # sent anyway: the master refuses
    assert refused[0] == 409 and "admin" in refused[1]["error"], refused
    assert reader.get(f"/api/tasks/{f.id}")[1].count('"state":"failed"') == 1

    admin = start_dashboard(cluster, folder)  # the whole folder: its admin key acts
    status, page = admin.get(f"/tasks/{f.id}")
    assert status == 200 and 'id="retry"' in page and "read-only" not in page
    assert admin.post(f"/api/tasks/{f.id}/retry")[0] == 200
    wait_until(lambda: '"state":"succeeded"' in admin.get(f"/api/tasks/{f.id}")[1], 20,
               "the retried task to succeed")
