"""Screenshots of every dashboard page, for docs/images/: a real master, two workers and
`zq dashboard` on 127.0.0.1, a workload (a varying stream of tasks, a few failures and
retries, long tasks running, a schedule, one paused, a worker killed), and headless
Chromium (Debian's; playwright).

    python docs/screenshots.py          # writes docs/images/dashboard-*.png (about 40 s)
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.stack import Stack, chromium  # noqa: E402
from tests.integration.harness import wait_until  # noqa: E402

OUT = ROOT / "docs" / "images"
RAMP_SECONDS = 25  # the workload's length: the chart shows its shape


def workload(stack: Stack, tmp: Path) -> str:
    """Tasks over RAMP_SECONDS at a rate that rises and falls; returns a failed task's id."""
    with stack.client() as client:
        client.schedule("nightly-report", "tests.apps.e2e_tasks:add", 1, 2, cron="0 3 * * *")
        client.schedule("heartbeat", "tests.apps.e2e_tasks:noop", every=300)
        client.pause_schedule("heartbeat")  # the page shows a paused one and Resume
        invoice = client.submit("tests.apps.e2e_tasks:echo", {"customer": 4711})
        failed = client.options(retries=2, retry_backoff=0.2, after=[invoice]).submit(
            "tests.apps.e2e_tasks:fail", "KeyError", "customer 4711 has no invoice address")
        client.options(retries=2).submit("tests.apps.e2e_tasks:flaky", str(tmp / "f"), 5)
        start = time.monotonic()
        while (t := time.monotonic() - start) < RAMP_SECONDS:
            burst = int(40 + 35 * math.sin(t / RAMP_SECONDS * 2 * math.pi))
            futures = [client.submit("tests.apps.e2e_tasks:add", i, t) for i in range(burst)]
            for f in futures:
                f.result(timeout=30)
            time.sleep(0.2)  # the pace of the workload, not a wait for a condition
        for i in range(3):
            client.submit("tests.apps.e2e_tasks:sleep_then", 600, i)
        client.flush(10)
        try:
            failed.result(timeout=30)
        except KeyError:  # dead after its 3 attempts: the task page lists each
            pass
        return failed.id


def main() -> None:
    path = chromium()
    if path is None:
        sys.exit("screenshots: Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        stack = Stack(tmp, workers=2, store=str(tmp / "zq.db"))
        try:
            stack.start()
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=path, headless=True,
                                            args=["--no-sandbox"])
                page = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
                page.goto(stack.url + "/")  # open during the workload: the chart fills live
                doomed = stack.cluster.start_worker("tests.apps.e2e_tasks", name="w3",
                                                    pool="thread", concurrency=1)
                failed = workload(stack, tmp)
                doomed.kill()  # the Workers page keeps it, marked lost
                wait_until(lambda: any(w.get("status") == "lost" for w in json.loads(
                    urllib.request.urlopen(stack.url + "/api/workers", timeout=5).read())),
                    20, "the dashboard to mark w3 lost")
                page.wait_for_function("Number(document.querySelector('#chart')"
                                       ".dataset.total) > 0", timeout=15_000)
                shots = {"overview": "/", "workers": "/workers", "tasks": "/tasks?per_page=15",
                         "task": f"/tasks/{failed}", "schedules": "/schedules"}
                for name, url in shots.items():
                    if name != "overview":
                        page.goto(stack.url + url)
                    page.wait_for_selector('#live-state[data-live="on"]', timeout=15_000)
                    page.screenshot(path=str(OUT / f"dashboard-{name}.png"), full_page=True)
                    print(f"wrote docs/images/dashboard-{name}.png")
                browser.close()
        finally:
            stack.close()


if __name__ == "__main__":
    main()
