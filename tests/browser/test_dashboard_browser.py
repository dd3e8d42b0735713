"""The dashboard in a real browser (issue 15): headless Chromium against real `zq master`,
`zq worker` and `zq dashboard` processes. The overview's chart and counts move while
tasks run, with no reload; a failed task's page shows its traceback and its Retry button
runs it again to success; Cancel stops a running task; off loopback a token is needed,
and without one the dashboard refuses to start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.browser.stack import Stack, http_status
from tests.integration.harness import ROOT, free_port, wait_until

TOKEN = "browser-test-token-0123456789"


def test_the_overview_moves_while_tasks_run(stack: Stack, page: Any, browser: Any) -> None:
    page.goto(stack.url + "/")
    page.wait_for_selector('#live-state[data-live="on"]')
    chart = page.locator("#chart")
    before = int(chart.get_attribute("data-total") or 0)
    succeeded_before = int(page.locator('[data-count="succeeded"]').inner_text())
    assert page.locator("#workers-up").inner_text() == "1"
    with stack.client() as client:
        futures = [client.submit("tests.apps.e2e_tasks:add", i, i) for i in range(40)]
        assert [f.result(timeout=30) for f in futures] == [2 * i for i in range(40)]
    # Pushed over the event stream: the chart counts them, the counts reload; no reload.
    page.wait_for_function(f"Number(document.querySelector('#chart').dataset.total) >= "
                           f"{before + 40}")
    assert page.locator("#chart polyline.line").count() == 1
    page.wait_for_function(f"Number(document.querySelector('[data-count=\"succeeded\"]')"
                           f".innerText) >= {succeeded_before + 40}")
    assert page.locator("#recent li").count() >= 1
    # A second browser shares the dashboard's one subscription to the master.
    other = browser.new_context().new_page()
    try:
        other.goto(stack.url + "/workers")
        other.wait_for_selector('#live-state[data-live="on"]')
        assert other.locator("#workers tbody tr").first.inner_text().startswith("w1")
        status = json.loads(other.request.get(stack.url + "/api/status").text())
        assert status["subscribers"] == 1
    finally:
        other.context.close()


def test_read_a_traceback_then_retry_to_success(stack: Stack, page: Any, marks: Path) -> None:
    with stack.client() as client:
        f = client.submit("tests.apps.e2e_tasks:flaky", str(marks / "runs"), 1)
        with pytest.raises(RuntimeError):
            f.result(timeout=30)
    page.goto(stack.url + "/tasks?state=failed")
    page.click(f'a[href="/tasks/{f.id}"]')
    page.wait_for_url(f"**/tasks/{f.id}")
    assert page.locator("#task-state").inner_text() == "failed"
    traceback = page.locator("#traceback").inner_text()
    assert "RuntimeError: failure 1 of 1" in traceback and "e2e_tasks.py" in traceback
    page.click("#retry")
    # The page reloads its part when the event stream carries this task's events.
    page.wait_for_selector('#task-state:text("succeeded")')
    assert page.locator("#result").inner_text() == "2"
    # The state comes from the master, the events from the dashboard's own stream: the
    # render that shows "succeeded" may list the events only up to "started".
    page.wait_for_selector('#events-seen tbody tr:last-child td.kind:text-is("succeeded")')
    kinds = page.locator("#events-seen tbody td.kind").all_inner_texts()
    assert kinds[-2:] == ["started", "succeeded"] and "failed" in kinds


def test_cancel_a_running_task(stack: Stack, page: Any, marks: Path) -> None:
    mark = marks / "started"
    with stack.client() as client:
        f = client.submit("tests.apps.e2e_tasks:touch_then_sleep", str(mark), 60)
        wait_until(mark.exists, 20, "the task to start")
        page.goto(f"{stack.url}/tasks/{f.id}")
        page.wait_for_selector('#task-state:text("running")')
        page.once("dialog", lambda dialog: dialog.accept())  # "Cancel this task?"
        page.click("#cancel")
        page.wait_for_selector('#task-state:text("cancelled")')
        assert client.get(f.id)["state"] == "cancelled"
        assert page.locator("#cancel").count() == 0  # nothing left to cancel


def test_off_loopback_the_token_is_required(tmp_path: Path, page: Any) -> None:
    stack = Stack(tmp_path, workers=0)
    try:
        stack.cluster.start_master()
        port = free_port()
        # Without a token it refuses to start, saying why.
        refused = subprocess.run(
            [sys.executable, "-m", "zq", "dashboard", "--connect", stack.cluster.endpoint,
             "--http", f"0.0.0.0:{port}"], cwd=ROOT, capture_output=True, text=True,
            timeout=30, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
        assert refused.returncode == 2 and "needs --token" in refused.stderr
        assert http_status(f"http://127.0.0.1:{port}/") is None  # nothing listens
        stack.port, stack.url = port, f"http://127.0.0.1:{port}"
        stack.start_dashboard("--http", f"0.0.0.0:{port}", "--token", TOKEN,
                              headers={"Authorization": f"Bearer {TOKEN}"})
        for path in ("/", "/api/workers", "/api/events", "/tasks"):
            assert http_status(stack.url + path) == 401, path
        response = page.goto(stack.url + "/")
        assert response.status == 401 and "needs the access token" in page.content()
        page.goto(stack.url + f"/?token={TOKEN}")  # once: it becomes a cookie
        assert page.url == stack.url + "/"
        page.wait_for_selector('#live-state[data-live="on"]')  # the event stream too
        page.click('nav a[href="/workers"]')
        page.wait_for_url("**/workers")
        assert page.locator("#workers").count() == 1
    finally:
        stack.close()
