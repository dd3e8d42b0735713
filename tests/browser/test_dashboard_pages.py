"""The dashboard's pages in a real browser (issue 15), second part: a worker killed with
-9 turns from connected to lost on the open Workers page, with no reload."""

from __future__ import annotations

from typing import Any

from tests.browser.stack import APP, Stack


def test_a_killed_worker_is_marked_lost_on_the_open_workers_page(stack: Stack,
                                                                 page: Any) -> None:
    doomed = stack.cluster.start_worker(APP, name="doomed", pool="thread", concurrency=1)
    try:
        page.goto(stack.url + "/workers")
        page.wait_for_selector('#live-state[data-live="on"]')
        row = page.locator('#workers tr[data-worker="doomed"]')
        assert row.get_attribute("data-status") == "connected"
        doomed.kill()  # SIGKILL: the master finds out by itself, the page by its events
        page.wait_for_selector('#workers tr[data-worker="doomed"][data-status="lost"]')
        assert row.count() == 1  # the same worker, marked, not listed twice
        assert row.locator("td.state").inner_text().startswith("lost ")
        assert page.locator('#workers tr[data-worker="w1"]').get_attribute(
            "data-status") == "connected"
    finally:
        doomed.kill()  # (already, unless the test failed first; the stack closes its log)
